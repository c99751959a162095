//! Parquet schemas of the archive and the encoder that writes them.
//!
//! Two kinds of file:
//! - **events**: `event_id`, `timestamp`, the columns of the batch's dataset schema, `raw_event`
//!   (the event exactly as received, JSON text), `ingestion_time`, see [`arrow_schema()`]. Text,
//!   address and JSON columns are strings (an address in canonical form), integers `INT64`,
//!   floats `DOUBLE`, booleans `BOOLEAN`, timestamps like `timestamp`. For `audit_logs` these are
//!   the columns of seed 001, as before schemas were data.
//! - **quarantine** (records that could not be mapped): `id`, `occurred_at`, `reason`, `raw`
//!   (binary), `ingestion_time`, see [`quarantine_schema`].
//!
//! Timestamps are `TIMESTAMP(MICROS, isAdjustedToUTC=true)`: readable by DuckDB, pyarrow, Spark
//! (which rejects nanosecond timestamps) and Trino. Cloudflare's times have at most microsecond
//! precision; `raw_event` keeps the exact text in any case.
//!
//! Files are zstd-compressed, with page statistics on the mapped columns, dictionary encoding
//! on the low-cardinality ones, `timestamp` declared as the sort column, and row groups of at
//! most [`ParquetSettings::row_group_rows`](crate::ParquetSettings) rows.

use std::io::Write;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use cflogs_core::schema::{ColumnType, DatasetSchema, Value};
use cflogs_core::{Digest, Event, Quarantined, Timestamp};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sha2::{Digest as _, Sha256};

use crate::config::ParquetSettings;
use crate::error::{ArchiveError, Result};

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The Arrow type of a column of type `ty`.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Integer => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Timestamp(_) => utc_micros(),
        _ => DataType::Utf8,
    }
}

/// The file schema of events of `schema`: `event_id`, `timestamp`, the schema's columns (all
/// nullable), `raw_event`, `ingestion_time`.
pub fn arrow_schema(schema: &DatasetSchema) -> SchemaRef {
    let mut fields = vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("timestamp", utc_micros(), false),
    ];
    fields.extend(
        schema
            .columns()
            .iter()
            .map(|c| Field::new(c.name(), arrow_type(c.ty()), true)),
    );
    fields.push(Field::new("raw_event", DataType::Utf8, false));
    fields.push(Field::new("ingestion_time", utc_micros(), false));
    Arc::new(Schema::new(fields))
}

/// The schema of quarantined records: `id` (`sha256:<hex>` of the bytes), `occurred_at` (when
/// it could be read), `reason`, `raw` (the exact bytes, binary: they may not be UTF-8),
/// `ingestion_time`.
pub fn quarantine_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Utf8, false),
                Field::new("occurred_at", utc_micros(), true),
                Field::new("reason", DataType::Utf8, false),
                Field::new("raw", DataType::Binary, false),
                Field::new("ingestion_time", utc_micros(), false),
            ]))
        })
        .clone()
}

/// Writer properties: zstd, statistics, dictionaries where they pay, row group size.
fn properties(
    settings: &ParquetSettings,
    sort_column: Option<i32>,
    large: &[&str],
    meta: Vec<KeyValue>,
) -> Result<WriterProperties> {
    let level = ZstdLevel::try_new(settings.zstd_level)?;
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(settings.row_group_rows.max(1)))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_key_value_metadata(Some(meta));
    // Unique or large values: dictionaries and min/max statistics cost time and bytes and
    // help no query.
    for column in ["event_id", "raw_event", "raw", "id"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    for column in ["raw_event", "raw"].iter().chain(large) {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::None);
    }
    if let Some(idx) = sort_column {
        builder = builder.set_sorting_columns(Some(vec![SortingColumn {
            column_idx: idx,
            descending: false,
            nulls_first: false,
        }]));
    }
    Ok(builder.build())
}

/// The sink the Parquet writer writes to: keeps the bytes not yet uploaded and hashes every
/// byte as it passes, so the digest is of exactly what was written.
#[derive(Debug)]
pub(crate) struct HashingBuffer {
    pending: Vec<u8>,
    hasher: Sha256,
    written: u64,
}

impl HashingBuffer {
    fn new() -> Self {
        Self {
            pending: Vec::new(),
            hasher: Sha256::new(),
            written: 0,
        }
    }
}

impl Write for HashingBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.hasher.update(buf);
        self.pending.extend_from_slice(buf);
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The end of an encoding: the last bytes, and the digest and size of the whole object.
#[derive(Debug)]
pub(crate) struct Finished {
    pub tail: Vec<u8>,
    pub sha256: Digest,
    pub bytes: u64,
    pub rows: u64,
}

