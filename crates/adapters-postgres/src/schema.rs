//! The schema: embedded migrations (`migrations/`), the server version check, and the
//! TimescaleDB decision, which depends on what the server has and so is not a migration. The
//! dataset tables themselves are derived from their schemas (see `tables`), and made
//! hypertables there when this decided TimescaleDB is used.
//!
//! The TimescaleDB decision is a pure function of the settings and of what the server reports
//! ([`plan`]), so it is unit-tested on every path; the hypertable SQL, which this machine's
//! plain PostgreSQL never executes, is tested in `tables`.

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
    /// Whether the dataset tables are TimescaleDB hypertables.
    pub timescale: TimescaleStatus,
}

/// Whether TimescaleDB is used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimescaleStatus {
    /// The dataset tables are hypertables; the configured policies are applied.
    Enabled {
        /// The installed extension version.
        version: String,
    },
    /// The extension cannot be used; the dataset tables are plain tables.
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
    /// Make the dataset tables hypertables: create the extension first if needed.
    Hypertable { create_extension: bool },
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
    }
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
            tracing::info!(
                "timescaledb disabled (TIMESCALEDB=off): dataset tables are plain tables"
            );
            TimescaleStatus::Disabled
        }
        TimescalePlan::Plain { reason } => {
            tracing::info!(%reason, "timescaledb not used: dataset tables are plain postgresql tables");
            TimescaleStatus::Unavailable { reason }
        }
        TimescalePlan::Fail { reason } => return Err(PgError::TimescaleRequired { reason }),
        TimescalePlan::Hypertable { create_extension } => {
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
                tracing::warn!(%reason, "timescaledb not used: dataset tables are plain postgresql tables");
                return Ok(SchemaReport {
                    server_version,
                    timescale: TimescaleStatus::Unavailable { reason },
                });
            }
            let version = detect_timescale(pool)
                .await?
                .installed
                .unwrap_or_else(|| "unknown".to_owned());
            tracing::info!(
                %version,
                retention = ?timescale.retention,
                compress_after = ?timescale.compress_after,
                "timescaledb: dataset tables are hypertables"
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
    fn a_hypertable_when_the_extension_exists() {
        let available = TimescaleDetection {
            available: Some("2.17.2".into()),
            installed: None,
        };
        assert_eq!(
            plan(&TimescaleConfig::recommended(), &available),
            TimescalePlan::Hypertable {
                create_extension: true
            },
            "the extension is available but not created"
        );
        let installed = TimescaleDetection {
            available: Some("2.17.2".into()),
            installed: Some("2.17.2".into()),
        };
        assert_eq!(
            plan(&TimescaleConfig::default(), &installed),
            TimescalePlan::Hypertable {
                create_extension: false
            }
        );
    }
}
