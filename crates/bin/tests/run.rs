//! `cflogs run` as a service: it becomes ready, its metrics count what it ingested, and
//! SIGTERM stops it cleanly with status 0.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};

mod common;

const TOKEN: &str = "run-test-token";

/// A plain HTTP/1.0 GET on 127.0.0.1: status and body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of the first sample line starting with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_metrics_and_health_and_stops_on_sigterm() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let sim = common::start(
        common::simulator(5, TOKEN, to - TimeDelta::hours(2), to, 2_000).error_rate(0.05),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = common::sim_env(&sim, TOKEN);
    env.extend([
        (
            "INITIAL_CHECKPOINT",
            (to - TimeDelta::hours(3)).to_rfc3339(),
        ),
        ("POLL_INTERVAL_SECONDS", "1".to_owned()),
        ("CFLOGS_METRICS_ADDR", format!("127.0.0.1:{port}")),
    ]);
    let mut child = KillOnDrop(
        common::command(dir.path(), &env, &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let child = &mut child.0;

    let started = Instant::now();
    let mut ready = false;
    while started.elapsed() < Duration::from_secs(60) {
        if let Some((200, _)) = get(port, "/readyz") {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ready, "/readyz never answered 200");
    assert_eq!(get(port, "/healthz").map(|r| r.0), Some(200));
    let want = sim.visible_ids("acc1").len() as f64;
    let mut ingested = 0.0;
    while started.elapsed() < Duration::from_secs(60) {
        let (_, metrics) = get(port, "/metrics").unwrap();
        ingested = sample(
            &metrics,
            "cflogs_events_ingested_total{stream=\"audit-v1/account/acc1\"}",
        )
        .unwrap_or(0.0);
        if ingested >= want {
            assert!(
                sample(&metrics, "cflogs_batches_committed_total{").is_some_and(|b| b >= 1.0),
                "{metrics}"
            );
            assert!(
                sample(&metrics, "cflogs_api_requests_total{outcome=\"sent\"}")
                    .is_some_and(|n| n >= 3.0),
                "{metrics}"
            );
            assert!(
                sample(&metrics, "cflogs_watermark_lag_seconds{").is_some_and(|lag| lag < 600.0),
                "{metrics}"
            );
            assert!(
                metrics.contains("cflogs_commit_duration_seconds_bucket"),
                "{metrics}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ingested, want, "the metrics count every ingested event");
    let (_, metrics) = get(port, "/metrics").unwrap();
    dashboards_use_only_exported_metrics(&metrics);

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "cflogs run did not stop within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains(TOKEN), "the token leaked into the log");
    sim.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stream_is_restarted_and_reported_while_the_others_run() {
    let to = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap() - TimeDelta::minutes(5);
    let sim = common::start(common::simulator(
        6,
        TOKEN,
        to - TimeDelta::hours(1),
        to,
        500,
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut env = common::sim_env(&sim, TOKEN);
    env.retain(|(k, _)| *k != "CLOUDFLARE_ACCOUNT_ID");
    env.extend([
        // acc2 is not an account of the simulator: every read of it fails (404).
        ("CLOUDFLARE_ACCOUNT_ID", "acc1,acc2".to_owned()),
        (
            "INITIAL_CHECKPOINT",
            (to - TimeDelta::hours(2)).to_rfc3339(),
        ),
        ("POLL_INTERVAL_SECONDS", "1".to_owned()),
        ("CFLOGS_METRICS_ADDR", format!("127.0.0.1:{port}")),
    ]);
    let mut child = KillOnDrop(
        common::command(dir.path(), &env, &["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let want = sim.visible_ids("acc1").len() as f64;
    let started = Instant::now();
    let (mut ingested, mut restarts) = (0.0, 0.0);
    let mut metrics = String::new();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some((_, m)) = get(port, "/metrics") {
            ingested = sample(
                &m,
                "cflogs_events_ingested_total{stream=\"audit-v1/account/acc1\"}",
            )
            .unwrap_or(0.0);
            restarts = sample(
                &m,
                "cflogs_stream_restarts_total{stream=\"audit-v1/account/acc2\"}",
            )
            .unwrap_or(0.0);
            metrics = m;
            if ingested >= want && restarts >= 2.0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ingested, want, "the healthy stream goes on: {metrics}");
    assert!(
        restarts >= 2.0,
        "the failing stream is restarted: {metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "cflogs_stream_up{stream=\"audit-v1/account/acc1\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "cflogs_stream_up{stream=\"audit-v1/account/acc2\"}"
        ),
        Some(0.0),
        "{metrics}"
    );
    let (status, health) = get(port, "/healthz").unwrap();
    assert_eq!(status, 503, "{health}");
    assert!(
        health.contains("audit-v1/account/acc1: running"),
        "{health}"
    );
    assert!(
        health.contains("audit-v1/account/acc2: restarting"),
        "{health}"
    );
    assert!(!health.contains(TOKEN), "{health}");
    child.0.kill().unwrap();
    let _ = child.0.wait();
    sim.shutdown().await.unwrap();
}

/// A `cflogs run` that a failed assertion must not leave running (holding its port).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sample names `/metrics` can have, from its `# TYPE` lines (cflogs creates every stream's
/// series at start, so every family is there before its first sample): a counter's `_total`, a histogram's `_bucket`, `_sum` and
/// `_count`, a gauge's own name.
fn exported_names(metrics: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for line in metrics.lines() {
        let mut parts = line.strip_prefix("# TYPE ").unwrap_or_default().split(' ');
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                names.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// Every `cflogs_…` metric a Grafana panel queries exists in what the service exports, so a
/// renamed metric cannot leave an empty panel behind.
fn dashboards_use_only_exported_metrics(metrics: &str) {
    let exported = exported_names(metrics);
    assert!(exported.len() >= 8, "{exported:?}");
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/dashboards");
    let mut used = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut stack = vec![&dashboard];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Object(map) => {
                    if let Some(serde_json::Value::String(expr)) = map.get("expr") {
                        for name in metric_names(expr) {
                            assert!(
                                exported.contains(&name),
                                "{}: {name} is not exported by cflogs (exported: {exported:?})",
                                path.display()
                            );
                            used += 1;
                        }
                    }
                    stack.extend(map.values());
                }
                serde_json::Value::Array(items) => stack.extend(items),
                _ => {}
            }
        }
    }
    assert!(
        used >= 6,
        "the pipeline dashboard queries cflogs metrics ({used} found)"
    );
}

/// The `cflogs_…` identifiers in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("cflogs_") {
        let starts_word = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if starts_word {
            out.push(name.clone());
        }
        rest = &rest[at + name.len()..];
    }
    out
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le) (rate(cflogs_commit_duration_seconds_bucket[5m]))) + x_cflogs_no"
        ),
        vec!["cflogs_commit_duration_seconds_bucket".to_owned()]
    );
}
