//! Shared test support: the stores under test, a probe that reads the archive back with an
//! independent Parquet reader, and helpers.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{
    Array, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use async_trait::async_trait;
use bytes::Bytes;
use cflogs_core::schema::ColumnType;
use cflogs_core::testing::conformance::ArchiveProbe;
use cflogs_core::{
    ArchiveSink, Batch, DatasetSchema, Digest, Epoch, Error, EventId, Manifest, Result,
    StageRequest, StreamId,
};
use cflogs_integration::TestBucket;
use cflogs_s3::object_store::{ObjectStore, ObjectStoreExt};
use cflogs_s3::{ArchiveConfig, ParquetArchive, Secret, layout};
use futures_util::TryStreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Every built-in schema, the generic one, and one defined here as a user would define a
/// dataset of their own: what the per-schema conformance runs cover.
pub fn every_schema() -> Vec<Arc<DatasetSchema>> {
    let mut schemas = cflogs_core::testing::samples::builtin_schemas();
    schemas.push(Arc::new(
        DatasetSchema::builder(
            cflogs_core::Dataset::new("app_metrics").unwrap(),
            &["at"],
            cflogs_core::TimeFormat::UnixNanos,
        )
        .id_field(&["uid"])
        .column("host", ColumnType::Text, &["host.name"])
        .column("cpu", ColumnType::Float, &["load.cpu"])
        .column("requests", ColumnType::Integer, &["load.requests"])
        .column("ok", ColumnType::Boolean, &["ok"])
        .column(
            "seen",
            ColumnType::Timestamp(cflogs_core::TimeFormat::UnixSeconds),
            &["seen"],
        )
        .column("peer", ColumnType::Ip, &["peer"])
        .column("labels", ColumnType::Json, &["labels"])
        .build()
        .unwrap(),
    ));
    schemas
}

/// Column `name` of `batch`, read with the Arrow type the archive writes for `ty`, each value
/// in the conformance suites' JSON form (`null` for NULL or a missing column).
pub fn json_column(batch: &RecordBatch, name: &str, ty: ColumnType) -> Vec<serde_json::Value> {
    use serde_json::Value as J;
    let n = batch.num_rows();
    let Some(column) = batch.column_by_name(name) else {
        return vec![J::Null; n];
    };
    let any = column.as_any();
    (0..n)
        .map(|row| {
            if column.is_null(row) {
                return J::Null;
            }
            match ty {
                ColumnType::Integer => any
                    .downcast_ref::<Int64Array>()
                    .map_or(J::Null, |c| J::from(c.value(row))),
                ColumnType::Float => any
                    .downcast_ref::<Float64Array>()
                    .map_or(J::Null, |c| J::from(c.value(row))),
                ColumnType::Boolean => any
                    .downcast_ref::<BooleanArray>()
                    .map_or(J::Null, |c| J::Bool(c.value(row))),
                ColumnType::Timestamp(_) => any
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .and_then(|c| chrono::DateTime::from_timestamp_micros(c.value(row)))
                    .map_or(J::Null, |t| J::String(t.to_rfc3339())),
                ColumnType::Json => any.downcast_ref::<StringArray>().map_or(J::Null, |c| {
                    serde_json::from_str(c.value(row)).unwrap_or(J::Null)
                }),
                _ => any
                    .downcast_ref::<StringArray>()
                    .map_or(J::Null, |c| J::String(c.value(row).to_owned())),
            }
        })
        .collect()
}

/// Which store a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Memory,
    File,
    /// A fresh bucket from the integration harness: the local Garage (or MinIO in a container).
    S3,
}

/// A name no other test run uses.
pub fn unique(name: &str) -> String {
    format!("{name}-{}", cflogs_integration::unique_suffix())
}

/// The request that stages a stream's first batch (seq 1, epoch 1, after the genesis) at `now`.
pub fn first_batch(now: cflogs_core::Timestamp) -> StageRequest {
    StageRequest {
        seq: 1,
        epoch: Epoch(1),
        prev: Digest::GENESIS,
        now,
    }
}

/// Stages `batch` under `request` and publishes it.
pub async fn stage_publish(
    archive: &ParquetArchive,
    batch: &Batch,
    request: StageRequest,
) -> Manifest {
    let m = archive.stage(batch, request).await.expect("stage");
    archive.publish(&m).await.expect("publish");
    m
}

/// An S3 configuration for the test bucket `bucket`, under a fresh prefix.
pub fn s3_config(bucket: &TestBucket, test: &str) -> ArchiveConfig {
    ArchiveConfig::s3(bucket.name(), &format!("tests/{}", unique(test)))
        .and_then(|c| c.with_endpoint(bucket.endpoint()))
        .expect("s3 config")
        .with_region(bucket.region())
        .with_credentials(bucket.access_key(), Secret::new(bucket.secret_key()))
}

/// What must live as long as a test's archive: its directory or its bucket.
pub enum Guard {
    Dir(TempDir),
    Bucket(TestBucket),
}

/// A fresh archive on `backend`; its directory or bucket (if any) lives as long as the guard.
pub async fn archive(backend: Backend, test: &str) -> (ParquetArchive, Option<Guard>) {
    match backend {
        Backend::Memory => {
            let config = ArchiveConfig::memory(&format!("tests/{test}")).expect("memory config");
            (ParquetArchive::open(&config).expect("open"), None)
        }
        Backend::File => {
            let dir = TempDir::new(test);
            let config = ArchiveConfig::file(dir.path.clone())
                .with_prefix("archive")
                .expect("prefix");
            (
                ParquetArchive::open(&config).expect("open"),
                Some(Guard::Dir(dir)),
            )
        }
        Backend::S3 => {
            let bucket = TestBucket::new().await;
            let archive = ParquetArchive::open(&s3_config(&bucket, test)).expect("open s3");
            (archive, Some(Guard::Bucket(bucket)))
        }
    }
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    pub path: std::path::PathBuf,
}

