//! [`ParquetArchive`]: the [`ArchiveSink`] over any object store.
//!
//! - `stage` encodes the batch into one Parquet object per hour its events occurred in (and
//!   one for its quarantined records) and uploads each to `_staging/{stream}/{seq}-e{epoch}/`,
//!   streaming: the SHA-256 and size in the manifest are computed on the bytes as they are
//!   uploaded.
//! - `publish` copies each staged object to its final key server-side (`CopyObject` on S3),
//!   writes the manifest (its canonical bytes) to `_manifests/{stream}/{seq}.json`, then deletes
//!   the staged objects. Create-only: a final object or manifest already at its key is never
//!   replaced; one holding other bytes stops publishing with [`Error::Fatal`] (a checkpoint
//!   store behind the archive), one holding the same bytes is a publish run again. Run again, it finds the staged objects gone and checks that each final
//!   object holds the manifest's bytes; a staged object gone with no such final object is
//!   [`Error::Fatal`] (lost data).
//! - `sweep` deletes stale staged objects (see the port's contract).
//!
//! Memory: a batch is capped by the pipeline (10,000 events and 64 MiB of raw JSON by
//! default). While staging, the encoder holds one chunk of rows as Arrow arrays (8,192 rows by
//! default) and the compressed pages of the current row group (at most 65,536 rows), which
//! reaches the upload only when complete: with the default caps an object is one row group,
//! sent when the file is finished. Larger objects are buffered up to the multipart threshold
//! (16 MiB), then sent in parts that start uploading as they are cut; the writer waits for the
//! parts in flight to drop to `max_concurrency` before encoding more.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cflogs_core::{
    ArchiveSink, Batch, Checkpoint, Clock, Digest, Error, Event, Manifest, ManifestObject, Result,
    StageRequest, StreamId, SystemClock,
};
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parquet::file::metadata::KeyValue;
use sha2::{Digest as _, Sha256};

use crate::config::{ArchiveConfig, ParquetSettings, UploadSettings};
use crate::error::ArchiveError;
use crate::layout;
use crate::parquet::PartWriter;
use crate::store::{LockThis, build_store};
use crate::verify::{VerifyReport, verify};

/// The Parquet archive on an object store (S3-compatible, local directory, memory).
#[derive(Clone)]
pub struct ParquetArchive {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    clock: Arc<dyn Clock>,
    upload: UploadSettings,
    parquet: ParquetSettings,
}