/// A Parquet object being written, a chunk of rows at a time. Bytes come out through
/// [`PartWriter::take_output`] as row groups complete, so the caller can upload them while
/// encoding goes on: the encoder holds one chunk of Arrow arrays and one row group's pages.
pub(crate) struct PartWriter {
    writer: ArrowWriter<HashingBuffer>,
    schema: SchemaRef,
    /// The dataset schema, for a writer of events.
    dataset: Option<Arc<DatasetSchema>>,
    rows: u64,
}

impl std::fmt::Debug for PartWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("rows", &self.rows)
            .finish()
    }
}

impl PartWriter {
    fn new(schema: SchemaRef, props: WriterProperties) -> Result<Self> {
        let writer = ArrowWriter::try_new(HashingBuffer::new(), schema.clone(), Some(props))?;
        Ok(Self {
            writer,
            schema,
            dataset: None,
            rows: 0,
        })
    }

    /// A writer of events of `schema`.
    pub(crate) fn events(
        schema: &Arc<DatasetSchema>,
        settings: &ParquetSettings,
        meta: Vec<KeyValue>,
    ) -> Result<Self> {
        // JSON documents: statistics on them help no query.
        let large: Vec<&str> = schema
            .columns()
            .iter()
            .filter(|c| c.ty() == ColumnType::Json)
            .map(|c| c.name())
            .collect();
        let mut writer = Self::new(
            arrow_schema(schema),
            properties(settings, Some(1), &large, meta)?,
        )?;
        writer.dataset = Some(schema.clone());
        Ok(writer)
    }

    /// A writer of quarantined records.
    pub(crate) fn quarantine(settings: &ParquetSettings, meta: Vec<KeyValue>) -> Result<Self> {
        Self::new(quarantine_schema(), properties(settings, None, &[], meta)?)
    }

    fn write_batch(&mut self, columns: Vec<ArrayRef>) -> Result<()> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Appends events (one chunk; the caller bounds its size).
    pub(crate) fn write_events(&mut self, events: &[&Event], ingestion: Timestamp) -> Result<()> {
        let Some(dataset) = self.dataset.clone() else {
            return Err(ArchiveError::Refused(
                "events written to a quarantine file".to_owned(),
            ));
        };
        let columns = event_columns(&dataset, events, ingestion)?;
        self.write_batch(columns)
    }

    /// Appends quarantined records.
    pub(crate) fn write_quarantined(
        &mut self,
        records: &[Quarantined],
        ingestion: Timestamp,
    ) -> Result<()> {
        let n = records.len();
        let mut id = StringBuilder::with_capacity(n, n * 71);
        let mut at = TimestampMicrosecondBuilder::with_capacity(n);
        let mut reason = StringBuilder::with_capacity(n, n * 32);
        let mut raw = BinaryBuilder::with_capacity(n, records.iter().map(|q| q.raw.len()).sum());
        for q in records {
            id.append_value(q.id.as_str());
            at.append_option(q.occurred_at.map(|t| t.timestamp_micros()));
            reason.append_value(&q.reason);
            raw.append_value(&q.raw);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(id.finish()),
            Arc::new(at.finish().with_timezone("UTC")),
            Arc::new(reason.finish()),
            Arc::new(raw.finish()),
            constant_time(ingestion, n),
        ];
        self.write_batch(columns)
    }

    /// Bytes written since the last call (complete row groups, and the header).
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.writer.inner_mut().pending)
    }

    /// Size of the bytes waiting in [`PartWriter::take_output`].
    pub(crate) fn output_len(&mut self) -> usize {
        self.writer.inner_mut().pending.len()
    }

    /// Writes the footer and returns the remaining bytes with the object's digest and size.
    pub(crate) fn finish(self) -> Result<Finished> {
        let rows = self.rows;
        let sink = self.writer.into_inner()?;
        Ok(Finished {
            tail: sink.pending,
            sha256: Digest::from_bytes(sink.hasher.finalize().into()),
            bytes: sink.written,
            rows,
        })
    }
}

fn constant_time(t: Timestamp, n: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(vec![t.timestamp_micros(); n]).with_timezone("UTC"))
}

fn raw_text(e: &Event) -> Result<&str> {
    std::str::from_utf8(&e.raw).map_err(|err| {
        ArchiveError::Refused(format!(
            "event {} is not UTF-8 text ({err}): a source must quarantine records that are not \
             JSON instead of returning them as events",
            e.id
        ))
    })
}

