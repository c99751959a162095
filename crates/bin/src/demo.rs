//! `cflogs demo`: the whole pipeline on a fresh machine, against the Cloudflare simulator
//! started in this process, into the embedded defaults (SQLite and a local Parquet archive).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::Row;

use crate::config::{Config, Settings};
use crate::wiring::Wired;

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";
const TOKEN: &str = "demo-token-not-a-secret";

/// Runs the demo with `events` simulated audit events over the last `hours` hours, in
/// `data_dir` (emptied first).
pub async fn demo(data_dir: &Path, events: u64, hours: i64) -> Result<()> {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("cannot empty the demo directory {}", data_dir.display()))?;
    }
    std::fs::create_dir_all(data_dir)?;
    let now = chrono::Utc::now();
    let from = now - chrono::Duration::hours(hours);
    let to = now - chrono::Duration::minutes(2);
    let sim = cflogs_sim::Simulator::builder()
        .seed(42)
        .account_named(ACCOUNT, "Demo Corp")
        .token(TOKEN)
        .span(from, to, events)
        .bursts(0.1, 4)
        .late_fraction(0.02)
        .max_late(Duration::from_secs(60))
        .malformed_rate(0.002)
        .error_rate(0.03)
        .cut_body_rate(0.01)
        .build()?
        .spawn()
        .await?;
    println!(
        "cflogs demo: a simulated Cloudflare API at {} with {events} audit events over the last {hours} h \
         (3% server errors, 1% cut bodies, 0.2% malformed events, like the real thing on a bad day)\n",
        sim.base_url()
    );
    let dir = data_dir.display().to_string();
    let settings = Settings::from_pairs([
        ("CLOUDFLARE_API_TOKEN", TOKEN.to_owned()),
        ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT.to_owned()),
        ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
        ("INITIAL_CHECKPOINT", from.to_rfc3339()),
        ("CFLOGS_DATA_DIR", dir.clone()),
    ]);
    let config = Config::from_settings(&settings, now)?;
    let wired = Wired::connect(&config).await?;
    let started = std::time::Instant::now();
    let mut totals = (0, 0);
    for stream in &wired.streams {
        let mut policy = stream.policy.clone();
        policy.settle_delay = Duration::from_secs(0);
        let claim = crate::commands::claim(&config, "/demo", false);
        let mut pipeline = wired.pipeline(stream, policy, claim)?;
        let caught_up = pipeline.catch_up(None, |_, _| {}).await;
        let p = crate::commands::released(&mut pipeline, caught_up).await?;
        totals = (totals.0 + p.events, totals.1 + p.quarantined);
        println!(
            "ingested {} events and quarantined {} malformed ones from {} in {:.1} s, in {} batches \
             ({} requests, {} retried after injected faults)",
            p.events,
            p.quarantined,
            stream.id(),
            started.elapsed().as_secs_f64(),
            p.batches,
            wired.client.stats().requests,
            wired.client.stats().retries,
        );
    }
    let expected = sim.visible_ids(ACCOUNT).len() as u64;
    println!(
        "the simulator made {expected} well-formed events visible: {}\n",
        if expected == totals.0 {
            "every one landed, exactly once"
        } else {
            "MISMATCH"
        }
    );

    let db = config_path(&config);
    let pool = wired
        .storage
        .sqlite
        .as_ref()
        .context("the demo uses SQLite")?
        .readers()
        .clone();
    println!("SQLite {db}:");
    let rows = sqlx::query("SELECT action_type, count(*) AS n FROM audit_logs GROUP BY action_type ORDER BY n DESC LIMIT 8")
        .fetch_all(&pool)
        .await?;
    println!("  events by action:");
    for r in rows {
        println!(
            "    {:<28} {:>6}",
            r.get::<Option<String>, _>(0).unwrap_or_default(),
            r.get::<i64, _>(1)
        );
    }
    let rows = sqlx::query(
        "SELECT \"timestamp\", coalesce(actor_email, actor_type, ''), coalesce(action_type, ''), coalesce(resource_type, ''), coalesce(ip_address, '') \
         FROM audit_logs ORDER BY \"timestamp\" DESC LIMIT 5",
    )
    .fetch_all(&pool)
    .await?;
    println!("  latest events (who, what, from where):");
    for r in rows {
        println!(
            "    {}  {:<24} {:<24} {:<12} {}",
            &r.get::<String, _>(0)[..19],
            r.get::<String, _>(1),
            r.get::<String, _>(2),
            r.get::<String, _>(3),
            r.get::<String, _>(4)
        );
    }
    let q: i64 = sqlx::query("SELECT count(*) FROM quarantine")
        .fetch_one(&pool)
        .await?
        .get(0);
    println!("  quarantine: {q} records kept with their exact bytes and the reason\n");

    let archive = data_dir.join("archive");
    let mut files = Vec::new();
    collect_files(&archive, &mut files)?;
    let mut parquet: Vec<_> = files
        .iter()
        .filter(|(p, _)| p.ends_with(".parquet"))
        .collect();
    // Events first, quarantine after.
    parquet.sort_by_key(|(p, _)| p.contains("_quarantine"));
    let bytes: u64 = parquet.iter().map(|(_, n)| n).sum();
    println!(
        "Parquet archive {}: {} files, {} bytes; for example:",
        archive.display(),
        parquet.len(),
        bytes
    );
    for (path, size) in parquet.iter().take(3) {
        println!("    {path} ({size} bytes)");
    }
    let ids: Vec<_> = wired.streams.iter().map(|s| s.id().clone()).collect();
    for (stream, report) in wired.storage.verify(&ids).await? {
        println!("  verify {stream}: {report}");
    }
    println!(
        "\nQuery it:\n  sqlite3 {db} \"SELECT actor_email, action_type, count(*) FROM audit_logs GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 10\"\n  \
         duckdb -c \"SELECT action_type, count(*) FROM read_parquet('{}/audit_logs/*/*/*/*/*.parquet', hive_partitioning = true) GROUP BY 1\"\n\
         Run it for real: set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID (and DATABASE_URL, S3_* if you have them), then `cflogs run`.",
        archive.display()
    );
    if let Some(lite) = &wired.storage.sqlite {
        lite.close().await;
    }
    sim.shutdown().await?;
    if expected != totals.0 {
        anyhow::bail!(
            "the demo lost or duplicated events: expected {expected}, ingested {}",
            totals.0
        );
    }
    Ok(())
}

fn config_path(config: &Config) -> String {
    match &config.analytics {
        crate::config::Analytics::Sqlite(lite) => lite.path().display().to_string(),
        crate::config::Analytics::Postgres(pg) => pg.endpoint(),
    }
}

fn collect_files(dir: &Path, out: &mut Vec<(String, u64)>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else {
            out.push((path.display().to_string(), entry.metadata()?.len()));
        }
    }
    out.sort();
    Ok(())
}
