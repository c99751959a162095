//! The `cflogs` binary as a process: the demo, `once` and `verify` against the simulator,
//! configuration errors, and that no secret ever reaches its output.

mod common;

use std::process::Output;

use chrono::{DurationRound, TimeDelta, Utc};

const TOKEN: &str = "cli-test-token-9f8e7d-secret";

fn cflogs(dir: &std::path::Path, env: &[(&str, String)], args: &[&str]) -> Output {
    common::command(dir, env, args)
        .output()
        .expect("cflogs runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `cflogs demo` with `events` over 2 hours into `dir/sub`.
fn demo(dir: &std::path::Path, events: &str, sub: &str) -> Output {
    cflogs(
        dir,
        &[],
        &["demo", "--events", events, "--hours", "2", "--dir", sub],
    )
}

#[test]
fn the_demo_runs_with_no_services_and_reports_what_landed() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(dir.path(), "1500", "demo");
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("every one landed, exactly once"), "{all}");
    assert!(all.contains("events by action"), "{all}");
    assert!(all.contains(", 0 findings"), "{all}");
    assert!(dir.path().join("demo/cflogs.sqlite3").exists());
    assert!(dir.path().join("demo/archive/_manifests").exists());
}

#[test]
fn commands_that_touch_only_the_stores_need_no_cloudflare_settings() {
    let dir = tempfile::tempdir().unwrap();
    let filled = demo(dir.path(), "1200", "data");
    assert!(filled.status.success(), "{}", text(&filled));
    // No CLOUDFLARE_* at all: only where the database and the archive are.
    let env = [("CFLOGS_DATA_DIR", "data".to_owned())];
    let run = |args: &[&str]| {
        let out = cflogs(dir.path(), &env, args);
        (out.status.code(), text(&out))
    };
    let (code, all) = run(&["verify"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains("audit-") && all.contains(", 0 findings"),
        "{all}"
    );

    // A lost database: rows and checkpoint come back from the archive alone.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("data/cflogs.sqlite3{suffix}")));
    }
    let (code, all) = run(&["rehydrate"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains(" events inserted, 0 already present")
            && all.contains("checkpoint restored from the archive: batch "),
        "{all}"
    );
    let inserted = |all: &str| -> u64 {
        let head = &all[..all.find(" events inserted").expect("a rehydrate summary")];
        head.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let events = inserted(&all);
    assert!(
        events > 1100,
        "the demo's events minus the malformed few: {all}"
    );
    let (_, again) = run(&["rehydrate"]);
    assert!(
        again.contains(&format!("0 events inserted, {events} already present"))
            && again.contains("checkpoint in step with the archive"),
        "{again}"
    );
    let (code, all) = run(&["verify"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains(", 0 findings"),
        "the restored head matches: {all}"
    );
    let (code, all) = run(&["migrate"]);
    assert_eq!(code, Some(0), "{all}");
    assert!(
        all.contains("SQLite") && all.contains("archive audit-"),
        "{all}"
    );

    let (code, all) = run(&["doctor", "--archive"]);
    assert_eq!(code, Some(0), "{all}");
    assert_eq!(all.matches("PASS ").count(), 2, "database, archive: {all}");
    assert!(!all.contains("cloudflare"), "{all}");
    let (code, all) = run(&["doctor"]);
    assert_eq!(code, Some(1), "{all}");
    assert!(
        all.contains("FAIL cloudflare settings: CLOUDFLARE_API_TOKEN is not set")
            && all.contains("PASS database (SQLite)")
            && all.contains("PASS archive"),
        "{all}"
    );
    // What reads from Cloudflare still says what is missing.
    let (code, all) = run(&["once"]);
    assert_eq!(code, Some(2), "{all}");
    assert!(all.contains("CLOUDFLARE_API_TOKEN is not set"), "{all}");
}

#[test]
fn configuration_errors_name_the_variable_and_exit_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "CLOUDFLARE_API_TOKEN is not set"),
        (
            vec![("CLOUDFLARE_API_TOKEN", TOKEN.into())],
            "CLOUDFLARE_ACCOUNT_ID is not set",
        ),
        (
            vec![
                ("CLOUDFLARE_API_TOKEN", TOKEN.into()),
                ("CLOUDFLARE_ACCOUNT_ID", "abc".into()),
                ("CLOUDFLARE_API_BASE_URL", "htp:/nowhere".into()),
            ],
            "CLOUDFLARE_API_BASE_URL",
        ),
        (
            vec![
                ("CLOUDFLARE_API_TOKEN", TOKEN.into()),
                ("CLOUDFLARE_ACCOUNT_ID", "abc".into()),
                ("POLL_INTERVAL_SECONDS", "often".into()),
            ],
            "POLL_INTERVAL_SECONDS",
        ),
    ];
    for (env, want) in cases {
        let out = cflogs(dir.path(), &env, &["once"]);
        let all = text(&out);
        assert_eq!(out.status.code(), Some(2), "{all}");
        assert!(all.contains(want), "expected {want:?} in {all}");
        assert!(!all.contains(TOKEN), "the token leaked: {all}");
    }
}

