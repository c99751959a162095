//! Every PostgreSQL query of the Grafana dashboards in `deploy/grafana/dashboards/` runs against
//! the schema the migrations create, on data the sink wrote, and returns rows: a renamed column
//! or a typo in a panel fails here, not in front of a user.
//!
//! Grafana expands macros before it sends a query; the test expands the ones the dashboards are
//! allowed to use (see `docs/deploy.md`) the same way the PostgreSQL data source does, and fails
//! on any other `$…`, so a panel cannot use something this test does not understand.

use std::path::{Path, PathBuf};

use cflogs_core::testing::samples;
use cflogs_core::{AnalyticsSink, Batch, CheckpointStore, Quarantined, StreamId, Window};
use cflogs_integration::TestDatabase;
use cflogs_postgres::{PostgresClient, PostgresConfig};
use chrono::{DurationRound, TimeDelta, Utc};
use serde_json::Value;

const ACCOUNT: &str = "acc-dashboards";

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/dashboards")
}

/// Every dashboard file and its JSON.
fn dashboards() -> Vec<(String, Value)> {
    let dir = dashboards_dir();
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("read dashboard");
            let json: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
            out.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                json,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(
        out.len() >= 2,
        "the pipeline and the audit dashboards are in {}",
        dir.display()
    );
    out
}

/// Panels, including those inside rows.
fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = stack.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            stack.extend(inner);
        }
        out.push(panel);
    }
    out
}

fn datasource_type(v: &Value) -> &str {
    v["datasource"]["type"].as_str().unwrap_or_default()
}

/// A target's data source type, or its panel's when the target names none.
fn target_kind<'a>(panel: &'a Value, target: &'a Value) -> &'a str {
    match datasource_type(target) {
        "" => datasource_type(panel),
        kind => kind,
    }
}

