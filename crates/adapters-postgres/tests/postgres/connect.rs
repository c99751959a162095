//! Connection failures name the setting to fix; the schema is prepared once and idempotently;
//! the TimescaleDB path runs where the extension exists and says so where it does not.

use std::time::Duration;

use cflogs_core::Error;
use cflogs_postgres::{
    PostgresClient, PostgresConfig, Secret, TimescaleConfig, TimescaleMode, TimescaleStatus,
};

use crate::common::{TestDb, report};

async fn connect_error(config: &PostgresConfig) -> Error {
    match PostgresClient::connect(config).await {
        Ok(_) => panic!("connecting with {config:?} must fail"),
        Err(e) => e,
    }
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
    // dropped here: nothing listens on the port any more
}

fn parts(db: &TestDb, port: u16, database: &str, user: &str) -> PostgresConfig {
    PostgresConfig::from_parts(
        db.admin().get_host(),
        port,
        database,
        user,
        Some(Secret::new("not-the-password-42")),
    )
    .with_connect_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn an_unreachable_server_names_pg_host_and_pg_port() {
    let db = TestDb::new().await;
    let config = parts(&db, closed_port(), &db.name, "postgres");
    let error = connect_error(&config).await;
    let text = cflogs_core::error_chain(&error);
    assert!(error.is_transient(), "{text}");
    assert!(
        text.contains("PG_HOST") && text.contains("PG_PORT"),
        "{text}"
    );
    assert!(text.contains("connection refused"), "{text}");
    assert!(!text.contains("not-the-password-42"), "{text}");

    let url = PostgresConfig::from_url(&Secret::new(format!(
        "postgres://postgres:not-the-password-42@127.0.0.1:{}/x",
        closed_port()
    )))
    .unwrap();
    let text = cflogs_core::error_chain(&connect_error(&url).await);
    assert!(text.contains("DATABASE_URL"), "{text}");
    assert!(!text.contains("not-the-password-42"), "{text}");
}

#[tokio::test]
async fn rejected_credentials_name_pg_user_and_pg_password() {
    let db = TestDb::new().await;
    let config = parts(&db, db.admin().get_port(), &db.name, "cflogs_no_such_role");
    let error = connect_error(&config).await;
    let text = cflogs_core::error_chain(&error);
    assert!(matches!(error, Error::Fatal { .. }), "{text}");
    assert!(
        text.contains("PG_USER") && text.contains("PG_PASSWORD"),
        "{text}"
    );
    assert!(text.contains("cflogs_no_such_role"), "{text}");
    assert!(!text.contains("not-the-password-42"), "{text}");
}

#[tokio::test]
async fn a_missing_database_names_pg_database() {
    let db = TestDb::new().await;
    let config = parts(
        &db,
        db.admin().get_port(),
        "cflogs_no_such_database",
        "postgres",
    );
    let error = connect_error(&config).await;
    let text = cflogs_core::error_chain(&error);
    assert!(matches!(error, Error::Fatal { .. }), "{text}");
    assert!(
        text.contains("PG_DATABASE") && text.contains("cflogs_no_such_database"),
        "{text}"
    );

    let url = db.config.clone().with_database("cflogs_no_such_database");
    let text = cflogs_core::error_chain(&connect_error(&url).await);
    assert!(text.contains("database name in DATABASE_URL"), "{text}");
}

#[tokio::test]
async fn migrations_are_idempotent_and_plain_postgresql_is_reported() {
    let db = TestDb::new().await;
    let available: Option<(String,)> =
        sqlx::query_as("SELECT name::text FROM pg_available_extensions WHERE name = 'timescaledb'")
            .fetch_optional(db.client().await.pool())
            .await
            .unwrap();
    let first = db.client().await;
    let again = db.client().await;
    let report = again.migrate().await.unwrap();
    assert_eq!(first.schema(), Some(&report));
    assert!(report.server_version >= 130_000);
    if available.is_none() {
        assert!(
            matches!(&report.timescale, TimescaleStatus::Unavailable { reason } if reason.contains("not available")),
            "{report:?}"
        );
    }
}

#[tokio::test]
async fn timescale_required_without_the_extension_fails_clearly() {
    let db = TestDb::new().await;
    let probe = db.client().await;
    let available: Option<(String,)> =
        sqlx::query_as("SELECT name::text FROM pg_available_extensions WHERE name = 'timescaledb'")
            .fetch_optional(probe.pool())
            .await
            .unwrap();
    if available.is_some() {
        report(
            "NOT RUN: timescale_required_without_the_extension_fails_clearly: this server has timescaledb",
        );
        return;
    }
    let config = db.config.clone().with_timescale(TimescaleConfig {
        mode: TimescaleMode::Require,
        ..TimescaleConfig::recommended()
    });
    let error = connect_error(&config).await;
    let text = cflogs_core::error_chain(&error);
    assert!(
        text.contains("TIMESCALEDB=require") && text.contains("not available"),
        "{text}"
    );
}

/// Runs the hypertable path where the server has TimescaleDB; elsewhere it says, in every run,
/// that it did not run (the SQL it would run is unit-tested in `tables.rs`).
#[tokio::test]
async fn timescale_hypertable_and_policies_when_the_extension_exists() {
    let db = TestDb::new().await;
    let plain = db.client().await;
    let available: Option<(String,)> =
        sqlx::query_as("SELECT name::text FROM pg_available_extensions WHERE name = 'timescaledb'")
            .fetch_optional(plain.pool())
            .await
            .unwrap();
    if available.is_none() {
        report(
            "NOT RUN: timescale_hypertable_and_policies_when_the_extension_exists: \
             timescaledb extension not available on the test server (plain PostgreSQL path tested instead)",
        );
        return;
    }
    let config = db
        .config
        .clone()
        .with_timescale(TimescaleConfig::recommended());
    let client = match PostgresClient::connect(&config).await {
        Ok(c) => c,
        Err(e) => panic!(
            "timescaledb is available but the setup failed: {}",
            cflogs_core::error_chain(&e)
        ),
    };
    let Some(TimescaleStatus::Enabled { .. }) = client.schema().map(|s| s.timescale.clone()) else {
        report(
            "NOT RUN: timescale_hypertable_and_policies_when_the_extension_exists: \
             timescaledb is available but not loadable (shared_preload_libraries)",
        );
        return;
    };
    // Dataset tables become hypertables when the sink prepares them (on its first write).
    client
        .sink()
        .prepare(&cflogs_core::testing::samples::audit_schema())
        .await
        .unwrap();
    let (hypertables,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'audit_logs'",
    )
    .fetch_one(client.pool())
    .await
    .unwrap();
    assert_eq!(hypertables, 1);
    let (jobs,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name = 'audit_logs' \
         AND proc_name IN ('policy_retention', 'policy_compression')",
    )
    .fetch_one(client.pool())
    .await
    .unwrap();
    assert_eq!(jobs, 2, "retention and compression policies");
    // A second start changes nothing and the sink still works.
    PostgresClient::connect(&config).await.unwrap();
    cflogs_core::testing::conformance::analytics_sink(
        &client.sink(),
        &crate::common::Probe(client.pool().clone()),
        "ts",
    )
    .await;
}
