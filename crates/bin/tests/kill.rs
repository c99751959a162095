//! The binary's acceptance test: `cflogs run` against the simulator (5% server errors, 2% cut
//! bodies), killed with SIGKILL at ten random moments and restarted, then caught up, leaves
//! every simulated event exactly once in PostgreSQL and exactly once in the archive.
//!
//! Needs a PostgreSQL server, from the integration harness (`cflogs-integration`):
//! `CFLOGS_TEST_DATABASE_URL=postgres://…` (an admin connection; the test gets a database of its
//! own), which `bash scripts/test.sh` sets, or TimescaleDB in a container when Docker runs.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};

mod common;
use sqlx::{Connection, Row};

const TOKEN: &str = "kill-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_killed_ten_times_still_lands_every_event_exactly_once() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let from = to - TimeDelta::hours(6);
    let sim = common::start(
        common::simulator(31, TOKEN, from, to, 20_000)
            .bursts(0.1, 4)
            .malformed_rate(0.002)
            .error_rate(0.05)
            .cut_body_rate(0.02),
    )
    .await;

    let db = cflogs_integration::TestDatabase::new().await;
    let db_url = db.url().to_owned();

    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let storage = common::storage_env(&db_url, &archive);
    let mut env = common::sim_env(&sim, TOKEN);
    env.extend(storage.iter().cloned());
    env.extend([
        (
            "INITIAL_CHECKPOINT",
            (from - TimeDelta::minutes(10)).to_rfc3339(),
        ),
        ("POLL_INTERVAL_SECONDS", "1".into()),
        ("CFLOGS_BATCH_MAX_EVENTS", "400".into()),
        // Small pages and a small budget spread the work over all ten runs, so every kill can
        // land in the middle of a batch rather than on a process that has caught up.
        ("CLOUDFLARE_PER_PAGE", "50".into()),
        ("CLOUDFLARE_RATE_LIMIT_PER_5_MIN", "3000".into()),
        ("CFLOGS_METRICS_ADDR", "127.0.0.1:0".into()),
        // One instance restarted: each run takes its predecessor's lease back at once.
        ("CFLOGS_INSTANCE_ID", "kill-test".into()),
    ]);
    let command = |args: &[&str]| {
        let mut cmd = common::command(dir.path(), &env, args);
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        cmd
    };

    // A fixed-seed generator for the kill moments, so a failure reproduces.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut kills = Vec::new();
    for _ in 0..10 {
        let wait = Duration::from_millis(150 + next() % 1_350);
        let mut child = command(&["run"]).spawn().expect("cflogs run starts");
        tokio::time::sleep(wait).await;
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(!status.success(), "the process was killed, not finished");
        kills.push(wait.as_millis());
    }

    // The kills interrupted real work: the killed runs committed part of the events.
    let mut check = sqlx::PgConnection::connect(&db_url).await.unwrap();
    let before: i64 = sqlx::query("SELECT count(*) FROM audit_logs")
        .fetch_one(&mut check)
        .await
        .unwrap()
        .get(0);
    let seq: i64 = sqlx::query("SELECT coalesce(max(seq), 0) FROM cflogs_checkpoints")
        .fetch_one(&mut check)
        .await
        .unwrap()
        .get(0);
    check.close().await.unwrap();
    assert!(
        before > 0,
        "no killed run got as far as a batch: the test proves nothing"
    );
    assert!(
        before < 18_000,
        "the killed runs finished the job: the kills came too late"
    );

    // Restart once more and let it catch up. The last killed run's lease is still live, so
    // this one-off run takes the stream over explicitly.
    let mut once = command(&["once", "--take-over"]);
    let out = tokio::task::spawn_blocking(move || once.output().unwrap())
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the final run failed after kills at {kills:?} ms:\n{log}"
    );

    let want = sim.visible_ids("acc1");
    let malformed = sim.malformed("acc1").len();
    let mut conn = sqlx::PgConnection::connect(&db_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT event_id FROM audit_logs WHERE stream = 'audit-v1/account/acc1' ORDER BY event_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "PostgreSQL rows vs simulated events (kills at {kills:?} ms)"
    );
    assert_eq!(got, want, "every event exactly once in PostgreSQL");
    let q: i64 = sqlx::query("SELECT count(*) FROM quarantine")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        q as usize, malformed,
        "every malformed event quarantined once"
    );
    conn.close().await.unwrap();

    let mut archived = Vec::new();
    common::parquet_ids(&archive.join("audit_logs"), "event_id", &mut archived);
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for id in &archived {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "archived more than once: {twice:?}");
    archived.sort();
    assert_eq!(archived, want, "every event exactly once in the archive");

    let verify = tokio::task::spawn_blocking({
        // Only what verify needs: the storage (and, for now, the Cloudflare settings).
        let mut env = common::sim_env(&sim, TOKEN);
        env.extend(storage.iter().cloned());
        let mut cmd = common::command(dir.path(), &env, &["verify"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    println!(
        "killed at {kills:?} ms; the killed runs had committed {seq} batches, {before} events; {} events and {malformed} quarantined, each once in PostgreSQL and in the archive",
        want.len()
    );
    sim.shutdown().await.unwrap();
}
