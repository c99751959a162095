//! Scale-out by leases: several `cflogs run` instances share many streams on one PostgreSQL.
//! Each stream is held by one instance at a time; when its holder is killed (SIGKILL) or
//! frozen (SIGSTOP, a zombie that later wakes up) another takes it once the lease expires; a
//! one-off `once` is refused while a daemon holds a stream, `--take-over` takes it, and the
//! daemon takes the stream back once it is free. At the end every simulated event of every
//! account is exactly once in PostgreSQL and in the archive, and `verify` is clean.
//!
//! Needs a PostgreSQL server, from the integration harness (`cflogs-integration`):
//! `CFLOGS_TEST_DATABASE_URL=postgres://…`, which `bash scripts/test.sh` sets, or TimescaleDB in
//! a container when Docker runs.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use sqlx::{Connection, Row};

mod common;

const TOKEN: &str = "lease-test-token";
const ACCOUNTS: [&str; 6] = ["a1", "a2", "a3", "a4", "a5", "a6"];
const PER_ACCOUNT: u64 = 2_500;

/// Sends `signal` to `child` (SIGSTOP, SIGCONT, SIGTERM).
fn signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill(1) runs")
        .success();
    assert!(ok, "kill -{signal} {}", child.id());
}

/// Who holds each stream now (streams nobody holds are left out; none before the first
/// instance created the schema).
async fn holders(db_url: &str) -> BTreeMap<String, String> {
    let mut conn = sqlx::PgConnection::connect(db_url).await.unwrap();
    let rows = sqlx::query(
        "SELECT stream, holder FROM cflogs_checkpoints
         WHERE holder IS NOT NULL AND lease_expires_at > now()",
    )
    .fetch_all(&mut conn)
    .await;
    conn.close().await.unwrap();
    let rows = match rows {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
        rows => rows.unwrap(),
    };
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// The last lines of every daemon's log in `dir`, for a failure message.
fn logs(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for instance in ["i1", "i2", "i3", "i4"] {
        let text = std::fs::read_to_string(dir.join(format!("{instance}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        out.push_str(&format!("--- {instance} ---\n"));
        for line in &lines[lines.len().saturating_sub(15)..] {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Polls [`holders`] until `done` says so or `within` passed; the last answer.
async fn wait_holders(
    db_url: &str,
    within: Duration,
    done: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    let started = Instant::now();
    loop {
        let now = holders(db_url).await;
        if done(&now) || started.elapsed() > within {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_streams_and_take_over_from_the_dead_and_the_frozen() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let from = to - TimeDelta::hours(6);
    let mut sim = cflogs_sim::Simulator::builder()
        .seed(41)
        .token(TOKEN)
        .span(from, to, PER_ACCOUNT)
        .bursts(0.05, 4)
        .malformed_rate(0.002)
        .error_rate(0.03);
    for account in ACCOUNTS {
        sim = sim.account(account);
    }
    let sim = common::start(sim).await;

    let db = cflogs_integration::TestDatabase::new().await;
    let db_url = db.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("archive");
    let storage = common::storage_env(&db_url, &archive);
    let mut env = common::sim_env(&sim, TOKEN);
    env.retain(|(k, _)| *k != "CLOUDFLARE_ACCOUNT_ID");
    env.extend(storage.iter().cloned());
    env.extend([
        ("CLOUDFLARE_ACCOUNT_ID", ACCOUNTS.join(",")),
        (
            "INITIAL_CHECKPOINT",
            (from - TimeDelta::minutes(10)).to_rfc3339(),
        ),
        ("POLL_INTERVAL_SECONDS", "1".into()),
        ("CFLOGS_BATCH_MAX_EVENTS", "200".into()),
        // Small pages and a small budget keep the instances busy for the whole test.
        ("CLOUDFLARE_PER_PAGE", "50".into()),
        ("CLOUDFLARE_RATE_LIMIT_PER_5_MIN", "3000".into()),
        ("CFLOGS_LEASE_TTL_SECONDS", "3".into()),
        ("CFLOGS_METRICS_ADDR", "127.0.0.1:0".into()),
    ]);
    let command = |instance: &str, args: &[&str]| {
        let mut env = env.clone();
        env.push(("CFLOGS_INSTANCE_ID", instance.to_owned()));
        let mut cmd = common::command(dir.path(), &env, args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };
    // Each daemon's log goes to <instance>.log in the test's directory; failures show them.
    let daemon = |instance: &str| {
        let log = std::fs::File::create(dir.path().join(format!("{instance}.log"))).unwrap();
        command(instance, &["run"])
            .stderr(log)
            .spawn()
            .expect("cflogs run")
    };
    let streams: BTreeSet<String> = ACCOUNTS
        .iter()
        .map(|a| format!("audit-v1/account/{a}"))
        .collect();
    let all_held =
        |h: &BTreeMap<String, String>| h.keys().cloned().collect::<BTreeSet<_>>() == streams;
    // Every stream held, each by one of `who`.
    let held_by = |h: &BTreeMap<String, String>, who: &[&str]| {
        all_held(h) && h.values().all(|holder| who.contains(&holder.as_str()))
    };
    // A one-off command of the operator ("ops"), with its exit code and log.
    let one_off = |args: &[&str]| {
        let out = command("ops", args)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), log)
    };

    // Three instances start together; every stream gets exactly one holder.
    let mut zombie = daemon("i1");
    let mut victim = daemon("i2");
    let mut third = daemon("i3");
    let first = wait_holders(&db_url, Duration::from_secs(30), all_held).await;
    assert!(
        all_held(&first),
        "every stream held within 30 s: {first:?}\n{}",
        logs(dir.path())
    );

    // i1 freezes (a zombie: its leases stop being renewed but it still thinks it holds them)
    // and i2 dies; their streams move to the living within a few lease TTLs.
    signal(&zombie, "STOP");
    victim.kill().unwrap();
    victim.wait().unwrap();
    let frozen_at = Instant::now();
    let moved = wait_holders(&db_url, Duration::from_secs(30), |h| held_by(h, &["i3"])).await;
    assert!(
        held_by(&moved, &["i3"]),
        "i1 frozen and i2 dead: i3 takes every stream within 30 s: {moved:?}\n{}",
        logs(dir.path())
    );
    let takeover = frozen_at.elapsed();
    let mut fourth = daemon("i4");

    // The zombie wakes: its commits are fenced, it reports standby and does not take back
    // what the others hold. Then i3 dies and the rest is shared by i1 and i4.
    signal(&zombie, "CONT");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let woken = holders(&db_url).await;
    assert!(
        held_by(&woken, &["i3"]),
        "the woken zombie and the new i4 take nothing i3 holds: {woken:?}\n{}",
        logs(dir.path())
    );
    third.kill().unwrap();
    third.wait().unwrap();
    let shared = wait_holders(&db_url, Duration::from_secs(30), |h| {
        held_by(h, &["i1", "i4"])
    })
    .await;
    assert!(
        held_by(&shared, &["i1", "i4"]),
        "i3 dead: i1 and i4 hold every stream within 30 s: {shared:?}\n{}",
        logs(dir.path())
    );

    // A one-off run is refused while daemons hold the streams, and says by whom.
    let (code, log) = one_off(&["once"]);
    assert_eq!(code, Some(2), "once while daemons hold the streams: {log}");
    assert!(
        log.contains("held by i1") || log.contains("held by i4"),
        "the refusal names the holder: {log}"
    );
    assert!(log.contains("--take-over"), "the refusal says how: {log}");

    // With --take-over it runs; afterwards the daemons take every stream back.
    let (code, log) = one_off(&["once", "--take-over"]);
    assert_eq!(code, Some(0), "once --take-over: {log}");
    let back = wait_holders(&db_url, Duration::from_secs(30), |h| {
        held_by(h, &["i1", "i4"])
    })
    .await;
    assert!(
        held_by(&back, &["i1", "i4"]),
        "the daemons take their streams back after once --take-over: {back:?}\n{}",
        logs(dir.path())
    );

    // Both daemons stop cleanly on SIGTERM (releasing their leases); a last run catches up.
    for child in [&mut zombie, &mut fourth] {
        signal(child, "TERM");
    }
    for child in [&mut zombie, &mut fourth] {
        let status = child.wait().unwrap();
        assert!(status.success(), "a daemon stopped on SIGTERM: {status:?}");
    }
    let left = holders(&db_url).await;
    assert!(
        left.is_empty(),
        "SIGTERM released every lease: {left:?}\n{}",
        logs(dir.path())
    );
    let (code, log) = one_off(&["once"]);
    assert_eq!(code, Some(0), "the last once: {log}");

    let mut conn = sqlx::PgConnection::connect(&db_url).await.unwrap();
    let mut archived = Vec::new();
    common::parquet_ids(&archive.join("audit_logs"), "event_id", &mut archived);
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for id in &archived {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "archived more than once: {twice:?}");
    let mut total = 0;
    let mut malformed = 0;
    for account in ACCOUNTS {
        let want = sim.visible_ids(account);
        let rows =
            sqlx::query("SELECT event_id FROM audit_logs WHERE stream = $1 ORDER BY event_id")
                .bind(format!("audit-v1/account/{account}"))
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let got: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(
            got, want,
            "{account}: every event exactly once in PostgreSQL"
        );
        let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
        let here = counts.keys().filter(|id| want.contains(*id)).count();
        assert_eq!(here, want.len(), "{account}: every event in the archive");
        total += want.len();
        malformed += sim.malformed(account).len();
    }
    assert_eq!(archived.len(), total, "nothing else in the archive");
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

    let mut verify = common::command(dir.path(), &storage, &["verify"]);
    let verify = verify.output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    println!(
        "{} streams; holders at start {first:?}; i3 held every stream {:.1} s after i1 froze \
         and i2 died; after i3 died {shared:?}; {total} events and {malformed} quarantined, \
         each once",
        streams.len(),
        takeover.as_secs_f64()
    );
    sim.shutdown().await.unwrap();
}
