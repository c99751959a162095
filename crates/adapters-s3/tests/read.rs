//! Reading the archive back: manifests in order, and every object's records exactly as they
//! were archived (the basis of `cflogs rehydrate`).

use bytes::Bytes;
use cflogs_core::testing::samples::audit_events;
use cflogs_core::{ArchiveSink, Batch, Digest, Epoch, Quarantined, StageRequest, StreamId, Window};
use cflogs_s3::{ArchiveConfig, Decoded, ParquetArchive};
use chrono::TimeZone;

#[tokio::test]
async fn published_batches_read_back_exactly() {
    let archive = ParquetArchive::open(&ArchiveConfig::memory("read-test").unwrap()).unwrap();
    let stream = StreamId::new("audit-v1/account/acc").unwrap();
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 9, 59, 0)
        .unwrap();
    let events = audit_events("acc", 0, 300, start, chrono::Duration::milliseconds(700));
    let bad = Quarantined::new(
        Bytes::from_static(b"{\"when\":\"never\"}"),
        "unparsable time",
    );
    let mut prev = Digest::GENESIS;
    for (seq, chunk) in [(1, &events[..150]), (2, &events[150..])] {
        let batch = Batch {
            stream: stream.clone(),
            schema: cflogs_core::testing::samples::audit_schema(),
            window: Window::new(
                chunk[0].occurred_at,
                chunk[chunk.len() - 1].occurred_at + chrono::Duration::seconds(1),
            )
            .unwrap(),
            events: chunk.to_vec(),
            quarantined: if seq == 1 {
                vec![bad.clone()]
            } else {
                Vec::new()
            },
        };
        let m = archive
            .stage(
                &batch,
                StageRequest {
                    seq,
                    epoch: Epoch(1),
                    prev,
                    now: start,
                },
            )
            .await
            .unwrap();
        archive.publish(&m).await.unwrap();
        prev = m.hash();
    }
    let manifests = archive.manifests(&stream).await.unwrap();
    assert_eq!(manifests.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    let mut back = Vec::new();
    let mut quarantined = Vec::new();
    for m in &manifests {
        for o in &m.objects {
            match archive
                .read_object(&o.final_key, &cflogs_core::testing::samples::audit_schema())
                .await
                .unwrap()
            {
                Decoded::Events(e) => back.extend(e),
                Decoded::Quarantined(q) => quarantined.extend(q),
            }
        }
    }
    back.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    assert_eq!(
        back, events,
        "ids, times, raw bytes and mapped columns come back exactly"
    );
    assert_eq!(quarantined, vec![bad]);

    // Rehydrated into a store, every event and quarantined record lands once; again, nothing.
    let store = cflogs_core::testing::MemoryAnalytics::new();
    let r = archive.rehydrate(&stream, &store).await.unwrap();
    assert_eq!(
        (r.batches, r.inserted, r.duplicates, r.quarantined),
        (2, 300, 0, 1)
    );
    let mut ids = store.event_ids(&stream);
    ids.sort();
    let mut want: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(store.quarantine_ids(&stream).len(), 1);
    let again = archive.rehydrate(&stream, &store).await.unwrap();
    assert_eq!(
        (again.inserted, again.duplicates, again.quarantined),
        (0, 300, 0)
    );
}