#[test]
fn empty_log_and_config_variables_mean_unset_and_a_bad_format_names_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let base = vec![
        ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
        ("CLOUDFLARE_ACCOUNT_ID", "abc".to_owned()),
    ];
    let mut empty = base.clone();
    empty.extend([
        ("CFLOGS_LOG", String::new()),
        ("CFLOGS_LOG_FORMAT", String::new()),
        ("CFLOGS_CONFIG", String::new()),
    ]);
    let out = cflogs(dir.path(), &empty, &["config"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut bad = base;
    bad.push(("CFLOGS_LOG_FORMAT", "yaml".to_owned()));
    let out = cflogs(dir.path(), &bad, &["config"]);
    let all = text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("CFLOGS_LOG_FORMAT=\"yaml\" is not a log format"),
        "{all}"
    );
}

#[test]
fn config_prints_the_effective_settings_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        // A .env shared with docker compose: its own variables are none of cflogs' business.
        format!("DATABASE_URL=postgres://cflogs:pg-secret-42@127.0.0.1:5432/audit\nCLOUDFLARE_API_TOKEN={TOKEN}\nGRAFANA_ADMIN_PASSWORD=grafana-secret-42\n"),
    )
    .unwrap();
    let out = cflogs(
        dir.path(),
        &[
            ("CLOUDFLARE_ACCOUNT_ID", "abc".into()),
            ("S3_BUCKET", "audit".into()),
            ("S3_ENDPOINT", "http://127.0.0.1:9000".into()),
            ("S3_ACCESS_KEY", "minio".into()),
            ("S3_SECRET_KEY", "s3-secret-42".into()),
        ],
        &["config"],
    );
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("CLOUDFLARE_API_TOKEN=***") && all.contains("from .env"),
        "{all}"
    );
    assert!(
        all.contains("postgres://cflogs:***@127.0.0.1:5432/audit"),
        "{all}"
    );
    for secret in [TOKEN, "pg-secret-42", "s3-secret-42", "grafana-secret-42"] {
        assert!(!all.contains(secret), "{secret} leaked: {all}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_is_exactly_once_across_runs_and_verify_catches_tampering() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let sim = common::start(
        common::simulator(11, TOKEN, to - TimeDelta::hours(3), to, 3000)
            .error_rate(0.05)
            .cut_body_rate(0.02),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
        ("CLOUDFLARE_ACCOUNT_ID", "acc1".to_owned()),
        ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
        (
            "INITIAL_CHECKPOINT",
            (to - TimeDelta::hours(4)).to_rfc3339(),
        ),
        ("CFLOGS_DATA_DIR", "data".to_owned()),
    ];
    let run = |args: &'static [&'static str]| {
        let dir = dir.path().to_owned();
        let env = env.clone();
        async move {
            tokio::task::spawn_blocking(move || cflogs(&dir, &env, args))
                .await
                .unwrap()
        }
    };
    let first = run(&["once"]).await;
    let all = text(&first);
    assert!(first.status.success(), "{all}");
    assert!(all.contains("audit-v1/account/acc1: 3000 events"), "{all}");
    let second = run(&["once"]).await;
    assert!(
        text(&second).contains("audit-v1/account/acc1: 0 events"),
        "{}",
        text(&second)
    );
    assert!(!all.contains(TOKEN) && !text(&second).contains(TOKEN));

    let verify = run(&["verify"]).await;
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(text(&verify).contains(", 0 findings"), "{}", text(&verify));

    // Lose the database (rows and checkpoints): rehydrate brings every event back from the
    // archive, once, and the checkpoint with them; the stream then goes on where it was.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("data/cflogs.sqlite3{suffix}")));
    }
    let back = run(&["rehydrate"]).await;
    assert!(
        text(&back).contains("3000 events inserted, 0 already present")
            && text(&back).contains("checkpoint restored from the archive: batch "),
        "{}",
        text(&back)
    );
    let again = run(&["rehydrate"]).await;
    assert!(
        text(&again).contains("0 events inserted, 3000 already present")
            && text(&again).contains("checkpoint in step with the archive"),
        "{}",
        text(&again)
    );
    let resumed = run(&["once"]).await;
    assert!(
        resumed.status.success() && text(&resumed).contains("audit-v1/account/acc1: 0 events"),
        "{}",
        text(&resumed)
    );

    // Change one byte of one archived object: verify must say so and fail.
    let mut victim = None;
    let mut stack = vec![dir.path().join("data/archive/audit_logs")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if victim.is_none() {
                victim = Some(p);
            }
        }
    }
    let victim = victim.expect("an archived object");
    let mut bytes = std::fs::read(&victim).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0xff;
    std::fs::write(&victim, bytes).unwrap();
    let verify = run(&["verify"]).await;
    assert_eq!(verify.status.code(), Some(1), "{}", text(&verify));
    assert!(
        text(&verify).to_lowercase().contains("modified"),
        "{}",
        text(&verify)
    );
    sim.shutdown().await.unwrap();
}

