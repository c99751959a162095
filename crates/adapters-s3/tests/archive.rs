//! The core's `ArchiveSink` conformance suite and the tamper tests, on memory, a local
//! directory and Garage (S3).

mod common;

use bytes::Bytes;
use cflogs_core::testing::conformance;
use cflogs_core::testing::samples::audit_events;
use cflogs_core::{
    ArchiveSink, Batch, Checkpoint, Dataset, Digest, Epoch, Manifest, Quarantined, StageRequest,
    StreamId, Timestamp, Window,
};
use cflogs_s3::{Finding, ParquetArchive, VerifyReport, layout};
use chrono::TimeZone;
use common::{Backend, Probe};

async fn conformance_on(backend: Backend) {
    let (archive, _dir) = common::archive(backend, &common::unique("conformance")).await;
    let probe = Probe::new(&archive);
    conformance::archive_sink(&archive, &probe, "conf").await;
    for schema in common::every_schema() {
        conformance::archive_schema(&archive, &probe, "conf", &schema).await;
    }
}

#[tokio::test]
async fn conformance_memory() {
    conformance_on(Backend::Memory).await;
}

#[tokio::test]
async fn conformance_local_directory() {
    conformance_on(Backend::File).await;
}

#[tokio::test]
async fn conformance_garage() {
    conformance_on(Backend::S3).await;
}

fn at(h: u32, m: u32) -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap()
}

/// Three published batches of a stream (events over two hours, one quarantined record) and the
/// chain head the checkpoint would hold.
struct Published {
    archive: ParquetArchive,
    probe: Probe,
    stream: StreamId,
    manifests: Vec<Manifest>,
    head: Digest,
    _dir: Option<common::Guard>,
}

async fn published(backend: Backend, test: &str) -> Published {
    let (archive, dir) = common::archive(backend, &common::unique(test)).await;
    let stream = StreamId::new("audit-v1/account/tamper").unwrap();
    let mut prev = Digest::GENESIS;
    let mut manifests = Vec::new();
    for seq in 1..=3u64 {
        let start = at(9 + seq as u32, 50);
        let events = audit_events("acc", seq * 1000, 40, start, chrono::Duration::seconds(30));
        let quarantined = if seq == 2 {
            vec![Quarantined::new(
                Bytes::from_static(b"{\"when\":\"yesterday\"}"),
                "bad time",
            )]
        } else {
            Vec::new()
        };
        let batch = Batch {
            stream: stream.clone(),
            schema: cflogs_core::testing::samples::audit_schema(),
            window: Window::new(start, start + chrono::Duration::minutes(21)).unwrap(),
            events,
            quarantined,
        };
        let m = common::stage_publish(
            &archive,
            &batch,
            StageRequest {
                seq,
                epoch: Epoch(1),
                prev,
                now: at(13, 0),
            },
        )
        .await;
        prev = m.hash();
        manifests.push(m);
    }
    let report = archive.verify(&stream, Some(prev)).await.expect("verify");
    assert!(
        report.is_clean(),
        "a fresh archive verifies clean: {report}"
    );
    assert_eq!(report.manifests_checked, 3);
    assert_eq!(
        report.objects_checked,
        manifests
            .iter()
            .map(|m| m.objects.len() as u64)
            .sum::<u64>()
    );
    assert_eq!(report.exit_code(), 0);
    Published {
        probe: Probe::new(&archive),
        archive,
        stream,
        manifests,
        head: prev,
        _dir: dir,
    }
}

async fn report(p: &Published) -> VerifyReport {
    let report = p
        .archive
        .verify(&p.stream, Some(p.head))
        .await
        .expect("verify");
    assert!(!report.is_clean(), "tampering MUST be found");
    assert_eq!(report.exit_code(), 1, "a finding gives a non-zero result");
    report
}

async fn tamper_modified_byte(backend: Backend) {
    let p = published(backend, "tamper-byte").await;
    let key = p.manifests[1].objects[0].final_key.clone();
    let mut bytes = p.probe.object_bytes(&key).await.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    p.probe.put(&key, Bytes::from(bytes)).await;
    let r = report(&p).await;
    assert!(
        matches!(&r.findings[..], [Finding::ModifiedObject { seq: 2, key: k, .. }] if *k == key),
        "{r}"
    );
}