/// A builder of one column of the dataset schema.
enum ColumnBuilder {
    Text(StringBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Boolean(BooleanBuilder),
    Time(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType, n: usize) -> Self {
        match ty {
            ColumnType::Integer => Self::Integer(Int64Builder::with_capacity(n)),
            ColumnType::Float => Self::Float(Float64Builder::with_capacity(n)),
            ColumnType::Boolean => Self::Boolean(BooleanBuilder::with_capacity(n)),
            ColumnType::Timestamp(_) => Self::Time(TimestampMicrosecondBuilder::with_capacity(n)),
            _ => Self::Text(StringBuilder::with_capacity(n, n * 24)),
        }
    }

    /// Appends `value`; NULL when absent or of another type than the column's.
    fn append(&mut self, value: Option<&Value>) {
        match (self, value) {
            (Self::Text(b), Some(Value::Text(v) | Value::Json(v))) => b.append_value(v),
            (Self::Text(b), Some(Value::Ip(ip))) => b.append_value(ip.to_string()),
            (Self::Integer(b), Some(Value::Integer(v))) => b.append_value(*v),
            (Self::Float(b), Some(Value::Float(v))) => b.append_value(*v),
            (Self::Boolean(b), Some(Value::Boolean(v))) => b.append_value(*v),
            (Self::Time(b), Some(Value::Timestamp(t))) => b.append_value(t.timestamp_micros()),
            (Self::Text(b), _) => b.append_null(),
            (Self::Integer(b), _) => b.append_null(),
            (Self::Float(b), _) => b.append_null(),
            (Self::Boolean(b), _) => b.append_null(),
            (Self::Time(b), _) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Text(mut b) => Arc::new(b.finish()),
            Self::Integer(mut b) => Arc::new(b.finish()),
            Self::Float(mut b) => Arc::new(b.finish()),
            Self::Boolean(mut b) => Arc::new(b.finish()),
            Self::Time(mut b) => Arc::new(b.finish().with_timezone("UTC")),
        }
    }
}

fn event_columns(
    schema: &DatasetSchema,
    events: &[&Event],
    ingestion: Timestamp,
) -> Result<Vec<ArrayRef>> {
    let n = events.len();
    let mut id = StringBuilder::with_capacity(n, n * 40);
    let mut at = TimestampMicrosecondBuilder::with_capacity(n);
    let mut columns: Vec<ColumnBuilder> = schema
        .columns()
        .iter()
        .map(|c| ColumnBuilder::new(c.ty(), n))
        .collect();
    let mut raw = StringBuilder::with_capacity(n, events.iter().map(|e| e.raw.len()).sum());
    for e in events {
        id.append_value(e.id.as_str());
        at.append_value(e.occurred_at.timestamp_micros());
        for (i, builder) in columns.iter_mut().enumerate() {
            builder.append(e.value(i));
        }
        raw.append_value(raw_text(e)?);
    }
    let mut out: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 4);
    out.push(Arc::new(id.finish()));
    out.push(Arc::new(at.finish().with_timezone("UTC")));
    out.extend(columns.into_iter().map(ColumnBuilder::finish));
    out.push(Arc::new(raw.finish()));
    out.push(constant_time(ingestion, n));
    Ok(out)
}

/// One encoded object, all in memory (for benchmarks, tests and tools; the sink streams).
#[derive(Clone, Debug)]
pub struct EncodedObject {
    /// The Parquet file.
    pub bytes: bytes::Bytes,
    /// SHA-256 of `bytes`.
    pub sha256: Digest,
    /// Rows it holds.
    pub rows: u64,
}

/// Encodes `events` of `schema` into one Parquet file in memory, with `ingestion` as the
/// `ingestion_time` of every row: the columns and encoding of the archive's objects (the sink
/// also splits a batch by hour and adds `cflogs.*` key-value metadata).
///
/// # Errors
/// [`cflogs_core::Error::Fatal`] when an event's raw bytes are not UTF-8 or the encoder fails.
pub fn encode_events(
    schema: &Arc<DatasetSchema>,
    events: &[Event],
    ingestion: Timestamp,
    settings: &ParquetSettings,
) -> cflogs_core::Result<EncodedObject> {
    let run = || -> Result<EncodedObject> {
        let mut writer = PartWriter::events(schema, settings, Vec::new())?;
        let mut out = Vec::new();
        let refs: Vec<&Event> = events.iter().collect();
        for chunk in refs.chunks(settings.chunk_rows.max(1)) {
            writer.write_events(chunk, ingestion)?;
            out.extend_from_slice(&writer.take_output());
        }
        let done = writer.finish()?;
        out.extend_from_slice(&done.tail);
        Ok(EncodedObject {
            bytes: out.into(),
            sha256: done.sha256,
            rows: done.rows,
        })
    };
    run().map_err(|e| e.into_core("parquet encoding"))
}
