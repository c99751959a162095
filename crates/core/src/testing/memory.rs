//! In-memory adapters of the four ports and a manual clock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{Datelike, Timelike};
use serde::{Deserialize, Serialize};

use crate::cursors::{ObjectChunk, ObjectRef, ObjectSource, WindowSource};
use crate::domain::schema::{DatasetSchema, Value};
use crate::domain::{
    Batch, BatchLimits, Checkpoint, CommitGuard, Dataset, Digest, Epoch, Event, EventId,
    FetchRequest, Fetched, Manifest, ManifestObject, Quarantined, StreamId, Timestamp,
    rfc3339_nanos,
};
use crate::error::{Error, Result};
use crate::ports::{AnalyticsSink, ArchiveSink, CheckpointStore, Clock, StageRequest, WriteReport};

/// Locks a mutex, ignoring poisoning: a panicking test thread must not hide the state.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: Timestamp) -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(now),
        })
    }

    /// Sets the time (it may go backwards, as a wall clock can).
    pub fn set(&self, now: Timestamp) {
        *lock(&self.now) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *lock(&self.now)
    }
}

/// One record of a [`MemorySource`]: an event or a malformed record, and when it becomes
/// visible.
#[derive(Clone, Debug)]
struct SourceRecord {
    at: Timestamp,
    visible_at: Timestamp,
    record: Record,
}

#[derive(Clone, Debug)]
enum Record {
    Event(Event),
    Malformed(Quarantined),
}

impl Record {
    fn id(&self) -> &EventId {
        match self {
            Record::Event(e) => &e.id,
            Record::Malformed(q) => &q.id,
        }
    }
}

/// A source whose history is set by the test, with events that become visible late and
/// optional paging that stops early at the batch caps (so ties straddle "pages").
#[derive(Debug)]
pub struct MemorySource {
    stream: StreamId,
    schema: Arc<DatasetSchema>,
    clock: Arc<dyn Clock>,
    page_size: Option<usize>,
    clock_offset: Option<chrono::TimeDelta>,
    records: Mutex<Vec<SourceRecord>>,
}

impl MemorySource {
    /// An empty source for `stream`, reading visibility against `clock`.
    pub fn new(stream: StreamId, dataset: Dataset, clock: Arc<dyn Clock>) -> Self {
        Self {
            stream,
            schema: Arc::new(DatasetSchema::builtin(&dataset)),
            clock,
            page_size: None,
            clock_offset: None,
            records: Mutex::new(Vec::new()),
        }
    }

    /// The same source reporting `offset` as its [`WindowSource::clock_offset`]: how far its
    /// clock (the one visibility is read against) is ahead of the pipeline's.
    #[must_use]
    pub fn with_clock_offset(mut self, offset: chrono::TimeDelta) -> Self {
        self.clock_offset = Some(offset);
        self
    }

    /// The same source with events of `schema` (instead of `dataset`'s built-in schema).
    #[must_use]
    pub fn with_schema(mut self, schema: Arc<DatasetSchema>) -> Self {
        self.schema = schema;
        self
    }