impl TempDir {
    pub fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("cflogs-s3-{}", unique(name)));
        std::fs::create_dir_all(&path).expect("temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Decodes a Parquet file with the `parquet` crate's own reader.
pub fn read_parquet(bytes: Bytes) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .expect("parquet footer")
        .build()
        .expect("reader")
        .collect::<std::result::Result<Vec<_>, _>>()
        .expect("decode")
}

pub fn strings(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"))
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap_or_else(|| panic!("{column} is not Utf8"));
    (0..array.len())
        .map(|i| (!array.is_null(i)).then(|| array.value(i).to_owned()))
        .collect()
}

pub fn binaries(batch: &RecordBatch, column: &str) -> Vec<Vec<u8>> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"))
        .as_any()
        .downcast_ref::<BinaryArray>()
        .unwrap_or_else(|| panic!("{column} is not Binary"));
    (0..array.len()).map(|i| array.value(i).to_vec()).collect()
}

pub fn micros(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
    let array = batch
        .column_by_name(column)
        .unwrap_or_else(|| panic!("column {column}"))
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap_or_else(|| panic!("{column} is not Timestamp(us)"));
    (0..array.len())
        .map(|i| (!array.is_null(i)).then(|| array.value(i)))
        .collect()
}

/// Reads the archive back through the store, decoding Parquet independently of the sink.
pub struct Probe {
    pub archive: ParquetArchive,
}

impl Probe {
    pub fn new(archive: &ParquetArchive) -> Self {
        Self {
            archive: archive.clone(),
        }
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        self.archive.store()
    }

    /// Every key under the archive prefix, relative to it.
    pub async fn keys(&self) -> Vec<String> {
        let root = self.archive.prefix().to_owned();
        let prefix = (!root.is_empty()).then(|| self.archive.path("").expect("root"));
        let metas: Vec<_> = self
            .store()
            .list(prefix.as_ref())
            .try_collect()
            .await
            .expect("list");
        let mut keys: Vec<String> = metas
            .into_iter()
            .map(|m| {
                let k = m.location.as_ref().to_owned();
                if root.is_empty() {
                    k
                } else {
                    k.strip_prefix(&format!("{root}/")).unwrap_or(&k).to_owned()
                }
            })
            .collect();
        keys.sort();
        keys
    }

    /// Published data and quarantine objects of `stream`, by key.
    pub async fn published(&self, stream: &StreamId) -> BTreeMap<String, Bytes> {
        let quarantine = format!("{}/", layout::quarantine_dir(stream));
        let mut out = self.history().await;
        out.retain(|key, _| {
            let name = key.rsplit('/').next().unwrap_or_default();
            (!key.starts_with('_') && layout::parse_data_file_name(name, stream).is_some())
                || key.starts_with(&quarantine)
        });
        out
    }

    /// Every object outside the staging area (data, quarantine, manifests), by key.
    pub async fn history(&self) -> BTreeMap<String, Bytes> {
        let mut out = BTreeMap::new();
        for key in self.keys().await {
            if key.starts_with("_staging/") {
                continue;
            }
            let bytes = self
                .object(&key)
                .await
                .expect("read")
                .expect("listed object");
            out.insert(key, bytes);
        }
        out
    }

    pub async fn put(&self, key: &str, bytes: Bytes) {
        self.store()
            .put(&self.archive.path(key).expect("path"), bytes.into())
            .await
            .expect("put");
    }
}

#[async_trait]
impl ArchiveProbe for Probe {
    async fn published_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        let mut ids = Vec::new();
        for (key, bytes) in self.published(stream).await {
            let column = if key.starts_with('_') {
                "id"
            } else {
                "event_id"
            };
            for batch in read_parquet(bytes) {
                for id in strings(&batch, column) {
                    ids.push(EventId::new(id.expect("id is never null"))?);
                }
            }
        }
        Ok(ids)
    }

    async fn published_rows(
        &self,
        stream: &StreamId,
        schema: &DatasetSchema,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        let mut rows = Vec::new();
        for (key, bytes) in self.published(stream).await {
            if key.starts_with('_') {
                continue;
            }
            for batch in read_parquet(bytes) {
                let ids = strings(&batch, "event_id");
                let columns: Vec<Vec<serde_json::Value>> = schema
                    .columns()
                    .iter()
                    .map(|c| json_column(&batch, c.name(), c.ty()))
                    .collect();
                for (row, id) in ids.into_iter().enumerate() {
                    let values = columns.iter().map(|c| c[row].clone()).collect();
                    rows.push((EventId::new(id.expect("id is never null"))?, values));
                }
            }
        }
        Ok(rows)
    }

    async fn staged_keys(&self, stream: &StreamId) -> Result<Vec<String>> {
        let dir = format!("{}/", layout::staging_dir(stream));
        Ok(self
            .keys()
            .await
            .into_iter()
            .filter(|k| k.starts_with(&dir))
            .collect())
    }

    async fn object(&self, key: &str) -> Result<Option<Bytes>> {
        let path = self.archive.path(key)?;
        match self.store().get(&path).await {
            Ok(r) => Ok(Some(
                r.bytes()
                    .await
                    .map_err(|e| Error::transient("probe read", e))?,
            )),
            Err(cflogs_s3::object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(Error::transient("probe get", e)),
        }
    }

    async fn manifest_object(&self, stream: &StreamId, seq: u64) -> Result<Option<Bytes>> {
        self.object(&layout::manifest_key(stream, seq)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.store()
            .delete(&self.archive.path(key)?)
            .await
            .map_err(|e| Error::transient("probe delete", e))
    }
}

pub mod sim;
