//! Parquet schemas of the archive and the encoder that writes them.
//!
//! Three schemas:
//! - **audit** (dataset `audit_logs`): the columns of seed 001, see [`audit_schema`];
//! - **generic** (any other dataset, events without mapped columns): `event_id`, `timestamp`,
//!   `raw_event`, `ingestion_time`, see [`generic_schema`];
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

use arrow_array::builder::{BinaryBuilder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use cflogs_core::{Dataset, Digest, Event, Fields, Quarantined, Timestamp};
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

/// The audit log schema (seed 001): `event_id`, `timestamp`, `account_id`, `actor_email`,
/// `actor_type`, `action_type`, `action_result`, `resource_type`, `resource_id`, `ip_address`,
/// `metadata` (JSON text), `raw_event` (the event exactly as received, JSON text),
/// `ingestion_time`.
pub fn audit_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let text = |name: &str| Field::new(name, DataType::Utf8, true);
            Arc::new(Schema::new(vec![
                Field::new("event_id", DataType::Utf8, false),
                Field::new("timestamp", utc_micros(), false),
                text("account_id"),
                text("actor_email"),
                text("actor_type"),
                text("action_type"),
                text("action_result"),
                text("resource_type"),
                text("resource_id"),
                text("ip_address"),
                text("metadata"),
                Field::new("raw_event", DataType::Utf8, false),
                Field::new("ingestion_time", utc_micros(), false),
            ]))
        })
        .clone()
}

/// The schema of datasets without mapped columns: `event_id`, `timestamp`, `raw_event`,
/// `ingestion_time`.
pub fn generic_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("event_id", DataType::Utf8, false),
                Field::new("timestamp", utc_micros(), false),
                Field::new("raw_event", DataType::Utf8, false),
                Field::new("ingestion_time", utc_micros(), false),
            ]))
        })
        .clone()
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

/// Which schema a dataset's events are written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventSchema {
    /// [`audit_schema`], for `audit_logs`.
    Audit,
    /// [`generic_schema`], for every other dataset.
    Generic,
}

impl EventSchema {
    /// The schema of `dataset`.
    pub fn of(dataset: &Dataset) -> Self {
        if dataset.as_str() == Dataset::AUDIT_LOGS {
            Self::Audit
        } else {
            Self::Generic
        }
    }

    /// The Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        match self {
            Self::Audit => audit_schema(),
            Self::Generic => generic_schema(),
        }
    }
}

/// Writer properties: zstd, statistics, dictionaries where they pay, row group size.
fn properties(
    settings: &ParquetSettings,
    sort_column: Option<i32>,
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
    for column in ["raw_event", "raw", "metadata"] {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::None);
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
            rows: 0,
        })
    }

    /// A writer of events in `schema`.
    pub(crate) fn events(
        schema: EventSchema,
        settings: &ParquetSettings,
        meta: Vec<KeyValue>,
    ) -> Result<Self> {
        Self::new(schema.schema(), properties(settings, Some(1), meta)?)
    }

    /// A writer of quarantined records.
    pub(crate) fn quarantine(settings: &ParquetSettings, meta: Vec<KeyValue>) -> Result<Self> {
        Self::new(quarantine_schema(), properties(settings, None, meta)?)
    }

    fn write_batch(&mut self, columns: Vec<ArrayRef>) -> Result<()> {
        let batch = RecordBatch::try_new(self.schema.clone(), columns)?;
        self.rows += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Appends events (one chunk; the caller bounds its size).
    pub(crate) fn write_events(&mut self, events: &[&Event], ingestion: Timestamp) -> Result<()> {
        let columns = match self.schema.fields().len() {
            4 => generic_columns(events, ingestion)?,
            _ => audit_columns(events, ingestion)?,
        };
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

fn generic_columns(events: &[&Event], ingestion: Timestamp) -> Result<Vec<ArrayRef>> {
    let n = events.len();
    let mut id = StringBuilder::with_capacity(n, n * 40);
    let mut at = TimestampMicrosecondBuilder::with_capacity(n);
    let mut raw = StringBuilder::with_capacity(n, events.iter().map(|e| e.raw.len()).sum());
    for e in events {
        id.append_value(e.id.as_str());
        at.append_value(e.occurred_at.timestamp_micros());
        raw.append_value(raw_text(e)?);
    }
    Ok(vec![
        Arc::new(id.finish()),
        Arc::new(at.finish().with_timezone("UTC")),
        Arc::new(raw.finish()),
        constant_time(ingestion, n),
    ])
}

fn audit_columns(events: &[&Event], ingestion: Timestamp) -> Result<Vec<ArrayRef>> {
    let n = events.len();
    let mut id = StringBuilder::with_capacity(n, n * 40);
    let mut at = TimestampMicrosecondBuilder::with_capacity(n);
    let mut text: [StringBuilder; 9] =
        std::array::from_fn(|_| StringBuilder::with_capacity(n, n * 24));
    let mut raw = StringBuilder::with_capacity(n, events.iter().map(|e| e.raw.len()).sum());
    for e in events {
        id.append_value(e.id.as_str());
        at.append_value(e.occurred_at.timestamp_micros());
        match &e.fields {
            Fields::Audit(f) => {
                let values = [
                    &f.account_id,
                    &f.actor_email,
                    &f.actor_type,
                    &f.action_type,
                    &f.action_result,
                    &f.resource_type,
                    &f.resource_id,
                    &f.ip_address,
                    &f.metadata,
                ];
                for (builder, value) in text.iter_mut().zip(values) {
                    builder.append_option(value.as_deref());
                }
            }
            _ => {
                for builder in &mut text {
                    builder.append_null();
                }
            }
        }
        raw.append_value(raw_text(e)?);
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(13);
    columns.push(Arc::new(id.finish()));
    columns.push(Arc::new(at.finish().with_timezone("UTC")));
    for mut builder in text {
        columns.push(Arc::new(builder.finish()));
    }
    columns.push(Arc::new(raw.finish()));
    columns.push(constant_time(ingestion, n));
    Ok(columns)
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

/// Encodes `events` of `dataset` into one Parquet file in memory, with `ingestion` as the
/// `ingestion_time` of every row: the columns and encoding of the archive's objects (the sink
/// also splits a batch by hour and adds `cflogs.*` key-value metadata).
///
/// # Errors
/// [`cflogs_core::Error::Fatal`] when an event's raw bytes are not UTF-8 or the encoder fails.
pub fn encode_events(
    dataset: &Dataset,
    events: &[Event],
    ingestion: Timestamp,
    settings: &ParquetSettings,
) -> cflogs_core::Result<EncodedObject> {
    let run = || -> Result<EncodedObject> {
        let mut writer = PartWriter::events(EventSchema::of(dataset), settings, Vec::new())?;
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
