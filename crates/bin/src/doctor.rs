//! `cflogs doctor`: one pass/fail line per thing cflogs needs (Cloudflare token and each
//! account's audit logs, the database, the archive), each checked on its own so one failure
//! does not hide the others.

use std::sync::Arc;

use anyhow::Result;
use cflogs_cloudflare::{AuditLogSource, CloudflareClient, PerPage};
use cflogs_core::{BatchLimits, FetchRequest, Window, WindowSource, error_chain};
use cflogs_s3::object_store::{ObjectStoreExt, PutPayload};

use crate::config::{Analytics, Cloudflare, Config, SourceConfig};

fn line(ok: bool, what: &str, detail: &str) -> bool {
    println!("{} {what}: {detail}", if ok { "PASS" } else { "FAIL" });
    ok
}

/// Runs every check (the Cloudflare ones only with `cloudflare`); `Ok(true)` when all pass.
pub async fn doctor(config: &Config, cloudflare: bool) -> Result<bool> {
    let mut all = true;
    if cloudflare {
        match config.cloudflare() {
            Ok(cf) => all &= check_cloudflare(cf).await?,
            Err(e) => {
                all &= line(false, "cloudflare settings", &format!("{e:#}"));
            }
        }
    }
    all &= check_database(config).await;
    all &= check_archive(config).await;
    Ok(all)
}

/// The token and each stream's audit logs.
async fn check_cloudflare(config: &Cloudflare) -> Result<bool> {
    let mut all = true;
    // A check, not a backfill: one retry, quickly.
    let mut client_config = config.client.clone();
    client_config.max_retries = 1;
    client_config.retry_max_delay = client_config.retry_initial_delay;
    match CloudflareClient::new(client_config) {
        Err(e) => all &= line(false, "cloudflare client", &error_chain(&e)),
        Ok(client) => {
            let client = Arc::new(client);
            let legacy = matches!(
                config.client.credentials,
                cflogs_cloudflare::Credentials::Legacy { .. }
            );
            all &= match client.verify_token().await {
                // Cloudflare has no verify call for an e-mail and global key: the audit-log
                // check of each account below is what exercises them.
                Ok(()) if legacy => line(
                    true,
                    "cloudflare credentials",
                    "not checked on their own (legacy e-mail and key); see the accounts below",
                ),
                Ok(()) => line(
                    true,
                    "cloudflare credentials",
                    &format!("accepted by {}", config.client.base_url),
                ),
                Err(e) => line(false, "cloudflare credentials", &error_chain(&e)),
            };
            let now = chrono::Utc::now();
            for stream in &config.streams {
                let SourceConfig::Audit(audit) = &stream.source;
                let mut c = audit.clone();
                c.per_page = PerPage::new(1)?;
                let source = AuditLogSource::new(client.clone(), c);
                let window = Window::new(now - chrono::Duration::hours(1), now)?;
                let request = FetchRequest {
                    window,
                    floor: window.from(),
                    limits: BatchLimits::new(1, usize::MAX)?,
                };
                let what = format!("audit logs of {}", source.stream());
                all &= match source.fetch(&request).await {
                    Ok(_) => line(true, &what, "readable (Account Settings Read granted)"),
                    Err(e) => line(false, &what, &error_chain(&e)),
                };
            }
        }
    }
    Ok(all)
}

/// The database: reachable, schema applied.
async fn check_database(config: &Config) -> bool {
    match &config.analytics {
        Analytics::Postgres(pg) => match cflogs_postgres::PostgresClient::connect(pg).await {
            Ok(client) => {
                let detail = match client.schema() {
                    Some(report) => {
                        format!("{} reachable, schema applied: {report:?}", pg.endpoint())
                    }
                    None => format!("{} reachable", pg.endpoint()),
                };
                client.close().await;
                line(true, "database (PostgreSQL)", &detail)
            }
            Err(e) => line(false, "database (PostgreSQL)", &error_chain(&e)),
        },
        Analytics::Sqlite(lite) => match crate::wiring::open_sqlite(lite).await {
            Ok(client) => {
                client.close().await;
                line(
                    true,
                    "database (SQLite)",
                    &format!("{} opened in WAL mode", lite.path().display()),
                )
            }
            Err(e) => line(false, "database (SQLite)", &format!("{e:#}")),
        },
    }
}

/// The archive: a probe object written and deleted.
async fn check_archive(config: &Config) -> bool {
    let what = format!("archive ({})", config.archive.describe());
    match cflogs_s3::ParquetArchive::open(&config.archive) {
        Err(e) => line(false, &what, &error_chain(&e)),
        Ok(archive) => {
            let probe = format!("_doctor/probe-{}", std::process::id());
            match archive.path(&probe) {
                Err(e) => line(false, &what, &error_chain(&e)),
                Ok(path) => {
                    let store = archive.store();
                    match store
                        .put(&path, PutPayload::from_static(b"cflogs doctor"))
                        .await
                    {
                        Ok(_) => {
                            let deleted = store.delete(&path).await;
                            line(
                                deleted.is_ok(),
                                &what,
                                if deleted.is_ok() {
                                    "writable (an object was written and deleted)"
                                } else {
                                    "written but not deletable: grant DeleteObject"
                                },
                            )
                        }
                        Err(e) => line(
                            false,
                            &what,
                            &format!(
                                "cannot write: {e}; check the bucket, the keys and PutObject permission"
                            ),
                        ),
                    }
                }
            }
        }
    }
}
