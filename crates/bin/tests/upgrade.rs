//! Upgrading a deployment written by an earlier release: `tests/fixtures/release-0.1.0` holds
//! the SQLite database and the local archive that cflogs 0.1.0 (commit 89baf37, before the
//! archive had a `stream=` partition) wrote by backfilling 2026-10-31T23:00Z–2026-11-01T03:00Z
//! of the simulator below; `make_the_release_fixture` (ignored) is how it was made. The test
//! migrates a copy, checks that checkpoints, rows and the chain are intact, and goes on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use cflogs_core::Timestamp;
use cflogs_sim::{RunningSim, SimulatorBuilder};

const TOKEN: &str = "upgrade-token-not-a-secret";
const STREAM: &str = "audit-v1/account/acc1";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-0.1.0")
}

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The same simulated history every time: absolute times, one seed.
fn history() -> SimulatorBuilder {
    common::simulator(
        7,
        TOKEN,
        t("2026-11-01T00:00:00Z"),
        t("2026-11-01T06:00:00Z"),
        1_200,
    )
    .malformed_rate(0.01)
}

fn cflogs(dir: &Path, sim: &RunningSim, args: &[&str]) -> Output {
    let mut env = common::sim_env(sim, TOKEN);
    env.push(("CFLOGS_METRICS_ADDR", "off".to_owned()));
    common::command(dir, &env, args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture; run only with the release the fixture stands for"]
async fn make_the_release_fixture() {
    let sim = common::start(history()).await;
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = cflogs(
        &dir,
        &sim,
        &[
            "backfill",
            "--since",
            "2026-10-31T23:00:00Z",
            "--until",
            "2026-11-01T03:00:00Z",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    sim.shutdown().await.unwrap();
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn copy_dir(from: &Path, to: &Path) {
    for file in files(from) {
        let target = to.join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&file), target).unwrap();
    }
}

async fn sqlite_ids(db: &Path) -> (Vec<String>, i64, i64) {
    use sqlx::{Connection, Row};
    let url = format!("sqlite://{}", db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT event_id FROM audit_logs WHERE stream = ? ORDER BY event_id")
        .bind(STREAM)
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let quarantined: i64 = sqlx::query("SELECT count(*) FROM quarantine")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    let seq: i64 = sqlx::query("SELECT seq FROM cflogs_checkpoints WHERE stream = ?")
        .bind(STREAM)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    conn.close().await.unwrap();
    (rows.iter().map(|r| r.get(0)).collect(), quarantined, seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_moves_an_earlier_release_archive_into_stream_partitions_and_the_stream_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cflogs-data");
    copy_dir(&fixture().join("cflogs-data"), &data);
    let archive = data.join("archive");
    let old_layout = |keys: &[String]| -> Vec<String> {
        keys.iter()
            .filter(|k| k.starts_with("audit_logs/year="))
            .cloned()
            .collect()
    };
    let before = files(&archive);
    let old = old_layout(&before);
    assert!(
        !old.is_empty(),
        "the fixture is in the earlier layout: {before:?}"
    );
    let manifests_before: Vec<(String, Vec<u8>)> = before
        .iter()
        .filter(|k| k.starts_with("_manifests/"))
        .map(|k| (k.clone(), std::fs::read(archive.join(k)).unwrap()))
        .collect();
    let (rows_before, quarantined_before, seq_before) =
        sqlite_ids(&data.join("cflogs.sqlite3")).await;
    assert_eq!(
        (rows_before.len(), seq_before),
        (803, 4),
        "the fixture as made"
    );

    let sim = common::start(history()).await;
    let out = cflogs(dir.path(), &sim, &["migrate"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("archive {STREAM}: {} objects moved", old.len())),
        "{}",
        text(&out)
    );

    // Moved, not copied; manifests untouched; rows and checkpoint untouched.
    let after = files(&archive);
    assert!(old_layout(&after).is_empty(), "{after:?}");
    for key in &old {
        let moved = key.replacen("audit_logs/", "audit_logs/stream=audit-v1~account~acc1/", 1);
        assert!(after.contains(&moved), "{key} not at {moved}: {after:?}");
    }
    assert_eq!(after.len(), before.len(), "{after:?}");
    for (key, bytes) in &manifests_before {
        assert_eq!(&std::fs::read(archive.join(key)).unwrap(), bytes, "{key}");
    }
    assert_eq!(
        sqlite_ids(&data.join("cflogs.sqlite3")).await,
        (rows_before.clone(), quarantined_before, seq_before)
    );
    let verify = cflogs(dir.path(), &sim, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    // Idempotent.
    let again = cflogs(dir.path(), &sim, &["migrate"]);
    assert!(
        text(&again).contains(&format!(
            "0 objects moved to the stream= partition, {} already there",
            old.len()
        )),
        "{}",
        text(&again)
    );

    // The stream goes on from its checkpoint: the chain continues, every event exactly once.
    let out = cflogs(
        dir.path(),
        &sim,
        &[
            "backfill",
            "--since",
            "2026-11-01T03:30:00Z",
            "--until",
            "2026-11-01T07:00:00Z",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (rows, quarantined, seq) = sqlite_ids(&data.join("cflogs.sqlite3")).await;
    assert!(seq > seq_before, "new batches were committed");
    let mut unique = rows.clone();
    unique.dedup();
    assert_eq!(unique.len(), rows.len(), "an event stored twice");
    assert_eq!(rows, sim.visible_ids("acc1"), "every event exactly once");
    assert_eq!(quarantined as usize, sim.malformed("acc1").len());
    let verify = cflogs(dir.path(), &sim, &["verify"]);
    assert!(verify.status.success(), "{}", text(&verify));
    assert!(
        old_layout(&files(&archive)).is_empty(),
        "new batches in the stream partition"
    );

    // Rehydrating the migrated archive into a new database gives the same rows.
    std::fs::remove_file(data.join("cflogs.sqlite3")).unwrap();
    let _ = std::fs::remove_file(data.join("cflogs.sqlite3-wal"));
    let _ = std::fs::remove_file(data.join("cflogs.sqlite3-shm"));
    let out = cflogs(dir.path(), &sim, &["rehydrate"]);
    assert!(out.status.success(), "{}", text(&out));
    use sqlx::{Connection, Row};
    let url = format!("sqlite://{}", data.join("cflogs.sqlite3").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let n: i64 = sqlx::query("SELECT count(*) FROM audit_logs")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    conn.close().await.unwrap();
    assert_eq!(n as usize, rows.len(), "{}", text(&out));
    sim.shutdown().await.unwrap();
}