async fn tamper_deleted_object(backend: Backend) {
    let p = published(backend, "tamper-delete").await;
    let key = p.manifests[0].objects[1].final_key.clone();
    cflogs_core::testing::conformance::ArchiveProbe::delete(&p.probe, &key)
        .await
        .unwrap();
    let r = report(&p).await;
    assert!(
        matches!(&r.findings[..], [Finding::MissingObject { seq: 1, key: k }] if *k == key),
        "{r}"
    );
}

async fn tamper_added_objects(backend: Backend) {
    let p = published(backend, "tamper-add").await;
    // A forged partition file in a real partition, one in a dataset folder nobody uses, and an
    // extra quarantine file. An object of another stream is not this stream's business.
    let forged = layout::data_key(&Dataset::audit_logs(), at(10, 0), &p.stream, 99);
    let elsewhere = layout::data_key(&Dataset::new("other_logs").unwrap(), at(3, 0), &p.stream, 4);
    let quarantine = layout::quarantine_key(&p.stream, 77);
    let other = layout::data_key(
        &Dataset::audit_logs(),
        at(10, 0),
        &StreamId::new("audit-v1/account/tamper-b").unwrap(),
        1,
    );
    for key in [&forged, &elsewhere, &quarantine, &other] {
        p.probe.put(key, Bytes::from_static(b"PAR1 forged")).await;
    }
    let r = report(&p).await;
    let mut unlisted: Vec<&str> = r
        .findings
        .iter()
        .map(|f| match f {
            Finding::UnlistedObject { key } => key.as_str(),
            other => panic!("unexpected finding {other}"),
        })
        .collect();
    unlisted.sort_unstable();
    let mut want = vec![forged.as_str(), elsewhere.as_str(), quarantine.as_str()];
    want.sort_unstable();
    assert_eq!(unlisted, want, "{r}");
}

async fn tamper_edited_manifests(backend: Backend) {
    // An edited middle manifest breaks the next link.
    let p = published(backend, "tamper-manifest").await;
    let mut edited = p.manifests[1].clone();
    edited.objects[0].rows += 1;
    p.probe
        .put(
            &layout::manifest_key(&p.stream, 2),
            Bytes::from(edited.canonical_bytes()),
        )
        .await;
    let r = report(&p).await;
    assert!(
        matches!(&r.findings[..], [Finding::BrokenLink { seq: 3, expected, found }]
            if *expected == p.manifests[1].hash() && *found == edited.hash()),
        "{r}"
    );

    // An edited last manifest (which also hides a modified object by recording its new hash)
    // disagrees with the checkpoint's chain head.
    let p = published(backend, "tamper-head").await;
    let key = p.manifests[2].objects[0].final_key.clone();
    let forged = Bytes::from_static(b"PAR1 replaced content");
    p.probe.put(&key, forged.clone()).await;
    let mut edited = p.manifests[2].clone();
    edited.objects[0].sha256 = Digest::of(&forged);
    edited.objects[0].bytes = forged.len() as u64;
    p.probe
        .put(
            &layout::manifest_key(&p.stream, 3),
            Bytes::from(edited.canonical_bytes()),
        )
        .await;
    let r = report(&p).await;
    assert!(
        matches!(&r.findings[..], [Finding::HeadMismatch { expected, found: Some(f), last_seq: Some(3) }]
            if *expected == p.head && *f == edited.hash()),
        "{r}"
    );

    // A manifest that is not valid JSON any more.
    let p = published(backend, "tamper-garbled").await;
    p.probe
        .put(
            &layout::manifest_key(&p.stream, 1),
            Bytes::from_static(b"{\"version\":1,"),
        )
        .await;
    let r = report(&p).await;
    assert!(
        r.findings
            .iter()
            .any(|f| matches!(f, Finding::UnreadableManifest { .. })),
        "{r}"
    );
    assert!(
        r.findings
            .iter()
            .any(|f| matches!(f, Finding::BrokenLink { seq: 2, .. })),
        "{r}"
    );
}