    /// Reads in pages of `page_size` records in `(time, id)` order and stops paging once the
    /// records read at or after the request's floor pass the batch caps and span at least two
    /// timestamps, reporting `complete_to` = the last timestamp read (whose group may continue
    /// on the next page).
    #[must_use]
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = Some(page_size.max(1));
        self
    }

    /// Adds an event visible from `visible_at`.
    pub fn push(&self, event: Event, visible_at: Timestamp) {
        lock(&self.records).push(SourceRecord {
            at: event.occurred_at,
            visible_at,
            record: Record::Event(event),
        });
    }

    /// Adds a malformed record whose true time is `at` (the source filters on it even though
    /// the record's text does not carry it readably), visible from `visible_at`.
    pub fn push_malformed(&self, record: Quarantined, at: Timestamp, visible_at: Timestamp) {
        lock(&self.records).push(SourceRecord {
            at,
            visible_at,
            record: Record::Malformed(record),
        });
    }

    /// Ids of every record (events and malformed), visible or not.
    pub fn all_ids(&self) -> Vec<EventId> {
        let mut ids: Vec<EventId> = lock(&self.records)
            .iter()
            .map(|r| r.record.id().clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

#[async_trait]
impl WindowSource for MemorySource {
    fn stream(&self) -> &StreamId {
        &self.stream
    }

    fn schema(&self) -> &Arc<DatasetSchema> {
        &self.schema
    }

    async fn fetch(&self, request: &FetchRequest) -> Result<Fetched> {
        let window = &request.window;
        let now = self.clock.now();
        let mut visible: Vec<SourceRecord> = lock(&self.records)
            .iter()
            .filter(|r| r.visible_at <= now && window.contains(r.at))
            .cloned()
            .collect();
        visible.sort_by(|a, b| (a.at, a.record.id()).cmp(&(b.at, b.record.id())));
        let mut fetched = Fetched::default();
        let mut read = visible.len();
        if let Some(page) = self.page_size {
            let (mut counted, mut bytes, mut first_counted) = (0, 0, None);
            read = 0;
            while read < visible.len() {
                let end = (read + page).min(visible.len());
                for r in visible[read..end].iter().filter(|r| r.at >= request.floor) {
                    counted += 1;
                    bytes += match &r.record {
                        Record::Event(e) => e.size(),
                        Record::Malformed(q) => q.raw.len(),
                    };
                    first_counted.get_or_insert(r.at);
                }
                read = end;
                let last = visible[read - 1].at;
                let spans_two = first_counted.is_some_and(|first| first < last);
                if read < visible.len() && request.limits.exceeded_by(counted, bytes) && spans_two {
                    fetched.complete_to = Some(last);
                    break;
                }
            }
        }
        for r in visible.into_iter().take(read) {
            match r.record {
                Record::Event(e) => fetched.events.push(e),
                Record::Malformed(q) => fetched.quarantined.push(q),
            }
        }
        Ok(fetched)
    }

    async fn clock_offset(&self) -> chrono::TimeDelta {
        self.clock_offset.unwrap_or_default()
    }
}

/// One object of a [`MemoryBucket`].
#[derive(Clone, Debug)]
struct BucketObject {
    object: ObjectRef,
    visible_at: Timestamp,
    lines: Vec<Record>,
}

/// An [`ObjectSource`] whose objects are set by the test: each with a key, the time it is kept
/// by, the time it becomes visible (an object for an old interval may land late) and its lines
/// (events or malformed records). Listing returns every visible object from an hour before
/// `since` on (more than asked, as a date-prefix listing does).
#[derive(Debug)]
pub struct MemoryBucket {
    stream: StreamId,
    schema: Arc<DatasetSchema>,
    clock: Arc<dyn Clock>,
    objects: Mutex<BTreeMap<String, BucketObject>>,
}

impl MemoryBucket {
    /// An empty bucket for `stream`, reading visibility against `clock`.
    pub fn new(stream: StreamId, dataset: Dataset, clock: Arc<dyn Clock>) -> Self {
        Self {
            stream,
            schema: Arc::new(DatasetSchema::builtin(&dataset)),
            clock,
            objects: Mutex::new(BTreeMap::new()),
        }
    }

    /// Adds object `key`, kept by `at`, visible from `visible_at`, holding `events` (in line
    /// order) and then `malformed` lines.
    ///
    /// # Panics
    /// When `key` is already in the bucket: objects are immutable.
    pub fn put(
        &self,
        key: &str,
        at: Timestamp,
        visible_at: Timestamp,
        events: Vec<Event>,
        malformed: Vec<Quarantined>,
    ) {
        let size = events.iter().map(Event::size).sum::<usize>()
            + malformed.iter().map(|q| q.raw.len()).sum::<usize>();
        let lines = events
            .into_iter()
            .map(Record::Event)
            .chain(malformed.into_iter().map(Record::Malformed))
            .collect();
        let object = BucketObject {
            object: ObjectRef {
                key: key.to_owned(),
                at,
                size: size as u64,
            },
            visible_at,
            lines,
        };
        let previous = lock(&self.objects).insert(key.to_owned(), object);
        assert!(previous.is_none(), "object {key} put twice");
    }
}

#[async_trait]
impl ObjectSource for MemoryBucket {
    fn stream(&self) -> &StreamId {
        &self.stream
    }

    fn schema(&self) -> &Arc<DatasetSchema> {
        &self.schema
    }

    async fn list(&self, since: Timestamp) -> Result<Vec<ObjectRef>> {
        let now = self.clock.now();
        let from = since - chrono::Duration::hours(1);
        Ok(lock(&self.objects)
            .values()
            .filter(|o| o.visible_at <= now && o.object.at >= from)
            .map(|o| o.object.clone())
            .collect())
    }

    async fn read_object(
        &self,
        object: &ObjectRef,
        from_line: u64,
        limits: BatchLimits,
    ) -> Result<ObjectChunk> {
        let objects = lock(&self.objects);
        let Some(stored) = objects.get(&object.key) else {
            return Err(Error::fatal(
                "memory bucket",
                format!("object {} is gone", object.key),
            ));
        };
        let mut chunk = ObjectChunk::default();
        let (mut count, mut bytes) = (0, 0);
        let start = usize::try_from(from_line).unwrap_or(usize::MAX);
        for (n, line) in stored.lines.iter().enumerate().skip(start) {
            if count > 0 && limits.exceeded_by(count + 1, bytes) {
                chunk.next_line = Some(n as u64);
                break;
            }
            count += 1;
            match line {
                Record::Event(e) => {
                    bytes += e.size();
                    chunk.events.push(e.clone());
                }
                Record::Malformed(q) => {
                    bytes += q.raw.len();
                    chunk.quarantined.push(q.clone());
                }
            }
        }
        Ok(chunk)
    }
}

/// A checkpoint store in memory. Checkpoints are kept as their JSON documents, so every
/// load goes through the same serialization a persistent store would.
#[derive(Debug, Default)]
pub struct MemoryCheckpointStore {
    checkpoints: Mutex<HashMap<StreamId, Vec<u8>>>,
    /// Each stream's lease holder and expiry (on tokio's clock, so paused-time tests move it).
    holders: Mutex<HashMap<StreamId, (String, tokio::time::Instant)>>,
}

impl MemoryCheckpointStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the stream's checkpoint, as a restored backup, a new database or a deleted row
    /// would; returns whether there was one.
    pub fn forget(&self, stream: &StreamId) -> bool {
        let mut checkpoints = lock(&self.checkpoints);
        lock(&self.holders).remove(stream);
        checkpoints.remove(stream).is_some()
    }

    /// The stream's lease holder while its lease is live.
    pub fn holder(&self, stream: &StreamId) -> Option<String> {
        lock(&self.holders)
            .get(stream)
            .filter(|(_, expires)| *expires > tokio::time::Instant::now())
            .map(|(holder, _)| holder.clone())
    }

    fn take(
        map: &mut HashMap<StreamId, Vec<u8>>,
        stream: &StreamId,
        initial: Timestamp,
    ) -> Result<Checkpoint> {
        let mut cp =
            Self::get(map, stream)?.unwrap_or_else(|| Checkpoint::genesis(stream.clone(), initial));
        cp.epoch = cp.epoch.next();
        cp.lease = crate::domain::fresh_lease();
        map.insert(stream.clone(), cp.to_json());
        Ok(cp)
    }

    fn get(map: &HashMap<StreamId, Vec<u8>>, stream: &StreamId) -> Result<Option<Checkpoint>> {
        map.get(stream)
            .map(|bytes| Checkpoint::from_json(bytes))
            .transpose()
    }
}

#[async_trait]
impl CheckpointStore for MemoryCheckpointStore {
    async fn acquire(&self, stream: &StreamId, initial: Timestamp) -> Result<Checkpoint> {
        let mut map = lock(&self.checkpoints);
        lock(&self.holders).remove(stream);
        Self::take(&mut map, stream, initial)
    }

    async fn claim(
        &self,
        stream: &StreamId,
        initial: Timestamp,
        claim: &crate::ports::Claim,
    ) -> Result<Checkpoint> {
        let mut map = lock(&self.checkpoints);
        let mut holders = lock(&self.holders);
        let now = tokio::time::Instant::now();
        if let Some((holder, expires)) = holders.get(stream)
            && *expires > now
            && *holder != claim.holder
            && !claim.take_over
        {
            return Err(crate::ports::lease_held(stream, holder, *expires - now));
        }
        let cp = Self::take(&mut map, stream, initial)?;
        holders.insert(stream.clone(), (claim.holder.clone(), now + claim.ttl));
        Ok(cp)
    }

    async fn renew(&self, stream: &StreamId, lease: u64, ttl: Duration) -> Result<()> {
        let map = lock(&self.checkpoints);
        let mut holders = lock(&self.holders);
        match Self::get(&map, stream)? {
            Some(cp) if cp.lease == lease => {
                if let Some((_, expires)) = holders.get_mut(stream) {
                    *expires = tokio::time::Instant::now() + ttl;
                }
                Ok(())
            }
            _ => crate::ports::lease_renewed(stream, 0),
        }
    }

    async fn release(&self, stream: &StreamId, lease: u64) -> Result<()> {
        let map = lock(&self.checkpoints);
        if Self::get(&map, stream)?.is_some_and(|cp| cp.lease == lease) {
            lock(&self.holders).remove(stream);
        }
        Ok(())
    }

    async fn load(&self, stream: &StreamId) -> Result<Option<Checkpoint>> {
        Self::get(&lock(&self.checkpoints), stream)
    }

    async fn commit(&self, guard: CommitGuard, next: &Checkpoint) -> Result<()> {
        let mut map = lock(&self.checkpoints);
        let stored = Self::get(&map, &next.stream)?;
        Checkpoint::check_commit(stored.as_ref(), guard, next)?;
        map.insert(next.stream.clone(), next.to_json());
        Ok(())
    }
}

/// A row of [`MemoryAnalytics`].
#[derive(Clone, Debug, PartialEq)]
enum Row {
    Event(Event),
    Quarantined(Quarantined),
}

/// An analytics sink in memory, keyed like the SQL tables' primary keys.
#[derive(Debug, Default)]
pub struct MemoryAnalytics {
    rows: Mutex<BTreeMap<(StreamId, EventId), Row>>,
}

impl MemoryAnalytics {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ids of the events stored for `stream`, sorted.
    pub fn event_ids(&self, stream: &StreamId) -> Vec<EventId> {
        self.ids(stream, |r| matches!(r, Row::Event(_)))
    }

    /// Ids of the quarantined records stored for `stream`, sorted.
    pub fn quarantine_ids(&self, stream: &StreamId) -> Vec<EventId> {
        self.ids(stream, |r| matches!(r, Row::Quarantined(_)))
    }

    /// The stored events of `stream`, sorted by id.
    pub fn events(&self, stream: &StreamId) -> Vec<Event> {
        lock(&self.rows)
            .iter()
            .filter_map(|((s, _), row)| match row {
                Row::Event(e) if s == stream => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The stored event `id` of `stream`.
    pub fn event(&self, stream: &StreamId, id: &EventId) -> Option<Event> {
        match lock(&self.rows).get(&(stream.clone(), id.clone())) {
            Some(Row::Event(e)) => Some(e.clone()),
            _ => None,
        }
    }

    fn ids(&self, stream: &StreamId, keep: impl Fn(&Row) -> bool) -> Vec<EventId> {
        lock(&self.rows)
            .iter()
            .filter(|((s, _), row)| s == stream && keep(row))
            .map(|((_, id), _)| id.clone())
            .collect()
    }
}

#[async_trait]
impl AnalyticsSink for MemoryAnalytics {
    async fn write(&self, batch: &Batch) -> Result<WriteReport> {
        let mut rows = lock(&self.rows);
        let mut report = WriteReport::default();
        for e in &batch.events {
            match rows.entry((batch.stream.clone(), e.id.clone())) {
                std::collections::btree_map::Entry::Occupied(_) => report.duplicates += 1,
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(Row::Event(e.clone()));
                    report.inserted += 1;
                }
            }
        }
        for q in &batch.quarantined {
            let key = (batch.stream.clone(), q.id.clone());
            if let std::collections::btree_map::Entry::Vacant(slot) = rows.entry(key) {
                slot.insert(Row::Quarantined(q.clone()));
                report.quarantined += 1;
            }
        }
        Ok(report)
    }
}

/// An object of [`MemoryArchive`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// Its bytes.
    pub bytes: Bytes,
    /// When it was written.
    pub written_at: Timestamp,
}

/// One line of a [`MemoryArchive`] data object.
#[derive(Debug, Serialize, Deserialize)]
struct ArchivedRecord {
    id: EventId,
    #[serde(with = "rfc3339_nanos")]
    at: Timestamp,
    /// The raw bytes, hex-encoded so they round-trip exactly.
    raw: String,
    /// Set for a quarantined record.
    reason: Option<String>,
    /// The schema's columns, in [`Value::to_json`]'s form (events only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<serde_json::Value>,
}

/// An archive in memory: NDJSON objects in a map, with the key layout of the real archive
/// (`{dataset}/stream={stream}/year=…/hour=…/part-{stream}-{seq}`, `_staging/…`, `_manifests/…`).
#[derive(Debug)]
pub struct MemoryArchive {
    clock: Arc<dyn Clock>,
    objects: Mutex<BTreeMap<String, StoredObject>>,
}

const STAGING: &str = "_staging";
const MANIFESTS: &str = "_manifests";
const QUARANTINE: &str = "_quarantine";

impl MemoryArchive {
    /// An empty archive stamping objects with `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            objects: Mutex::new(BTreeMap::new()),
        }
    }

    /// Every object, by key.
    pub fn objects(&self) -> BTreeMap<String, StoredObject> {
        lock(&self.objects).clone()
    }

    /// Replaces or adds an object, as an attacker or a test would.
    pub fn put_object(&self, key: &str, bytes: Bytes) {
        let written_at = self.clock.now();
        lock(&self.objects).insert(key.to_owned(), StoredObject { bytes, written_at });
    }

    /// Deletes an object, as an attacker or a test would.
    pub fn delete_object(&self, key: &str) -> bool {
        lock(&self.objects).remove(key).is_some()
    }

    /// The staging prefix of a stream.
    pub fn staging_prefix(stream: &StreamId) -> String {
        format!("{STAGING}/{}/", stream.key_segment())
    }

    /// The manifest key of a stream's batch `seq`.
    pub fn manifest_key(stream: &StreamId, seq: u64) -> String {
        format!("{MANIFESTS}/{}/{seq:020}.json", stream.key_segment())
    }

    /// Keys of the staged objects of `stream`.
    pub fn staged_keys(&self, stream: &StreamId) -> Vec<String> {
        let prefix = Self::staging_prefix(stream);
        lock(&self.objects)
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect()
    }

    /// The manifests of `stream` published so far, in seq order.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a manifest object does not parse.
    pub fn manifests(&self, stream: &StreamId) -> Result<Vec<Manifest>> {
        let prefix = format!("{MANIFESTS}/{}/", stream.key_segment());
        lock(&self.objects)
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, o)| Manifest::from_bytes(&o.bytes))
            .collect()
    }

    /// Every record id found in the published (final) data objects of `stream`, one entry per
    /// occurrence: an id that appears twice is archived twice.
    ///
    /// # Errors
    /// [`Error::Invalid`] when an object does not parse.
    pub fn published_ids(&self, stream: &StreamId) -> Result<Vec<EventId>> {
        let marker = format!("part-{}-", stream.key_segment());
        let quarantine = format!("{QUARANTINE}/{}/", stream.key_segment());
        let objects = lock(&self.objects);
        let mut ids = Vec::new();
        for (key, object) in objects.iter() {
            let is_data = !key.starts_with(STAGING)
                && !key.starts_with(MANIFESTS)
                && (key.contains(&marker) || key.starts_with(&quarantine));
            if is_data {
                for record in Self::decode(&object.bytes)? {
                    ids.push(record.id);
                }
            }
        }
        Ok(ids)
    }

    /// The published events of `stream`: each id with its columns in [`Value::to_json`]'s
    /// form, as the conformance probe reads them.
    ///
    /// # Errors
    /// [`Error::Invalid`] when an object does not parse.
    pub fn published_rows(
        &self,
        stream: &StreamId,
    ) -> Result<Vec<(EventId, Vec<serde_json::Value>)>> {
        let marker = format!("part-{}-", stream.key_segment());
        let objects = lock(&self.objects);
        let mut out = Vec::new();
        for (key, object) in objects.iter() {
            if !key.starts_with(STAGING) && !key.starts_with(MANIFESTS) && key.contains(&marker) {
                for record in Self::decode(&object.bytes)? {
                    out.push((record.id, record.values));
                }
            }
        }
        Ok(out)
    }

    /// The raw bytes of every published event of `stream`, by id.
    ///
    /// # Errors
    /// [`Error::Invalid`] when an object does not parse.
    pub fn published_raw(&self, stream: &StreamId) -> Result<BTreeMap<EventId, Bytes>> {
        let marker = format!("part-{}-", stream.key_segment());
        let objects = lock(&self.objects);
        let mut out = BTreeMap::new();
        for (key, object) in objects.iter() {
            if !key.starts_with(STAGING) && key.contains(&marker) {
                for record in Self::decode(&object.bytes)? {
                    let raw = hex::decode(&record.raw)
                        .map_err(|e| Error::invalid("archived record", e.to_string()))?;
                    out.insert(record.id, Bytes::from(raw));
                }
            }
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Vec<ArchivedRecord>> {
        bytes
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice(line)
                    .map_err(|e| Error::invalid("archived record", e.to_string()))
            })
            .collect()
    }

    fn encode<'a>(records: impl Iterator<Item = ArchivedRecord> + 'a) -> (Bytes, u64) {
        let mut out = Vec::new();
        let mut rows = 0;
        for r in records {
            serde_json::to_writer(&mut out, &r)
                .unwrap_or_else(|e| unreachable!("archived record serialization: {e}"));
            out.push(b'\n');
            rows += 1;
        }
        (Bytes::from(out), rows)
    }

    /// Parses `(seq, epoch)` out of a staged key `_staging/{stream}/{seq}-e{epoch}/…`.
    fn staged_seq_epoch(key: &str, prefix: &str) -> Option<(u64, Epoch)> {
        let rest = key.strip_prefix(prefix)?;
        let dir = rest.split('/').next()?;
        let (seq, epoch) = dir.split_once("-e")?;
        Some((seq.parse().ok()?, Epoch(epoch.parse().ok()?)))
    }
}

