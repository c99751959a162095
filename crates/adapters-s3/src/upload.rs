//! Uploading one object whose bytes arrive in pieces: a single PUT while it is small, a
//! multipart upload once it passes the threshold, with a bounded number of parts in flight.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

use crate::config::UploadSettings;
use crate::error::{ArchiveError, Result};

enum State {
    Buffer(Vec<u8>),
    Multipart(WriteMultipart),
}

/// One object being uploaded. Memory held: at most the threshold before switching to
/// multipart, then one part being filled plus `max_concurrency` parts in flight.
pub(crate) struct Upload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    settings: UploadSettings,
    state: State,
}

impl Upload {
    pub(crate) fn new(store: Arc<dyn ObjectStore>, path: Path, settings: UploadSettings) -> Self {
        Self {
            store,
            path,
            settings,
            state: State::Buffer(Vec::new()),
        }
    }

    fn error(&self, op: &'static str, e: object_store::Error) -> ArchiveError {
        ArchiveError::store(op, self.path.as_ref(), e)
    }

    /// Appends bytes.
    pub(crate) async fn write(&mut self, data: Vec<u8>) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        match &mut self.state {
            State::Buffer(buf) => {
                if buf.is_empty() {
                    *buf = data;
                } else {
                    buf.extend_from_slice(&data);
                }
                if buf.len() > self.settings.multipart_threshold {
                    let pending = std::mem::take(buf);
                    let upload = self
                        .store
                        .put_multipart(&self.path)
                        .await
                        .map_err(|e| self.error("start multipart upload", e))?;
                    let mut writer = WriteMultipart::new_with_chunk_size(
                        upload,
                        self.settings.part_size.max(5 << 20),
                    );
                    writer.put(Bytes::from(pending));
                    self.state = State::Multipart(writer);
                    self.wait().await?;
                }
            }
            State::Multipart(writer) => {
                writer.put(Bytes::from(data));
                self.wait().await?;
            }
        }
        Ok(())
    }

    async fn wait(&mut self) -> Result<()> {
        let max = self.settings.max_concurrency.max(1);
        if let State::Multipart(writer) = &mut self.state
            && let Err(e) = writer.wait_for_capacity(max).await
        {
            return Err(self.error("upload part", e));
        }
        Ok(())
    }

    /// Completes the object.
    pub(crate) async fn finish(self) -> Result<()> {
        let key = self.path.as_ref().to_owned();
        match self.state {
            State::Buffer(buf) => self
                .store
                .put(&self.path, PutPayload::from(buf))
                .await
                .map(drop)
                .map_err(|e| ArchiveError::store("put", key, e)),
            State::Multipart(writer) => writer
                .finish()
                .await
                .map(drop)
                .map_err(|e| ArchiveError::store("complete multipart upload", key, e)),
        }
    }

    /// Abandons the object (aborts a multipart upload so its parts do not linger).
    pub(crate) async fn abort(self) {
        if let State::Multipart(writer) = self.state
            && let Err(e) = writer.abort().await
        {
            tracing::warn!(key = %self.path, error = %e, "aborting a multipart upload failed");
        }
    }
}