async fn tamper_removed_manifests(backend: Backend) {
    // A gap: manifest 2 removed; its objects become unlisted.
    let p = published(backend, "tamper-gap").await;
    cflogs_core::testing::conformance::ArchiveProbe::delete(
        &p.probe,
        &layout::manifest_key(&p.stream, 2),
    )
    .await
    .unwrap();
    let r = report(&p).await;
    assert!(
        r.findings.contains(&Finding::MissingManifest { seq: 2 }),
        "{r}"
    );
    for o in &p.manifests[1].objects {
        assert!(
            r.findings.contains(&Finding::UnlistedObject {
                key: o.final_key.clone()
            }),
            "{r}"
        );
    }

    // A truncated chain: the last manifest removed; only the checkpoint's head tells.
    let p = published(backend, "tamper-truncate").await;
    cflogs_core::testing::conformance::ArchiveProbe::delete(
        &p.probe,
        &layout::manifest_key(&p.stream, 3),
    )
    .await
    .unwrap();
    let r = report(&p).await;
    assert!(
        r.findings.iter().any(|f| matches!(f,
            Finding::HeadMismatch { expected, last_seq: Some(2), .. } if *expected == p.head)),
        "{r}"
    );
}

async fn tamper_suite(backend: Backend) {
    tamper_modified_byte(backend).await;
    tamper_deleted_object(backend).await;
    tamper_added_objects(backend).await;
    tamper_edited_manifests(backend).await;
    tamper_removed_manifests(backend).await;
}

#[tokio::test]
async fn tamper_memory() {
    tamper_suite(Backend::Memory).await;
}

#[tokio::test]
async fn tamper_local_directory() {
    tamper_suite(Backend::File).await;
}

#[tokio::test]
async fn tamper_garage() {
    tamper_suite(Backend::S3).await;
}

#[tokio::test]
async fn verify_of_an_empty_stream_is_clean_and_checks_the_head() {
    let (archive, _dir) = common::archive(Backend::Memory, "empty").await;
    let stream = StreamId::new("audit-v1/account/none").unwrap();
    assert!(archive.verify(&stream, None).await.unwrap().is_clean());
    assert!(
        archive
            .verify(&stream, Some(Digest::GENESIS))
            .await
            .unwrap()
            .is_clean()
    );
    let r = archive
        .verify(&stream, Some(Digest::of(b"x")))
        .await
        .unwrap();
    assert!(matches!(
        &r.findings[..],
        [Finding::HeadMismatch {
            found: None,
            last_seq: None,
            ..
        }]
    ));
}

