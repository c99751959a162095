//! The schema: embedded migrations (`migrations/`), the server version check, and the
//! TimescaleDB setup, which depends on what the server has and so is not a migration.
//!
//! The TimescaleDB decision is a pure function of the settings and of what the server reports
//! ([`plan`]), so it is unit-tested on every path, including the hypertable SQL that this
//! machine's plain PostgreSQL never executes.

use std::time::Duration;

use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::config::{TimescaleConfig, TimescaleMode};
use crate::error::PgError;

/// The embedded migrations.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Oldest supported server (`server_version_num`).
const MIN_SERVER_VERSION: u32 = 130_000;

/// What preparing the schema found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaReport {
    /// `server_version_num`, e.g. `150020`.
    pub server_version: u32,
    /// Whether `audit_logs` is a TimescaleDB hypertable.
    pub timescale: TimescaleStatus,
}

/// Whether TimescaleDB is used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimescaleStatus {
    /// `audit_logs` is a hypertable; the configured policies are applied.
    Enabled {
        /// The installed extension version.
        version: String,
    },
    /// The extension cannot be used; `audit_logs` is a plain table.
    Unavailable {
        /// Why, e.g. "the timescaledb extension is not available on this server".
        reason: String,
    },
    /// `TIMESCALEDB=off`.
    Disabled,
}

/// What the server reports about the extension (`pg_available_extensions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TimescaleDetection {
    /// `default_version` when the server has the extension's files.
    pub available: Option<String>,
    /// `installed_version` when it is created in this database.
    pub installed: Option<String>,
}

/// What to do about TimescaleDB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TimescalePlan {
    /// Stay on plain PostgreSQL, saying why once.
    Plain { reason: String },
    /// `TIMESCALEDB=off`.
    Disabled,
    /// Required but impossible.
    Fail { reason: String },
    /// Make `audit_logs` a hypertable: create the extension first if needed, then run the
    /// statements in one transaction.
    Hypertable {
        create_extension: bool,
        statements: Vec<String>,
    },
}

/// Decides what to do from the settings and what the server has.
pub(crate) fn plan(config: &TimescaleConfig, detection: &TimescaleDetection) -> TimescalePlan {
    if config.mode == TimescaleMode::Off {
        return TimescalePlan::Disabled;
    }
    if detection.available.is_none() && detection.installed.is_none() {
        let reason = "the timescaledb extension is not available on this server".to_owned();
        return if config.mode == TimescaleMode::Require {
            TimescalePlan::Fail { reason }
        } else {
            TimescalePlan::Plain { reason }
        };
    }
    TimescalePlan::Hypertable {
        create_extension: detection.installed.is_none(),
        statements: hypertable_statements(config),
    }
}

/// An SQL interval literal for `d`, in days when it is a whole number of days.
fn interval(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    if secs.is_multiple_of(86_400) {
        format!("INTERVAL '{} days'", secs / 86_400)
    } else {
        format!("INTERVAL '{secs} seconds'")
    }
}

/// The statements that make `audit_logs` a hypertable and apply the configured policies.
/// Idempotent: they run on every start.
pub(crate) fn hypertable_statements(config: &TimescaleConfig) -> Vec<String> {
    let mut statements = vec![format!(
        "SELECT create_hypertable('audit_logs', 'timestamp', chunk_time_interval => {}, \
         if_not_exists => TRUE, migrate_data => TRUE, create_default_indexes => FALSE)",
        interval(config.chunk_interval)
    )];
    if let Some(after) = config.compress_after {
        statements.push(
            "DO $$ BEGIN \
             IF NOT EXISTS (SELECT 1 FROM timescaledb_information.hypertables \
                WHERE hypertable_name = 'audit_logs' AND hypertable_schema = current_schema() \
                AND compression_enabled) THEN \
             ALTER TABLE audit_logs SET (timescaledb.compress, \
                timescaledb.compress_segmentby = 'account_id', \
                timescaledb.compress_orderby = '\"timestamp\" DESC'); \
             END IF; END $$"
                .to_owned(),
        );
        // Remove and add, so a changed setting takes effect; one transaction, so there is no
        // moment without a policy.
        statements.push("SELECT remove_compression_policy('audit_logs', if_exists => TRUE)".into());
        statements.push(format!(
            "SELECT add_compression_policy('audit_logs', compress_after => {})",
            interval(after)
        ));
    }
    if let Some(retention) = config.retention {
        statements.push("SELECT remove_retention_policy('audit_logs', if_exists => TRUE)".into());
        statements.push(format!(
            "SELECT add_retention_policy('audit_logs', drop_after => {})",
            interval(retention)
        ));
    }
    statements
}

/// Reads what the server has.
pub(crate) async fn detect_timescale(pool: &PgPool) -> Result<TimescaleDetection, PgError> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT default_version, installed_version FROM pg_available_extensions WHERE name = 'timescaledb'",
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| PgError::sql("detecting timescaledb", e))?;
    Ok(
        row.map_or_else(TimescaleDetection::default, |(available, installed)| {
            TimescaleDetection {
                available,
                installed,
            }
        }),
    )
}