/// The checkpoint store loses its state in the two ways operators meet: a new, empty database
/// (here the SQLite file deleted, as a relative path run from another directory would give),
/// and a database restored from an older backup. The first is restored from the archive by
/// itself; the second is refused with a message naming `cflogs rehydrate`, which restores it.
/// Either way no batch is published twice and the archive stays one clean chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_or_restored_checkpoint_store_never_restarts_the_archive_chain() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let from = to - TimeDelta::hours(3);
    let sim = common::start(common::simulator(23, TOKEN, from, to, 3000)).await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
        ("CLOUDFLARE_ACCOUNT_ID", "acc1".to_owned()),
        ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
        (
            "INITIAL_CHECKPOINT",
            (from - TimeDelta::hours(1)).to_rfc3339(),
        ),
        ("CFLOGS_DATA_DIR", "data".to_owned()),
        ("CFLOGS_BATCH_MAX_EVENTS", "400".to_owned()),
    ];
    let run = |args: Vec<String>| {
        let dir = dir.path().to_owned();
        let env = env.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                cflogs(&dir, &env, &a)
            })
            .await
            .unwrap()
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let db = |suffix: &str| dir.path().join(format!("data/cflogs.sqlite3{suffix}"));
    let backup = |suffix: &str| dir.path().join(format!("backup.sqlite3{suffix}"));
    let copy_db = |from: &dyn Fn(&str) -> std::path::PathBuf,
                   to: &dyn Fn(&str) -> std::path::PathBuf| {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(to(suffix));
            if from(suffix).exists() {
                std::fs::copy(from(suffix), to(suffix)).unwrap();
            }
        }
    };
    let events_of = |out: &std::process::Output| -> u64 {
        let all = text(out);
        let at = all
            .find("audit-v1/account/acc1: ")
            .unwrap_or_else(|| panic!("no summary: {all}"));
        all[at + "audit-v1/account/acc1: ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count: {all}"))
    };

    // The first 90 minutes, then a backup of the database, then the rest.
    let mid = (from + TimeDelta::minutes(90)).to_rfc3339();
    let since = (from - TimeDelta::minutes(1)).to_rfc3339();
    let first = run(args(&["backfill", "--since", &since, "--until", &mid])).await;
    assert!(first.status.success(), "{}", text(&first));
    copy_db(&db, &backup);
    let rest = run(args(&["once"])).await;
    assert!(rest.status.success(), "{}", text(&rest));
    let verify = run(args(&["verify"])).await;
    assert!(text(&verify).contains(", 0 findings"), "{}", text(&verify));

    // 1. A new, empty database: restored from the archive by itself, nothing read twice.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(db(suffix));
    }
    let fresh = run(args(&["once"])).await;
    assert!(
        fresh.status.success() && text(&fresh).contains("checkpoint restored from the archive"),
        "{}",
        text(&fresh)
    );
    assert_eq!(events_of(&fresh), 0, "{}", text(&fresh));
    let verify = run(args(&["verify"])).await;
    assert!(text(&verify).contains(", 0 findings"), "{}", text(&verify));

    // 2. The older backup restored: refused, saying how; rehydrate restores rows and checkpoint.
    copy_db(&backup, &db);
    let refused = run(args(&["once"])).await;
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("behind the archive")
            && text(&refused).contains("cflogs rehydrate"),
        "{}",
        text(&refused)
    );
    let back = run(args(&["rehydrate"])).await;
    assert!(back.status.success(), "{}", text(&back));
    assert!(
        text(&back).contains("checkpoint restored from the archive: batch "),
        "{}",
        text(&back)
    );
    let again = run(args(&["rehydrate"])).await;
    assert!(
        text(&again).contains("0 events inserted, 3000 already present")
            && text(&again).contains("checkpoint in step with the archive"),
        "every event once in the database: {}",
        text(&again)
    );
    let resumed = run(args(&["once"])).await;
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(events_of(&resumed), 0, "{}", text(&resumed));
    let verify = run(args(&["verify"])).await;
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    assert!(text(&verify).contains(", 0 findings"), "{}", text(&verify));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_each_dependency_on_its_own() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let sim = common::start(
        common::simulator(3, TOKEN, to - TimeDelta::hours(2), to, 100)
            .token_without_audit_permission("no-permission-token-secret"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let env = |token: &str| {
        vec![
            ("CLOUDFLARE_API_TOKEN", token.to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "acc1".to_owned()),
            ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
            ("CFLOGS_DATA_DIR", "data".to_owned()),
        ]
    };
    let path = dir.path().to_owned();
    let good = env(TOKEN);
    let out = tokio::task::spawn_blocking(move || cflogs(&path, &good, &["doctor"]))
        .await
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(
        all.matches("PASS ").count(),
        4,
        "token, audit logs, database, archive: {all}"
    );

    let path = dir.path().to_owned();
    let restricted = env("no-permission-token-secret");
    let out = tokio::task::spawn_blocking(move || cflogs(&path, &restricted, &["doctor"]))
        .await
        .unwrap();
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("FAIL audit logs of audit-v1/account/acc1")
            && all.contains("Account Settings Read"),
        "{all}"
    );
    assert!(
        all.contains("PASS database (SQLite)") && all.contains("PASS archive"),
        "one failure hides nothing: {all}"
    );
    assert!(!all.contains("no-permission-token-secret"), "{all}");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_reads_a_past_range_with_progress_and_refuses_to_go_back() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let since = to - TimeDelta::hours(6);
    let sim = common::start(common::simulator(13, TOKEN, since, to, 1_200)).await;
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
        ("CLOUDFLARE_ACCOUNT_ID", "acc1".to_owned()),
        ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
        ("CFLOGS_DATA_DIR", "data".to_owned()),
    ];
    let since_arg = since.to_rfc3339();
    let path = dir.path().to_owned();
    let e = env.clone();
    let s = since_arg.clone();
    let out = tokio::task::spawn_blocking(move || cflogs(&path, &e, &["backfill", "--since", &s]))
        .await
        .unwrap();
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("audit-v1/account/acc1: backfilled 1200 events"),
        "{all}"
    );
    assert!(
        all.contains("events/s") && all.contains("ETA") && all.contains("100.0%"),
        "progress: {all}"
    );

    // The stream is past --since now: a second backfill from the same start is refused.
    let path = dir.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        cflogs(&path, &env, &["backfill", "--since", &since_arg])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("never goes back"), "{}", text(&out));
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_command_shows_the_token_even_at_trace_level() {
    let secret = "tok-trace-level-secret-5c2e";
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let sim = common::start(
        common::simulator(17, secret, to - TimeDelta::hours(1), to, 200).error_rate(0.1),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut leaks = Vec::new();
    for format in ["human", "json"] {
        let env = vec![
            ("CLOUDFLARE_API_TOKEN", secret.to_owned()),
            ("CLOUDFLARE_ACCOUNT_ID", "acc1".to_owned()),
            ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
            (
                "INITIAL_CHECKPOINT",
                (to - TimeDelta::hours(2)).to_rfc3339(),
            ),
            ("CFLOGS_DATA_DIR", "data".to_owned()),
            ("CFLOGS_LOG", "trace".to_owned()),
            ("CFLOGS_LOG_FORMAT", format.to_owned()),
        ];
        for args in [
            &["config"][..],
            &["once"],
            &["verify"],
            &["doctor"],
            &["rehydrate"],
            &["backfill", "--since", "2020-01-01T00:00:00Z"],
        ] {
            let path = dir.path().to_owned();
            let e = env.clone();
            let a: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            let out = tokio::task::spawn_blocking(move || {
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                cflogs(&path, &e, &a)
            })
            .await
            .unwrap();
            let all = text(&out);
            assert!(all.len() > 100, "{args:?} printed almost nothing: {all}");
            if all.contains(secret) {
                leaks.push(format!("{format} {args:?}"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "the token appeared in the output of {leaks:?}"
    );
    sim.shutdown().await.unwrap();
}
