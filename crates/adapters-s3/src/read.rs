//! Reading the archive back: the published manifests of a stream and the records of an object,
//! for `cflogs rehydrate` (and anyone who wants the data without a Parquet engine).

use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch,
    RecordBatchReader, StringArray, TimestampMicrosecondArray,
};
use bytes::Bytes;
use cflogs_core::schema::{ColumnType, DatasetSchema, Value};
use cflogs_core::{Event, EventId, Quarantined, Result, Timestamp};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::ArchiveError;

/// The records of one archived object.
#[derive(Clone, Debug, PartialEq)]
pub enum Decoded {
    /// A data object: events, with their mapped columns when the object has them.
    Events(Vec<Event>),
    /// A `_quarantine/` object.
    Quarantined(Vec<Quarantined>),
}

fn refused(what: impl Into<String>) -> cflogs_core::Error {
    ArchiveError::Refused(what.into()).into_core("archive read")
}

fn required<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| refused(format!("the object has no usable column {name:?}")))
}

fn time(micros: &TimestampMicrosecondArray, row: usize) -> Result<Option<Timestamp>> {
    if micros.is_null(row) {
        return Ok(None);
    }
    chrono::DateTime::from_timestamp_micros(micros.value(row))
        .map(Some)
        .ok_or_else(|| refused("a timestamp out of range"))
}

/// Row `row` of `column` as a value of a column of type `ty`; NULL when the file has no such
/// column, or holds it with another type (a schema changed since the file was written).
fn value(ty: ColumnType, column: Option<&ArrayRef>, row: usize) -> Option<Value> {
    let column = column.filter(|c| !c.is_null(row))?;
    let any = column.as_any();
    match ty {
        ColumnType::Integer => any
            .downcast_ref::<Int64Array>()
            .map(|c| Value::Integer(c.value(row))),
        ColumnType::Float => any
            .downcast_ref::<Float64Array>()
            .map(|c| Value::Float(c.value(row))),
        ColumnType::Boolean => any
            .downcast_ref::<BooleanArray>()
            .map(|c| Value::Boolean(c.value(row))),
        ColumnType::Timestamp(_) => any
            .downcast_ref::<TimestampMicrosecondArray>()
            .and_then(|c| chrono::DateTime::from_timestamp_micros(c.value(row)))
            .map(Value::Timestamp),
        ColumnType::Ip => any
            .downcast_ref::<StringArray>()
            .and_then(|c| c.value(row).trim().parse().ok())
            .map(Value::Ip),
        ColumnType::Json => any
            .downcast_ref::<StringArray>()
            .map(|c| Value::Json(c.value(row).to_owned())),
        _ => any
            .downcast_ref::<StringArray>()
            .map(|c| Value::Text(c.value(row).to_owned())),
    }
}

/// Decodes an archived Parquet object written by this crate, its events' columns read as
/// `schema`'s (by name: a column the file lacks is NULL).
///
/// Timestamps come back at the archive's precision, microseconds (Cloudflare's audit times have
/// no finer digits); `raw_event` comes back byte for byte.
///
/// # Errors
/// [`Error::Fatal`](cflogs_core::Error::Fatal) for bytes that are not such an object.
pub fn decode_object(bytes: Bytes, schema: &DatasetSchema) -> Result<Decoded> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| ArchiveError::from(e).into_core("archive read"))?;
    let quarantine = reader.schema().column_with_name("raw").is_some();
    let mut events = Vec::new();
    let mut quarantined = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| ArchiveError::from(e).into_core("archive read"))?;
        if quarantine {
            let ids: &StringArray = required(&batch, "id")?;
            let at: &TimestampMicrosecondArray = required(&batch, "occurred_at")?;
            let reason: &StringArray = required(&batch, "reason")?;
            let raw: &BinaryArray = required(&batch, "raw")?;
            for row in 0..batch.num_rows() {
                quarantined.push(Quarantined {
                    id: EventId::new(ids.value(row))?,
                    raw: Bytes::copy_from_slice(raw.value(row)),
                    reason: reason.value(row).to_owned(),
                    occurred_at: time(at, row)?,
                });
            }
            continue;
        }
        let ids: &StringArray = required(&batch, "event_id")?;
        let at: &TimestampMicrosecondArray = required(&batch, "timestamp")?;
        let raw: &StringArray = required(&batch, "raw_event")?;
        let columns: Vec<(ColumnType, Option<&ArrayRef>)> = schema
            .columns()
            .iter()
            .map(|c| (c.ty(), batch.column_by_name(c.name())))
            .collect();
        for row in 0..batch.num_rows() {
            let occurred_at =
                time(at, row)?.ok_or_else(|| refused("an event without a timestamp"))?;
            let event = Event::new(
                EventId::new(ids.value(row))?,
                occurred_at,
                Bytes::copy_from_slice(raw.value(row).as_bytes()),
            )
            .with_values(
                columns
                    .iter()
                    .map(|(ty, column)| value(*ty, *column, row))
                    .collect(),
            );
            events.push(event);
        }
    }
    Ok(if quarantine {
        Decoded::Quarantined(quarantined)
    } else {
        Decoded::Events(events)
    })
}