impl std::fmt::Debug for ParquetArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetArchive")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl ParquetArchive {
    /// Opens the archive `config` describes.
    ///
    /// # Errors
    /// As [`build_store`].
    pub fn open(config: &ArchiveConfig) -> Result<Self> {
        Ok(Self::new(build_store(config)?, &config.prefix)
            .with_upload(config.upload)
            .with_parquet(config.parquet))
    }

    /// An archive in `store` under `prefix` (leading and trailing `/` ignored).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
            clock: Arc::new(SystemClock),
            upload: UploadSettings::default(),
            parquet: ParquetSettings::default(),
        }
    }

    /// Uses `clock` to judge the age of staged objects in [`ArchiveSink::sweep`] (their
    /// modification time comes from the store, so the clock should be the wall clock).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets how objects are uploaded.
    #[must_use]
    pub fn with_upload(mut self, upload: UploadSettings) -> Self {
        self.upload = upload;
        self
    }

    /// Sets how Parquet is written.
    #[must_use]
    pub fn with_parquet(mut self, parquet: ParquetSettings) -> Self {
        self.parquet = parquet;
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key prefix (without trailing `/`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store path of a key relative to the prefix.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the key is not a valid object path.
    pub fn path(&self, key: &str) -> Result<Path> {
        object_path(&self.prefix, key)
    }

    /// The published manifests of `stream`, in seq order.
    ///
    /// # Errors
    /// The store cannot be listed or read, or a manifest does not parse (run `verify`).
    pub async fn manifests(&self, stream: &StreamId) -> Result<Vec<Manifest>> {
        let dir = self.path(&layout::manifest_dir(stream))?;
        let listing: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| ArchiveError::store("list", dir.as_ref(), e).into_core("archive read"))?;
        let mut found: Vec<(u64, Path)> = listing
            .into_iter()
            .filter_map(|m| {
                let name = m.location.filename()?.to_owned();
                Some((layout::parse_manifest_file_name(&name)?, m.location))
            })
            .collect();
        found.sort_by_key(|(seq, _)| *seq);
        let mut manifests = Vec::with_capacity(found.len());
        for (_, path) in found {
            let bytes = self.get_bytes(&path).await?;
            manifests.push(Manifest::from_bytes(&bytes)?);
        }
        Ok(manifests)
    }

    /// The records of the object at `key` (a manifest's `final_key`), its events read as
    /// `schema`'s (the schema of the manifest's dataset).
    ///
    /// # Errors
    /// The object cannot be read or is not an archive object.
    pub async fn read_object(
        &self,
        key: &str,
        schema: &cflogs_core::DatasetSchema,
    ) -> Result<crate::read::Decoded> {
        // An earlier release's key that `cflogs migrate` moved: read it where it went.
        let mut path = self.path(key)?;
        if let Some(moved) = layout::relocated(key)
            && matches!(
                self.store.head(&path).await,
                Err(object_store::Error::NotFound { .. })
            )
        {
            path = self.path(&moved)?;
        }
        let bytes = self.get_bytes(&path).await?;
        crate::read::decode_object(bytes, schema)
    }

    /// Every stream with a manifest chain in the archive (from the `_manifests/` folders).
    ///
    /// # Errors
    /// The store cannot be listed.
    pub async fn streams(&self) -> Result<Vec<StreamId>> {
        let dir = self.path(layout::MANIFESTS)?;
        let listing = self
            .store
            .list_with_delimiter(Some(&dir))
            .await
            .map_err(|e| {
                ArchiveError::store("list", dir.as_ref(), e).into_core("archive streams")
            })?;
        let mut streams: Vec<StreamId> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename())
            .filter_map(|segment| StreamId::from_key_segment(segment).ok())
            .collect();
        streams.sort();
        Ok(streams)
    }

    /// Moves the objects of `stream` that an earlier release wrote without the `stream=`
    /// partition to their place in today's layout ([`layout::relocated`]): each is copied,
    /// the copy's SHA-256 checked against the manifest, then the old key deleted. Manifests are
    /// not touched (they are immutable and chained): readers and [`verify`] find a moved
    /// object by the same mapping. Idempotent and safe to interrupt: a re-run finishes what a
    /// crash left. An old key that cannot be deleted (Object Lock) is kept beside its copy.
    ///
    /// # Errors
    /// The store fails, or an object does not match its manifest (run `cflogs verify`).
    pub async fn relocate(&self, stream: &StreamId) -> Result<RelocateReport> {
        let mut report = RelocateReport::default();
        for manifest in self.manifests(stream).await? {
            for o in &manifest.objects {
                let Some(moved) = layout::relocated(&o.final_key) else {
                    continue;
                };
                let (old, new) = (self.path(&o.final_key)?, self.path(&moved)?);
                let digest = |path: Path| async move {
                    digest_of(self.store.as_ref(), &path)
                        .await
                        .map_err(|e| e.into_core("archive relocate"))
                };
                let at_new = digest(new.clone()).await?;
                if at_new != Some((o.sha256, o.bytes)) {
                    match digest(old.clone()).await? {
                        Some(found) if found == (o.sha256, o.bytes) => {}
                        Some(_) => {
                            return Err(Error::fatal(
                                "archive relocate",
                                format!(
                                    "{} does not match its manifest (seq {}): run `cflogs verify`",
                                    o.final_key, manifest.seq
                                ),
                            ));
                        }
                        None => {
                            let there = if at_new.is_some() {
                                "holds other bytes"
                            } else {
                                "is missing too"
                            };
                            return Err(Error::fatal(
                                "archive relocate",
                                format!(
                                    "{} (seq {}) is missing and its place {moved} {there}: run \
                                     `cflogs verify`",
                                    o.final_key, manifest.seq
                                ),
                            ));
                        }
                    }
                    self.store.copy(&old, &new).await.map_err(|e| {
                        ArchiveError::store("copy", old.as_ref(), e).into_core("archive relocate")
                    })?;
                    if digest(new.clone()).await? != Some((o.sha256, o.bytes)) {
                        return Err(Error::fatal(
                            "archive relocate",
                            format!("the copy of {} at {moved} does not match", o.final_key),
                        ));
                    }
                    report.moved += 1;
                } else {
                    report.already += 1;
                }
                match self.store.delete(&old).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => {
                        tracing::warn!(key = %o.final_key, error = %e, "the old key could not be deleted (Object Lock?); it is kept beside its copy");
                        report.kept += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    async fn get_bytes(&self, path: &Path) -> Result<Bytes> {
        let result =
            self.store.get(path).await.map_err(|e| {
                ArchiveError::store("get", path.as_ref(), e).into_core("archive read")
            })?;
        result
            .bytes()
            .await
            .map_err(|e| ArchiveError::store("read", path.as_ref(), e).into_core("archive read"))
    }

    /// Walks the manifest chain of `stream` and checks every object; see [`verify`].
    ///
    /// # Errors
    /// As [`verify`].
    pub async fn verify(
        &self,
        stream: &StreamId,
        expected_head: Option<Digest>,
    ) -> Result<VerifyReport> {
        verify(self.store.as_ref(), &self.prefix, stream, expected_head).await
    }

    /// [`ParquetArchive::verify`] for several streams, listing the store once; see
    /// [`verify_streams`](crate::verify_streams).
    ///
    /// # Errors
    /// As [`verify`].
    pub async fn verify_streams(
        &self,
        streams: &[(StreamId, Option<Digest>)],
    ) -> Result<Vec<VerifyReport>> {
        crate::verify::verify_streams(self.store.as_ref(), &self.prefix, streams).await
    }

    /// Encodes and uploads one object, returning its manifest entry.
    async fn stage_object(
        &self,
        staged_key: String,
        final_key: String,
        mut writer: PartWriter,
        feed: impl FnMut(&mut PartWriter, usize) -> Option<crate::error::Result<()>>,
    ) -> std::result::Result<ManifestObject, ArchiveError> {
        let path = self
            .path(&staged_key)
            .map_err(|e| ArchiveError::Refused(e.to_string()))?;
        let mut upload = crate::upload::Upload::new(self.store.clone(), path, self.upload);
        let result = async {
            let mut feed = feed;
            let mut chunk = 0;
            while let Some(step) = feed(&mut writer, chunk) {
                step?;
                chunk += 1;
                // Hand complete row groups to the upload as they appear.
                if writer.output_len() > 0 {
                    upload.write(writer.take_output()).await?;
                }
            }
            let mut done = writer.finish()?;
            upload.write(std::mem::take(&mut done.tail)).await?;
            Ok::<_, ArchiveError>(done)
        }
        .await;
        let done = match result {
            Ok(done) => done,
            Err(e) => {
                upload.abort().await;
                return Err(e);
            }
        };
        upload.finish().await?;
        Ok(ManifestObject {
            final_key,
            staged_key,
            sha256: done.sha256,
            rows: done.rows,
            bytes: done.bytes,
        })
    }

    async fn stage_inner(
        &self,
        batch: &Batch,
        request: StageRequest,
    ) -> std::result::Result<Manifest, ArchiveError> {
        let staged_dir = layout::staging_batch_dir(&batch.stream, request.seq, request.epoch);
        let meta = |kind: &str| {
            vec![
                KeyValue::new("cflogs.stream".to_owned(), batch.stream.to_string()),
                KeyValue::new("cflogs.dataset".to_owned(), batch.dataset().to_string()),
                KeyValue::new("cflogs.seq".to_owned(), request.seq.to_string()),
                KeyValue::new("cflogs.content".to_owned(), kind.to_owned()),
            ]
        };
        // One object per hour the events occurred in. Batches arrive sorted by time, so each
        // hour's events keep their order.
        let mut by_hour: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
        for e in &batch.events {
            by_hour
                .entry(layout::partition(
                    batch.dataset(),
                    &batch.stream,
                    e.occurred_at,
                ))
                .or_default()
                .push(e);
        }
        let chunk_rows = self.parquet.chunk_rows.max(1);
        let mut objects = Vec::with_capacity(by_hour.len() + 1);
        for (n, (partition, events)) in by_hour.into_iter().enumerate() {
            let writer = PartWriter::events(&batch.schema, &self.parquet, meta("events"))?;
            let staged_key = format!("{staged_dir}/{n:04}.parquet");
            let final_key = format!(
                "{partition}/{}",
                layout::data_file_name(&batch.stream, request.seq)
            );
            let object = self
                .stage_object(staged_key, final_key, writer, |w, chunk| {
                    let part = events.chunks(chunk_rows).nth(chunk)?;
                    Some(w.write_events(part, request.now))
                })
                .await?;
            objects.push(object);
        }
        if !batch.quarantined.is_empty() {
            let writer = PartWriter::quarantine(&self.parquet, meta("quarantine"))?;
            let staged_key = format!("{staged_dir}/quarantine.parquet");
            let final_key = layout::quarantine_key(&batch.stream, request.seq);
            let object = self
                .stage_object(staged_key, final_key, writer, |w, chunk| {
                    let part = batch.quarantined.chunks(chunk_rows).nth(chunk)?;
                    Some(w.write_quarantined(part, request.now))
                })
                .await?;
            objects.push(object);
        }
        Ok(request.manifest(batch, objects))
    }

    /// Copies one staged object to its final key, create-only: an object already there is
    /// never replaced. The store refuses by itself where it can (`copy_if_not_exists`: local
    /// directories, memory, S3 with a copy-if-not-exists mode); elsewhere the final key is
    /// looked up first. Either way an object found there must hold the manifest's bytes (a
    /// publish run again after a crash) or publishing stops with [`Error::Fatal`].
    async fn publish_object(&self, o: &ManifestObject) -> Result<()> {
        let staged = self.path(&o.staged_key)?;
        let target = self.path(&o.final_key)?;
        let copied = match self.store.copy_if_not_exists(&staged, &target).await {
            Err(
                object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. },
            ) => match self.store.head(&target).await {
                Ok(_) => {
                    return self.check_final(o, Final::Present).await;
                }
                Err(object_store::Error::NotFound { .. }) => {
                    self.store.copy(&staged, &target).await
                }
                Err(e) => Err(e),
            },
            other => other,
        };
        match copied {
            Ok(()) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {
                self.check_final(o, Final::Present).await
            }
            // Staged object gone: published before, or lost.
            Err(object_store::Error::NotFound { .. }) => {
                self.check_final(o, Final::StagedGone).await
            }
            Err(e) => {
                Err(ArchiveError::store("copy", staged.as_ref(), e).into_core("archive publish"))
            }
        }
    }

    /// Checks that the object at `o`'s final key holds the manifest's bytes.
    async fn check_final(&self, o: &ManifestObject, why: Final) -> Result<()> {
        let target = self.path(&o.final_key)?;
        let found = digest_of(self.store.as_ref(), &target)
            .await
            .map_err(|e| e.into_core("archive publish"))?;
        match (found, why) {
            (Some((digest, size)), _) if digest == o.sha256 && size == o.bytes => Ok(()),
            (Some((digest, _)), Final::Present) => Err(Error::fatal(
                "archive publish",
                format!(
                    "refusing to overwrite {}: the archive already holds other bytes there \
                     (sha256 {digest}; this batch's are {}). The checkpoint store is behind the \
                     archive (a restored backup, a new database, deleted rows?): {RECOVER}",
                    o.final_key, o.sha256
                ),
            )),
            (Some((digest, _)), Final::StagedGone) => Err(Error::fatal(
                "archive publish",
                format!(
                    "staged object {} is gone and final object {} holds other bytes \
                     (sha256 {digest}, manifest says {}): data lost or modified",
                    o.staged_key, o.final_key, o.sha256
                ),
            )),
            (None, _) => Err(Error::fatal(
                "archive publish",
                format!(
                    "staged object {} is gone and final object {} is missing: data lost",
                    o.staged_key, o.final_key
                ),
            )),
        }
    }

    /// Writes `manifest`'s object, create-only: one already at its key must hold the same
    /// bytes, or publishing stops with [`Error::Fatal`] before anything is written. Returns
    /// whether it was there already.
    async fn check_manifest(&self, manifest: &Manifest) -> Result<bool> {
        let key = layout::manifest_key(&manifest.stream, manifest.seq);
        let path = self.path(&key)?;
        match self.store.get(&path).await {
            Ok(found) => {
                let bytes = found.bytes().await.map_err(|e| {
                    ArchiveError::store("read", &key, e).into_core("archive publish")
                })?;
                if bytes.as_ref() == manifest.canonical_bytes().as_slice() {
                    return Ok(true);
                }
                let other = Digest::of(&bytes);
                Err(Error::fatal(
                    "archive publish",
                    format!(
                        "refusing to overwrite manifest {key}: the archive already holds a batch \
                         {} of stream {} with other content (manifest hash {other}; this one's is \
                         {}). The checkpoint store is behind the archive (a restored backup, a \
                         new database, deleted rows?): {RECOVER}",
                        manifest.seq,
                        manifest.stream,
                        manifest.hash()
                    ),
                ))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(ArchiveError::store("get", &key, e).into_core("archive publish")),
        }
    }

    /// Puts `manifest`'s object where [`Self::check_manifest`] found none: with a conditional
    /// create where the store has one (so a writer racing us cannot be overwritten either),
    /// a plain put where it has not.
    async fn put_manifest(&self, manifest: &Manifest) -> Result<()> {
        let key = layout::manifest_key(&manifest.stream, manifest.seq);
        let path = self.path(&key)?;
        let payload = || PutPayload::from(Bytes::from(manifest.canonical_bytes()));
        let options = |mode| {
            let mut options = PutOptions::from(mode);
            options.extensions.insert(LockThis);
            options
        };
        let put = match self
            .store
            .put_opts(&path, payload(), options(PutMode::Create))
            .await
        {
            Err(object_store::Error::NotImplemented { .. }) => {
                self.store
                    .put_opts(&path, payload(), options(PutMode::Overwrite))
                    .await
            }
            other => other,
        };
        match put {
            Ok(_) => Ok(()),
            // Written between our look and our put: it must be ours.
            Err(object_store::Error::AlreadyExists { .. }) => {
                if self.check_manifest(manifest).await? {
                    Ok(())
                } else {
                    Err(Error::fatal(
                        "archive publish",
                        format!("manifest {key} appeared and vanished while it was written"),
                    ))
                }
            }
            Err(e) => Err(ArchiveError::store("put", &key, e).into_core("archive publish")),
        }
    }
}

/// What the operator is told when publishing refuses to overwrite archive history.
const RECOVER: &str = "nothing was overwritten; restore the stream's checkpoint from the \
    archive (see docs/operations.md, \"The checkpoint store lost its state\") before starting \
    the stream again";

/// Why a final object is being compared with its manifest.
#[derive(Clone, Copy)]
enum Final {
    /// Found at its key while its staged copy exists: publishing would overwrite it.
    Present,
    /// Its staged copy is gone: published before, or lost.
    StagedGone,
}

/// The store path of `key` under `prefix`.
pub(crate) fn object_path(prefix: &str, key: &str) -> Result<Path> {
    let full = layout::join(prefix, key);
    Path::parse(&full).map_err(|e| Error::invalid("object key", format!("{full:?}: {e}")))
}

/// SHA-256 and size of the object at `path`, streamed; `None` if it does not exist.
pub(crate) async fn digest_of(
    store: &dyn ObjectStore,
    path: &Path,
) -> std::result::Result<Option<(Digest, u64)>, ArchiveError> {
    let result = match store.get(path).await {
        Ok(result) => result,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(ArchiveError::store("get", path.as_ref(), e)),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut stream = result.into_stream();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| ArchiveError::store("read", path.as_ref(), e))?
    {
        hasher.update(&chunk);
        size += chunk.len() as u64;
    }
    Ok(Some((Digest::from_bytes(hasher.finalize().into()), size)))
}

/// What [`ParquetArchive::relocate`] did for one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelocateReport {
    /// Objects copied to their place in today's layout.
    pub moved: u64,
    /// Objects found there already (moved by an earlier run).
    pub already: u64,
    /// Old keys that could not be deleted (kept beside their copy).
    pub kept: u64,
}

#[async_trait]
impl ArchiveSink for ParquetArchive {
    async fn stage(&self, batch: &Batch, request: StageRequest) -> Result<Manifest> {
        let manifest = self
            .stage_inner(batch, request)
            .await
            .map_err(|e| e.into_core("archive stage"))?;
        tracing::debug!(
            stream = %batch.stream,
            seq = request.seq,
            epoch = %request.epoch,
            objects = manifest.objects.len(),
            bytes = manifest.objects.iter().map(|o| o.bytes).sum::<u64>(),
            "archive batch staged"
        );
        Ok(manifest)
    }

    async fn publish(&self, manifest: &Manifest) -> Result<()> {
        // The manifest's key first: one holding another batch stops publishing before any
        // object is touched. Then the objects' copies side by side (each is independent); the
        // manifest only once all are in place, the staged copies deleted only once it is.
        let there = self.check_manifest(manifest).await?;
        futures_util::future::try_join_all(manifest.objects.iter().map(|o| self.publish_object(o)))
            .await?;
        if !there {
            self.put_manifest(manifest).await?;
        }
        futures_util::future::try_join_all(manifest.objects.iter().map(|o| async move {
            let staged = self.path(&o.staged_key)?;
            match self.store.delete(&staged).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => {
                    Err(ArchiveError::store("delete", &o.staged_key, e)
                        .into_core("archive publish"))
                }
            }
        }))
        .await?;
        tracing::debug!(stream = %manifest.stream, seq = manifest.seq, "archive batch published");
        Ok(())
    }

    async fn newest_after(&self, stream: &StreamId, seq: u64) -> Result<Option<Manifest>> {
        // Manifest keys sort by seq (zero-padded), so listing after this seq's key reads only
        // the manifests the checkpoint does not know: none, normally.
        let dir = self.path(&layout::manifest_dir(stream))?;
        let offset = self.path(&layout::manifest_key(stream, seq))?;
        let listing: Vec<object_store::ObjectMeta> = self
            .store
            .list_with_offset(Some(&dir), &offset)
            .try_collect()
            .await
            .map_err(|e| ArchiveError::store("list", dir.as_ref(), e).into_core("archive read"))?;
        let newest = listing
            .into_iter()
            .filter_map(|m| {
                let found = layout::parse_manifest_file_name(m.location.filename()?)?;
                (found > seq).then_some((found, m.location))
            })
            .max_by_key(|(found, _)| *found);
        let Some((_, path)) = newest else {
            return Ok(None);
        };
        let bytes = self.get_bytes(&path).await?;
        Manifest::from_bytes(&bytes).map(Some)
    }

    async fn sweep(&self, checkpoint: &Checkpoint, min_age: Duration) -> Result<u64> {
        let dir = layout::staging_dir(&checkpoint.stream);
        let dir_path = self.path(&dir)?;
        let base = format!("{}/", dir_path.as_ref());
        let keep: Vec<String> = checkpoint
            .pending
            .iter()
            .flat_map(|m| m.objects.iter())
            .filter_map(|o| self.path(&o.staged_key).ok())
            .map(|p| p.as_ref().to_owned())
            .collect();
        let cutoff =
            self.clock.now() - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir_path))
            .try_collect()
            .await
            .map_err(|e| ArchiveError::store("list", &dir, e).into_core("archive sweep"))?;
        let mut deleted = 0;
        for meta in listed {
            let key = meta.location.as_ref();
            let Some((seq, epoch)) = key.strip_prefix(&base).and_then(layout::parse_staged) else {
                tracing::warn!(key, "unexpected object under the staging prefix left alone");
                continue;
            };
            let stale = epoch < checkpoint.epoch || seq <= checkpoint.seq;
            if keep.iter().any(|k| k == key) || meta.last_modified > cutoff || !stale {
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    return Err(ArchiveError::store("delete", key, e).into_core("archive sweep"));
                }
            }
        }
        if deleted > 0 {
            tracing::info!(stream = %checkpoint.stream, deleted, "stale staged archive objects swept");
        }
        Ok(deleted)
    }
}
