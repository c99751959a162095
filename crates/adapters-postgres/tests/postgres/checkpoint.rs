//! The checkpoint store under concurrency and with a COMMIT whose outcome is unknown.

use std::sync::Arc;

use cflogs_core::testing::conformance;
use cflogs_core::{Checkpoint, CheckpointStore, Error, StreamId, Timestamp};
use cflogs_postgres::PostgresClient;
use chrono::TimeZone;

use crate::common::{CommitCutter, Cut, TestDb, through, upstream};

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
        + chrono::Duration::nanoseconds(123_456_789)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_committers_on_one_stream_exactly_one_wins_each_seq() {
    // One store over 8 pooled connections: the commits really run side by side.
    let db = TestDb::new().await;
    let config = db.config.clone().with_pool_size(8).unwrap();
    let client = PostgresClient::connect(&config).await.unwrap();
    let store = client.checkpoint_store();
    conformance::commit_race(&[&store], &StreamId::new("race/a").unwrap(), 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_acquires_take_distinct_increasing_epochs() {
    let db = TestDb::new().await;
    let config = db.config.clone().with_pool_size(8).unwrap();
    let client = PostgresClient::connect(&config).await.unwrap();
    let store = Arc::new(client.checkpoint_store());
    let stream = StreamId::new("race/acquire").unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = store.clone();
        let stream = stream.clone();
        tasks.spawn(async move { store.acquire(&stream, t0()).await.unwrap().epoch });
    }
    let mut epochs = Vec::new();
    while let Some(e) = tasks.join_next().await {
        epochs.push(e.unwrap().0);
    }
    epochs.sort_unstable();
    assert_eq!(
        epochs,
        (1..=8).collect::<Vec<_>>(),
        "every acquire takes its own epoch"
    );
    let stored = store.load(&stream).await.unwrap().unwrap();
    assert_eq!(stored.epoch.0, 8);
    assert_eq!(stored.watermark, t0(), "to the nanosecond");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rejects_a_successor_that_breaks_the_rules() {
    let db = TestDb::new().await;
    let store = db.client().await.checkpoint_store();
    let stream = StreamId::new("rules/a").unwrap();
    let cp = store.acquire(&stream, t0()).await.unwrap();
    let backwards = Checkpoint {
        watermark: cp.watermark - chrono::Duration::seconds(1),
        ..cp.clone()
    };
    assert!(matches!(
        store.commit(cp.guard(), &backwards).await,
        Err(Error::Invalid { .. })
    ));
    let no_manifest = Checkpoint {
        seq: 1,
        ..cp.clone()
    };
    assert!(matches!(
        store.commit(cp.guard(), &no_manifest).await,
        Err(Error::Invalid { .. })
    ));
    assert_eq!(store.load(&stream).await.unwrap(), Some(cp));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_outcome_is_unknown_is_transient_and_load_resolves_it() {
    let db = TestDb::new().await;
    let direct = db.client().await.checkpoint_store();
    let proxy = CommitCutter::start(upstream(&db)).await;
    let proxied = PostgresClient::connect(&through(&db, &proxy))
        .await
        .unwrap()
        .checkpoint_store();
    let stream = StreamId::new("cut/a").unwrap();
    let cp = proxied.acquire(&stream, t0()).await.unwrap();

    // The COMMIT reaches the server, its answer never comes back: applied.
    let applied = conformance::successor(&cp, chrono::Duration::nanoseconds(1));
    proxy.arm(Cut::AfterCommitSent);
    let result = proxied.commit(cp.guard(), &applied).await;
    assert!(
        matches!(&result, Err(e) if e.is_transient()),
        "an unknown COMMIT outcome must be Transient, got {result:?}"
    );
    assert_eq!(
        direct.load(&stream).await.unwrap(),
        Some(applied.clone()),
        "load tells it was applied"
    );

    // The connection goes before the COMMIT is sent: not applied.
    let lost = conformance::successor(&applied, chrono::Duration::nanoseconds(2));
    proxy.arm(Cut::BeforeCommitSent);
    let result = proxied.commit(applied.guard(), &lost).await;
    assert!(
        matches!(&result, Err(e) if e.is_transient()),
        "an unknown COMMIT outcome must be Transient, got {result:?}"
    );
    assert_eq!(
        direct.load(&stream).await.unwrap(),
        Some(applied.clone()),
        "load tells it was not applied"
    );

    // The pool recovers: the retry goes through.
    proxied.commit(applied.guard(), &lost).await.unwrap();
    assert_eq!(direct.load(&stream).await.unwrap(), Some(lost));
}