/// Checks the server version, applies the migrations and the TimescaleDB setup.
pub(crate) async fn prepare(
    pool: &PgPool,
    timescale: &TimescaleConfig,
) -> Result<SchemaReport, PgError> {
    let (version_num,): (String,) = sqlx::query_as("SHOW server_version_num")
        .fetch_one(pool)
        .await
        .map_err(|e| PgError::sql("reading the server version", e))?;
    let server_version = version_num.trim().parse::<u32>().unwrap_or(0);
    if server_version < MIN_SERVER_VERSION {
        let (version,): (String,) = sqlx::query_as("SHOW server_version")
            .fetch_one(pool)
            .await
            .map_err(|e| PgError::sql("reading the server version", e))?;
        return Err(PgError::ServerTooOld { version });
    }

    MIGRATOR.run(pool).await?;

    let detection = detect_timescale(pool).await?;
    let status = match plan(timescale, &detection) {
        TimescalePlan::Disabled => {
            tracing::info!("timescaledb disabled (TIMESCALEDB=off): audit_logs is a plain table");
            TimescaleStatus::Disabled
        }
        TimescalePlan::Plain { reason } => {
            tracing::info!(%reason, "timescaledb not used: audit_logs is a plain postgresql table");
            TimescaleStatus::Unavailable { reason }
        }
        TimescalePlan::Fail { reason } => return Err(PgError::TimescaleRequired { reason }),
        TimescalePlan::Hypertable {
            create_extension,
            statements,
        } => {
            let created = if create_extension {
                sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
                    .execute(pool)
                    .await
                    .map(drop)
            } else {
                Ok(())
            };
            if let Err(e) = created {
                let reason = format!(
                    "the timescaledb extension is available but cannot be created: {e} \
                     (it must be in shared_preload_libraries)"
                );
                if timescale.mode == TimescaleMode::Require {
                    return Err(PgError::TimescaleRequired { reason });
                }
                tracing::warn!(%reason, "timescaledb not used: audit_logs is a plain postgresql table");
                return Ok(SchemaReport {
                    server_version,
                    timescale: TimescaleStatus::Unavailable { reason },
                });
            }
            let mut tx = pool
                .begin()
                .await
                .map_err(|e| PgError::sql("setting up timescaledb", e))?;
            for statement in &statements {
                sqlx::query(statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| PgError::sql("setting up timescaledb", e))?;
            }
            tx.commit()
                .await
                .map_err(|e| PgError::sql("setting up timescaledb", e))?;
            let version = detect_timescale(pool)
                .await?
                .installed
                .unwrap_or_else(|| "unknown".to_owned());
            tracing::info!(
                %version,
                retention = ?timescale.retention,
                compress_after = ?timescale.compress_after,
                "timescaledb: audit_logs is a hypertable"
            );
            TimescaleStatus::Enabled { version }
        }
    };
    Ok(SchemaReport {
        server_version,
        timescale: status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent() -> TimescaleDetection {
        TimescaleDetection::default()
    }

    #[test]
    fn plain_postgresql_when_the_extension_is_absent() {
        let plan = plan(&TimescaleConfig::recommended(), &absent());
        assert!(
            matches!(&plan, TimescalePlan::Plain { reason } if reason.contains("not available")),
            "{plan:?}"
        );
    }

    #[test]
    fn require_fails_when_the_extension_is_absent_and_off_never_uses_it() {
        let require = TimescaleConfig {
            mode: TimescaleMode::Require,
            ..TimescaleConfig::default()
        };
        assert!(matches!(
            plan(&require, &absent()),
            TimescalePlan::Fail { .. }
        ));
        let off = TimescaleConfig {
            mode: TimescaleMode::Off,
            ..TimescaleConfig::recommended()
        };
        let installed = TimescaleDetection {
            available: Some("2.17.2".into()),
            installed: Some("2.17.2".into()),
        };
        assert_eq!(plan(&off, &installed), TimescalePlan::Disabled);
    }

    #[test]
    fn hypertable_sql_is_built_when_the_extension_exists() {
        let available = TimescaleDetection {
            available: Some("2.17.2".into()),
            installed: None,
        };
        let TimescalePlan::Hypertable {
            create_extension,
            statements,
        } = plan(&TimescaleConfig::recommended(), &available)
        else {
            panic!("expected a hypertable plan");
        };
        assert!(
            create_extension,
            "the extension is available but not created"
        );
        let all = statements.join("\n");
        assert!(
            all.contains("create_hypertable('audit_logs', 'timestamp', chunk_time_interval => INTERVAL '1 days'"),
            "{all}"
        );
        assert!(all.contains("create_default_indexes => FALSE"));
        assert!(
            all.contains("add_retention_policy('audit_logs', drop_after => INTERVAL '90 days')")
        );
        assert!(all.contains(
            "add_compression_policy('audit_logs', compress_after => INTERVAL '30 days')"
        ));
        assert!(all.contains("timescaledb.compress_segmentby = 'account_id'"));

        // Installed already, no policies configured: only the hypertable.
        let installed = TimescaleDetection {
            available: Some("2.17.2".into()),
            installed: Some("2.17.2".into()),
        };
        let TimescalePlan::Hypertable {
            create_extension,
            statements,
        } = plan(&TimescaleConfig::default(), &installed)
        else {
            panic!("expected a hypertable plan");
        };
        assert!(!create_extension);
        assert_eq!(statements.len(), 1);
    }

    #[test]
    fn intervals_are_days_when_whole() {
        assert_eq!(
            interval(Duration::from_secs(86_400 * 3)),
            "INTERVAL '3 days'"
        );
        assert_eq!(interval(Duration::from_secs(90)), "INTERVAL '90 seconds'");
    }
}