/// The text between the parentheses of a macro call starting at `open` (the `(`), and the
/// index after the `)`.
fn macro_args(sql: &str, open: usize) -> (String, usize) {
    let mut depth = 0;
    for (i, c) in sql[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (sql[open + 1..open + i].to_owned(), open + i + 1);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced macro call in {sql}");
}

/// Expands the Grafana macros the dashboards may use, over the last 24 hours, as the
/// PostgreSQL data source does; panics on any other `$`.
fn expand(sql: &str) -> String {
    let from = "now() - interval '24 hours'";
    let to = "now()";
    let mut sql = sql
        .replace("$__timeFrom()", &format!("({from})"))
        .replace("$__timeTo()", &format!("({to})"))
        .replace("'$account_id'", &format!("'{ACCOUNT}'"))
        .replace("${account_id}", ACCOUNT);
    while let Some(at) = sql.find("$__timeFilter(") {
        let (column, end) = macro_args(&sql, at + "$__timeFilter".len());
        sql = format!(
            "{}{column} BETWEEN ({from}) AND ({to}){}",
            &sql[..at],
            &sql[end..]
        );
    }
    while let Some(at) = sql.find("$__timeGroupAlias(") {
        let (args, end) = macro_args(&sql, at + "$__timeGroupAlias".len());
        let column = args.split(',').next().expect("column").trim().to_owned();
        // $__interval over 24 hours on a wide panel: Grafana picks about 1 minute.
        sql = format!(
            "{}floor(extract(epoch from {column})/60)*60 AS \"time\"{}",
            &sql[..at],
            &sql[end..]
        );
    }
    assert!(
        !sql.contains('$'),
        "a macro or variable the dashboard test does not expand: {sql}"
    );
    sql
}

/// Writes a day of sample audit events and a few quarantined records through the real sink, and
/// gives the stream a checkpoint.
async fn sample_data(client: &PostgresClient) {
    let now = Utc::now().duration_trunc(TimeDelta::seconds(1)).unwrap();
    let start = now - TimeDelta::hours(23);
    let events = samples::audit_events(ACCOUNT, 0, 2_000, start, TimeDelta::seconds(40));
    let window = Window::new(start, now).expect("window");
    let batch = Batch {
        stream: StreamId::new(format!("audit-v1/account/{ACCOUNT}")).expect("stream"),
        schema: cflogs_core::testing::samples::audit_schema(),
        window,
        events,
        quarantined: (0..3)
            .map(|i| {
                let mut q = Quarantined::new(format!("{{\"broken\": {i}"), "not JSON");
                q.occurred_at = Some(now - TimeDelta::minutes(i));
                q
            })
            .collect(),
    };
    let report = client
        .sink()
        .write(&batch)
        .await
        .expect("write sample data");
    assert_eq!(report.inserted, 2_000);
    assert_eq!(report.quarantined, 3);
    client
        .checkpoint_store()
        .acquire(&batch.stream, start)
        .await
        .expect("checkpoint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_runs_against_the_migrated_schema_and_returns_rows() {
    let db = TestDatabase::new().await;
    let config = PostgresConfig::from_url(&cflogs_postgres::Secret::new(db.url())).expect("url");
    let client = PostgresClient::connect(&config).await.expect("connect");
    client.migrate().await.expect("migrate");
    sample_data(&client).await;

    let mut checked = 0;
    for (file, dashboard) in dashboards() {
        let mut queries: Vec<(String, String)> = Vec::new();
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            for target in panel["targets"].as_array().into_iter().flatten() {
                if target_kind(panel, target).contains("postgres") {
                    let sql = target["rawSql"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{file}: panel {title:?} has no rawSql"));
                    queries.push((format!("{file}: panel {title:?}"), sql.to_owned()));
                }
            }
        }
        for variable in dashboard["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if datasource_type(variable).contains("postgres") {
                let name = variable["name"].as_str().unwrap_or_default();
                let sql = match &variable["query"] {
                    Value::String(s) => s.clone(),
                    other => other["rawSql"]
                        .as_str()
                        .or(other["query"].as_str())
                        .unwrap_or_default()
                        .to_owned(),
                };
                queries.push((format!("{file}: variable {name:?}"), sql));
            }
        }
        for (what, sql) in queries {
            let expanded = expand(&sql);
            let rows = sqlx::query(&expanded)
                .fetch_all(client.pool())
                .await
                .unwrap_or_else(|e| panic!("{what} fails on the migrated schema: {e}\n{expanded}"));
            assert!(
                !rows.is_empty(),
                "{what} returns no row over a day of sample data:\n{expanded}"
            );
            checked += 1;
        }
    }
    println!("{checked} dashboard queries ran against the migrated schema");
    assert!(
        checked >= 6,
        "the audit dashboard has its panels ({checked} queries found)"
    );
}

#[test]
fn every_prometheus_panel_has_an_expression_and_a_datasource() {
    let mut exprs = 0;
    for (file, dashboard) in dashboards() {
        for panel in panels(&dashboard) {
            let title = panel["title"].as_str().unwrap_or("(untitled)");
            assert!(panel["id"].is_u64(), "{file}: panel {title:?} has an id");
            for target in panel["targets"].as_array().into_iter().flatten() {
                let kind = target_kind(panel, target);
                assert!(
                    !kind.is_empty(),
                    "{file}: panel {title:?} names its data source"
                );
                if kind == "prometheus" {
                    let expr = target["expr"].as_str().unwrap_or_default();
                    assert!(
                        !expr.trim().is_empty(),
                        "{file}: panel {title:?} has an expr"
                    );
                    exprs += 1;
                }
            }
        }
    }
    assert!(
        exprs >= 6,
        "the pipeline dashboard has its panels ({exprs} found)"
    );
}

#[test]
fn the_macro_expansion_is_what_the_test_claims() {
    let sql = expand(
        "SELECT $__timeGroupAlias(\"timestamp\", $__interval), count(*) FROM audit_logs \
         WHERE $__timeFilter(\"timestamp\") AND account_id = '$account_id' GROUP BY 1",
    );
    assert!(sql.contains("floor(extract(epoch from \"timestamp\")/60)*60 AS \"time\""));
    assert!(sql.contains("\"timestamp\" BETWEEN ("));
    assert!(sql.contains(&format!("account_id = '{ACCOUNT}'")));
    assert!(!sql.contains('$'));
}
