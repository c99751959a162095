//! Reading an archive back into an analytics store (`cflogs rehydrate`).

use std::sync::Arc;

use cflogs_core::{AnalyticsSink, Batch, DatasetSchema, Result, StreamId};

use crate::read::Decoded;
use crate::sink::ParquetArchive;

/// What [`ParquetArchive::rehydrate`] did for one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RehydrateReport {
    /// Published batches (manifests) read.
    pub batches: u64,
    /// Objects read.
    pub objects: u64,
    /// Events newly stored.
    pub inserted: u64,
    /// Events the store held already.
    pub duplicates: u64,
    /// Quarantined records newly stored.
    pub quarantined: u64,
}

impl ParquetArchive {
    /// Writes every published batch of `stream` into `analytics`, object by object (memory
    /// stays at one object), in chain order. Each batch is read with the built-in schema of
    /// the dataset its manifest names (so a stream needs no configuration here, and a stream
    /// whose dataset changed reads each batch as what it was). Idempotent, as the sink contract makes every write: what is already stored is left
    /// alone.
    ///
    /// # Errors
    /// The archive cannot be read (run `cflogs verify`) or the store refuses a write.
    pub async fn rehydrate(
        &self,
        stream: &StreamId,
        analytics: &dyn AnalyticsSink,
    ) -> Result<RehydrateReport> {
        let mut report = RehydrateReport::default();
        for m in self.manifests(stream).await? {
            let schema = Arc::new(DatasetSchema::builtin(&m.dataset));
            for o in &m.objects {
                let (events, quarantined) = match self.read_object(&o.final_key, &schema).await? {
                    Decoded::Events(e) => (e, Vec::new()),
                    Decoded::Quarantined(q) => (Vec::new(), q),
                };
                let batch = Batch {
                    stream: stream.clone(),
                    schema: schema.clone(),
                    window: m.window,
                    events,
                    quarantined,
                };
                let written = analytics.write(&batch).await?;
                report.inserted += written.inserted;
                report.duplicates += written.duplicates;
                report.quarantined += written.quarantined;
                report.objects += 1;
            }
            report.batches += 1;
        }
        Ok(report)
    }
}