/// A checkpoint store that lost its state (a restored backup, a new database) makes a stream
/// start its chain again at seq 1 over an archive that holds batches 1 to 3. Whatever it
/// stages for those numbers (other events, another epoch, a window shifted or not), publishing
/// refuses before it overwrites anything, saying why; with the manifest of batch 3 gone the
/// final objects still refuse. The archive keeps every byte and verifies clean against the
/// old head; a publish of the very batch the archive holds is still a no-op.
async fn restarted_chain(backend: Backend) {
    let p = published(backend, "restarted").await;
    let history = p.probe.history().await;
    let mut prev = Digest::GENESIS;
    for (seq, shift) in [(1u64, 0i64), (2, 7), (3, 0)] {
        if seq == 3 {
            let key = layout::manifest_key(&p.stream, 3);
            conformance::ArchiveProbe::delete(&p.probe, &key)
                .await
                .expect("delete manifest 3");
        }
        let start = at(9 + seq as u32, 50) + chrono::Duration::minutes(shift);
        let events = audit_events(
            "acc",
            seq * 1000 + 500,
            25,
            start,
            chrono::Duration::seconds(20),
        );
        let batch = Batch {
            stream: p.stream.clone(),
            schema: cflogs_core::testing::samples::audit_schema(),
            window: Window::new(start, start + chrono::Duration::minutes(21)).unwrap(),
            events,
            quarantined: Vec::new(),
        };
        let request = StageRequest {
            seq,
            epoch: Epoch(2),
            prev,
            now: at(15, 0),
        };
        let m = p.archive.stage(&batch, request).await.expect("stage");
        match p.archive.publish(&m).await {
            Err(cflogs_core::Error::Fatal { source, .. }) => {
                let detail = source.to_string();
                assert!(
                    detail.contains("refusing to overwrite") && detail.contains("checkpoint"),
                    "batch {seq}: the refusal says what and how to recover: {detail}"
                );
            }
            other => panic!("batch {seq}: publishing over history must be refused, got {other:?}"),
        }
        prev = m.hash();
    }
    let mut expected = history.clone();
    expected.remove(&layout::manifest_key(&p.stream, 3));
    assert_eq!(
        p.probe.history().await,
        expected,
        "not one byte of the archive changed (but the manifest the test deleted)"
    );
    p.probe
        .put(
            &layout::manifest_key(&p.stream, 3),
            history[&layout::manifest_key(&p.stream, 3)].clone(),
        )
        .await;
    for m in &p.manifests {
        p.archive
            .publish(m)
            .await
            .expect("the archive's own batch is a no-op");
    }
    assert_eq!(p.probe.history().await, history);
    let report = p
        .archive
        .verify(&p.stream, Some(p.head))
        .await
        .expect("verify");
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn a_restarted_chain_never_overwrites_history_memory() {
    restarted_chain(Backend::Memory).await;
}

#[tokio::test]
async fn a_restarted_chain_never_overwrites_history_local_directory() {
    restarted_chain(Backend::File).await;
}

#[tokio::test]
async fn a_restarted_chain_never_overwrites_history_garage() {
    restarted_chain(Backend::S3).await;
}

#[tokio::test]
async fn publish_after_a_final_object_was_modified_is_fatal() {
    let p = published(Backend::Memory, "republish").await;
    let key = p.manifests[0].objects[0].final_key.clone();
    p.probe.put(&key, Bytes::from_static(b"other")).await;
    match p.archive.publish(&p.manifests[0]).await {
        Err(cflogs_core::Error::Fatal { .. }) => {}
        other => panic!("expected Fatal, got {other:?}"),
    }
    // The other manifests still publish again as no-ops.
    p.archive
        .publish(&p.manifests[1])
        .await
        .expect("idempotent");
}

#[tokio::test]
async fn sweep_spares_unrelated_keys_and_other_streams() {
    let (archive, _dir) = common::archive(Backend::Memory, "sweep").await;
    let probe = Probe::new(&archive);
    let a = StreamId::new("s/a").unwrap();
    let b = StreamId::new("s/a-b").unwrap();
    for stream in [&a, &b] {
        let events = audit_events("acc", 1, 3, at(10, 0), chrono::Duration::seconds(1));
        let batch = Batch {
            stream: stream.clone(),
            schema: cflogs_core::testing::samples::audit_schema(),
            window: Window::new(at(10, 0), at(10, 1)).unwrap(),
            events,
            quarantined: Vec::new(),
        };
        archive
            .stage(&batch, common::first_batch(at(11, 0)))
            .await
            .unwrap();
    }
    probe
        .put(
            &format!("{}/README", layout::staging_dir(&a)),
            Bytes::from_static(b"x"),
        )
        .await;
    let holder = Checkpoint {
        seq: 1,
        epoch: Epoch(2),
        ..Checkpoint::genesis(a.clone(), at(10, 0))
    };
    let deleted = archive
        .sweep(&holder, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "only stream a's staged object");
    let keys = probe.keys().await;
    assert!(keys.iter().any(|k| k.starts_with(&layout::staging_dir(&b))));
    assert!(keys.iter().any(|k| k.ends_with("/README")));
}

impl Probe {
    async fn object_bytes(&self, key: &str) -> Bytes {
        cflogs_core::testing::conformance::ArchiveProbe::object(self, key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"))
    }
}

#[tokio::test]
async fn verify_streams_lists_once_and_reports_each_stream_as_verify_does() {
    let p = published(Backend::Memory, "streams").await;
    let key = p.manifests[1].objects[0].final_key.clone();
    let mut bytes = p.probe.object_bytes(&key).await.to_vec();
    bytes[0] ^= 0x01;
    p.probe.put(&key, Bytes::from(bytes)).await;
    let none = StreamId::new("audit-v1/account/none").unwrap();
    let reports = p
        .archive
        .verify_streams(&[(none.clone(), None), (p.stream.clone(), Some(p.head))])
        .await
        .unwrap();
    assert_eq!(reports.len(), 2);
    assert!(reports[0].is_clean(), "{}", reports[0]);
    assert_eq!(reports[0].manifests_checked, 0);
    assert_eq!(
        reports[1],
        p.archive.verify(&p.stream, Some(p.head)).await.unwrap()
    );
    assert!(
        matches!(
            &reports[1].findings[..],
            [Finding::ModifiedObject { seq: 2, .. }]
        ),
        "{}",
        reports[1]
    );
}

/// `published`, rewritten into the layout of releases before the `stream=` partition: data
/// objects moved to `{dataset}/year=…/`, manifests naming those keys, chained again.
async fn earlier_release(backend: Backend, test: &str) -> (Published, Vec<String>) {
    let mut p = published(backend, test).await;
    let segment = format!("stream={}/", p.stream.key_segment());
    let mut prev = Digest::GENESIS;
    let mut old_keys = Vec::new();
    for m in &mut p.manifests {
        for o in &mut m.objects {
            if o.final_key.starts_with('_') {
                continue;
            }
            let old = o.final_key.replacen(&segment, "", 1);
            let bytes = p.probe.object_bytes(&o.final_key).await;
            p.probe.put(&old, bytes).await;
            cflogs_core::testing::conformance::ArchiveProbe::delete(&p.probe, &o.final_key)
                .await
                .unwrap();
            assert_eq!(
                layout::relocated(&old).as_deref(),
                Some(o.final_key.as_str())
            );
            o.final_key = old.clone();
            old_keys.push(old);
        }
        m.prev = prev;
        prev = m.hash();
        p.probe
            .put(
                &layout::manifest_key(&p.stream, m.seq),
                Bytes::from(m.canonical_bytes()),
            )
            .await;
    }
    p.head = prev;
    let clean = p.archive.verify(&p.stream, Some(p.head)).await.unwrap();
    assert!(clean.is_clean(), "the earlier layout verifies: {clean}");
    (p, old_keys)
}

async fn relocation(backend: Backend) {
    let (p, old_keys) = earlier_release(backend, "relocate").await;
    assert_eq!(p.archive.streams().await.unwrap(), vec![p.stream.clone()]);
    let r = p.archive.relocate(&p.stream).await.unwrap();
    assert_eq!((r.moved, r.already, r.kept), (old_keys.len() as u64, 0, 0));
    let keys = p.probe.keys().await;
    for old in &old_keys {
        assert!(!keys.contains(old), "{old} still there: {keys:?}");
        assert!(keys.contains(&layout::relocated(old).unwrap()), "{keys:?}");
    }
    let clean = p.archive.verify(&p.stream, Some(p.head)).await.unwrap();
    assert!(
        clean.is_clean(),
        "moved objects verify by the manifest's hashes: {clean}"
    );
    // Read back through the key the manifest names.
    let schema = cflogs_core::testing::samples::audit_schema();
    match p.archive.read_object(&old_keys[0], &schema).await.unwrap() {
        cflogs_s3::Decoded::Events(events) => assert!(!events.is_empty()),
        cflogs_s3::Decoded::Quarantined(_) => panic!("a data object"),
    }
    // Again: nothing left to move.
    let r = p.archive.relocate(&p.stream).await.unwrap();
    assert_eq!((r.moved, r.already), (0, old_keys.len() as u64));

    // A moved object is as tamper-evident as before.
    let moved = layout::relocated(&old_keys[1]).unwrap();
    let mut bytes = p.probe.object_bytes(&moved).await.to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    p.probe.put(&moved, Bytes::from(bytes)).await;
    let r = report(&p).await;
    assert!(
        matches!(&r.findings[..], [Finding::ModifiedObject { key, .. }] if *key == moved),
        "{r}"
    );
    let e = cflogs_core::error_chain(&p.archive.relocate(&p.stream).await.unwrap_err());
    assert!(
        e.contains("holds other bytes") && e.contains("verify"),
        "{e}"
    );
    cflogs_core::testing::conformance::ArchiveProbe::delete(&p.probe, &moved)
        .await
        .unwrap();
    let r = report(&p).await;
    assert!(
        matches!(&r.findings[..], [Finding::MissingObject { key, .. }] if *key == old_keys[1]),
        "{r}"
    );
    assert!(
        p.archive.relocate(&p.stream).await.is_err(),
        "an object missing at both keys is an error, not a silent skip"
    );
}

#[tokio::test]
async fn an_earlier_layout_is_relocated_and_still_verified_memory() {
    relocation(Backend::Memory).await;
}

#[tokio::test]
async fn an_earlier_layout_is_relocated_and_still_verified_garage() {
    relocation(Backend::S3).await;
}