#[async_trait]
impl ArchiveSink for MemoryArchive {
    async fn stage(&self, batch: &Batch, request: StageRequest) -> Result<Manifest> {
        let stream_key = batch.stream.key_segment();
        let staged_dir = format!(
            "{}{:020}-e{:020}",
            Self::staging_prefix(&batch.stream),
            request.seq,
            request.epoch.0
        );
        // One object per hour the events occurred in, like the real archive.
        let mut by_hour: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
        for e in &batch.events {
            let t = e.occurred_at;
            let partition = format!(
                "{}/stream={}/year={:04}/month={:02}/day={:02}/hour={:02}",
                batch.dataset(),
                batch.stream.key_segment(),
                t.year(),
                t.month(),
                t.day(),
                t.hour()
            );
            by_hour.entry(partition).or_default().push(e);
        }
        let mut objects = Vec::new();
        let mut staged: Vec<(String, Bytes)> = Vec::new();
        for (n, (partition, events)) in by_hour.into_iter().enumerate() {
            let (bytes, rows) = Self::encode(events.into_iter().map(|e| {
                ArchivedRecord {
                    id: e.id.clone(),
                    at: e.occurred_at,
                    raw: hex::encode(&e.raw),
                    reason: None,
                    values: (0..batch.schema.columns().len())
                        .map(|i| e.value(i).map_or(serde_json::Value::Null, Value::to_json))
                        .collect(),
                }
            }));
            let staged_key = format!("{staged_dir}/{n:04}.ndjson");
            objects.push(ManifestObject {
                final_key: format!("{partition}/part-{stream_key}-{:020}.ndjson", request.seq),
                staged_key: staged_key.clone(),
                sha256: Digest::of(&bytes),
                rows,
                bytes: bytes.len() as u64,
            });
            staged.push((staged_key, bytes));
        }
        if !batch.quarantined.is_empty() {
            let (bytes, rows) = Self::encode(batch.quarantined.iter().map(|q| ArchivedRecord {
                id: q.id.clone(),
                at: q.occurred_at.unwrap_or(batch.window.to()),
                raw: hex::encode(&q.raw),
                reason: Some(q.reason.clone()),
                values: Vec::new(),
            }));
            let staged_key = format!("{staged_dir}/quarantine.ndjson");
            objects.push(ManifestObject {
                final_key: format!("{QUARANTINE}/{stream_key}/part-{:020}.ndjson", request.seq),
                staged_key: staged_key.clone(),
                sha256: Digest::of(&bytes),
                rows,
                bytes: bytes.len() as u64,
            });
            staged.push((staged_key, bytes));
        }
        for (key, bytes) in staged {
            self.put_object(&key, bytes);
        }
        Ok(request.manifest(batch, objects))
    }

