//! Reading the archive back: the published manifests of a stream and the records of an object,
//! for `cflogs rehydrate` (and anyone who wants the data without a Parquet engine).

use arrow_array::{
    Array, BinaryArray, RecordBatch, RecordBatchReader, StringArray, TimestampMicrosecondArray,
};
use bytes::Bytes;
use cflogs_core::{AuditFields, Event, EventId, Fields, Quarantined, Result, Timestamp};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::ArchiveError;

/// The records of one archived object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A data object: events, with their mapped columns when the object has them.
    Events(Vec<Event>),
    /// A `_quarantine/` object.
    Quarantined(Vec<Quarantined>),
}

fn refused(what: impl Into<String>) -> cflogs_core::Error {
    ArchiveError::Refused(what.into()).into_core("archive read")
}

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
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

fn text(column: Option<&StringArray>, row: usize) -> Option<String> {
    column
        .filter(|c| !c.is_null(row))
        .map(|c| c.value(row).to_owned())
}

/// Decodes an archived Parquet object written by this crate.
///
/// Timestamps come back at the archive's precision, microseconds (Cloudflare's audit times have
/// no finer digits); `raw_event` comes back byte for byte.
///
/// # Errors
/// [`Error::Fatal`](cflogs_core::Error::Fatal) for bytes that are not such an object.
pub fn decode_object(bytes: Bytes) -> Result<Decoded> {
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
        let audit = batch.column_by_name("actor_email").is_some();
        let col = |name| strings(&batch, name);
        let (account, email, actor, action, result) = (
            col("account_id"),
            col("actor_email"),
            col("actor_type"),
            col("action_type"),
            col("action_result"),
        );
        let (rtype, rid, ip, metadata) = (
            col("resource_type"),
            col("resource_id"),
            col("ip_address"),
            col("metadata"),
        );
        for row in 0..batch.num_rows() {
            let occurred_at =
                time(at, row)?.ok_or_else(|| refused("an event without a timestamp"))?;
            let mut event = Event::new(
                EventId::new(ids.value(row))?,
                occurred_at,
                Bytes::copy_from_slice(raw.value(row).as_bytes()),
            );
            if audit {
                event = event.with_fields(Fields::Audit(AuditFields {
                    account_id: text(account, row),
                    actor_email: text(email, row),
                    actor_type: text(actor, row),
                    action_type: text(action, row),
                    action_result: text(result, row),
                    resource_type: text(rtype, row),
                    resource_id: text(rid, row),
                    ip_address: text(ip, row),
                    metadata: text(metadata, row),
                }));
            }
            events.push(event);
        }
    }
    Ok(if quarantine {
        Decoded::Quarantined(quarantined)
    } else {
        Decoded::Events(events)
    })
}