    async fn publish(&self, manifest: &Manifest) -> Result<()> {
        let now = self.clock.now();
        let mut objects = lock(&self.objects);
        // Create-only, manifest first: another batch under this number stops everything.
        let manifest_key = Self::manifest_key(&manifest.stream, manifest.seq);
        let canonical = Bytes::from(manifest.canonical_bytes());
        if let Some(found) = objects.get(&manifest_key)
            && found.bytes != canonical
        {
            return Err(Error::fatal(
                "archive publish",
                format!(
                    "refusing to overwrite manifest {manifest_key}: the archive holds another \
                     batch {} (the checkpoint store is behind the archive)",
                    manifest.seq
                ),
            ));
        }
        for o in &manifest.objects {
            let staged = objects.get(&o.staged_key).cloned();
            match (staged, objects.get(&o.final_key)) {
                (_, Some(done)) if Digest::of(&done.bytes) == o.sha256 => {}
                (Some(_), Some(_)) => {
                    return Err(Error::fatal(
                        "archive publish",
                        format!(
                            "refusing to overwrite {}: it holds other bytes (the checkpoint \
                             store is behind the archive)",
                            o.final_key
                        ),
                    ));
                }
                (Some(staged), None) => {
                    if Digest::of(&staged.bytes) != o.sha256 {
                        return Err(Error::fatal(
                            "archive publish",
                            format!("staged object {} does not match its manifest", o.staged_key),
                        ));
                    }
                    objects.insert(
                        o.final_key.clone(),
                        StoredObject {
                            bytes: staged.bytes,
                            written_at: now,
                        },
                    );
                }
                (None, _) => {
                    return Err(Error::fatal(
                        "archive publish",
                        format!(
                            "staged object {} is gone and {} does not hold it: data lost",
                            o.staged_key, o.final_key
                        ),
                    ));
                }
            }
        }
        objects.entry(manifest_key).or_insert(StoredObject {
            bytes: canonical,
            written_at: now,
        });
        for o in &manifest.objects {
            objects.remove(&o.staged_key);
        }
        Ok(())
    }

    async fn newest_after(&self, stream: &StreamId, seq: u64) -> Result<Option<Manifest>> {
        let prefix = format!("{MANIFESTS}/{}/", stream.key_segment());
        let after = Self::manifest_key(stream, seq);
        let newest = lock(&self.objects)
            .range(after..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.ends_with(".json"))
            .last()
            .map(|(_, o)| o.bytes.clone());
        newest
            .map(|bytes| Manifest::from_bytes(&bytes))
            .transpose()
            .map(|m| m.filter(|m| m.seq > seq))
    }

    async fn sweep(&self, checkpoint: &Checkpoint, min_age: Duration) -> Result<u64> {
        let prefix = Self::staging_prefix(&checkpoint.stream);
        let keep: Vec<&str> = checkpoint
            .pending
            .iter()
            .flat_map(|m| m.objects.iter().map(|o| o.staged_key.as_str()))
            .collect();
        let cutoff =
            self.clock.now() - chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
        let mut objects = lock(&self.objects);
        let doomed: Vec<String> = objects
            .iter()
            .filter(|(key, object)| {
                let Some((seq, epoch)) = Self::staged_seq_epoch(key, &prefix) else {
                    return false;
                };
                !keep.contains(&key.as_str())
                    && object.written_at <= cutoff
                    && (epoch < checkpoint.epoch || seq <= checkpoint.seq)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &doomed {
            objects.remove(key);
        }
        Ok(doomed.len() as u64)
    }
}
