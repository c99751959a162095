//! The commands, each a function of a validated configuration.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{Result, bail};
use cflogs_core::{Claim, CycleOutcome, StreamId, Supervisor};
use tokio::sync::watch;
use tracing::info;

use crate::config::{Config, StreamConfig};
use crate::metrics::Metrics;
use crate::wiring::{Storage, Wired};

/// Runs `job` for every stream of `wired`, each on a task of its own (several accounts' streams
/// proceed side by side; one token's budget is shared fairly between them), and waits for all:
/// a stream that fails does not stop the others. Returns the first error, after every stream
/// ended.
async fn each_stream<F, Fut>(wired: Wired, job: F) -> Result<()>
where
    F: Fn(Arc<Wired>, usize) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let wired = Arc::new(wired);
    let tasks: Vec<_> = (0..wired.streams.len())
        .map(|i| tokio::spawn(job(wired.clone(), i)))
        .collect();
    let mut first = None;
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(join) => Err(anyhow::anyhow!("the task of the stream panicked: {join}")),
        };
        if let Err(e) = outcome {
            let e = e.context(format!("stream {}", wired.streams[i].id()));
            if wired.streams.len() > 1 {
                eprintln!("{e:#}");
            }
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The claim of this instance (`suffix` names a one-off command, so that it never passes for
/// a daemon of the same instance).
pub(crate) fn claim(config: &Config, suffix: &str, take_over: bool) -> Claim {
    Claim {
        holder: format!("{}{suffix}", config.instance_id),
        ttl: config.lease_ttl,
        take_over,
    }
}

/// Runs a one-off catch-up and releases the lease whatever its outcome.
pub(crate) async fn released<T>(
    pipeline: &mut cflogs_core::Pipeline,
    result: cflogs_core::Result<T>,
) -> Result<T> {
    if let Err(e) = pipeline.release().await {
        tracing::warn!(error = %cflogs_core::error_chain(&e), "lease not released; it expires by itself");
    }
    Ok(result?)
}

/// `cflogs once`: every stream until it has no backlog, streams side by side.
pub async fn once(config: &Config, take_over: bool) -> Result<()> {
    let wired = Wired::connect(config).await?;
    let claim = claim(config, "/once", take_over);
    each_stream(wired, |wired, i| {
        let claim = claim.clone();
        async move {
            let stream = &wired.streams[i];
            let mut pipeline = wired.pipeline(stream, stream.policy.clone(), claim)?;
            let caught_up = pipeline.catch_up(None, |_, _| {}).await;
            let p = released(&mut pipeline, caught_up).await?;
            println!(
                "{}: {} events, {} quarantined, {} batches committed",
                stream.id(),
                p.events,
                p.quarantined,
                p.batches
            );
            Ok(())
        }
    })
    .await
}

/// `cflogs backfill`: from `since` (new streams) until `until` or caught up, with progress;
/// streams side by side, one bar each on a terminal.
pub async fn backfill(
    config: &Config,
    since: cflogs_core::Timestamp,
    until: Option<cflogs_core::Timestamp>,
    take_over: bool,
) -> Result<()> {
    let wired = Wired::connect(config).await?;
    let claim = claim(config, "/backfill", take_over);
    let bars = std::io::stderr()
        .is_terminal()
        .then(indicatif::MultiProgress::new);
    each_stream(wired, move |wired, i| {
        let (bars, claim) = (bars.clone(), claim.clone());
        async move { backfill_stream(&wired, i, since, until, claim, bars.as_ref()).await }
    })
    .await
}

async fn backfill_stream(
    wired: &Wired,
    index: usize,
    since: cflogs_core::Timestamp,
    until: Option<cflogs_core::Timestamp>,
    claim: Claim,
    bars: Option<&indicatif::MultiProgress>,
) -> Result<()> {
    let stream = &wired.streams[index];
    let mut policy = stream.policy.clone();
    policy.start_at = since;
    if let Some(cp) = wired.storage.store.load(stream.id()).await?
        && cp.watermark > since + chrono::Duration::from_std(policy.lookback).unwrap_or_default()
    {
        bail!(
            "{} is already at {}, after --since {since}: a stream never goes back (its \
             watermark only grows); backfill a new deployment, or reconcile",
            stream.id(),
            cp.watermark
        );
    }
    let mut pipeline = wired.pipeline(stream, policy.clone(), claim)?;
    let started = std::time::Instant::now();
    // Done means the watermark reached --until, or now less the settle delay.
    let settle = chrono::Duration::from_std(policy.settle_delay).unwrap_or_default();
    let end = until.unwrap_or_else(|| chrono::Utc::now() - settle);
    let span = (end - since).num_seconds().max(1) as f64;
    let stream = stream.id().clone();
    // A bar on a terminal; plain lines (one per cycle) in logs and pipes.
    let bar = bars.map(|bars| {
        let bar = bars.add(indicatif::ProgressBar::new(span as u64));
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {percent:>3}%  {msg}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar.set_prefix(stream.to_string());
        bar
    });
    let caught_up = pipeline
        .catch_up(until, |p, outcome| {
            let at = match outcome {
                CycleOutcome::Committed { watermark, .. }
                | CycleOutcome::Advanced { watermark, .. } => *watermark,
                _ => return,
            };
            let covered = (at - since).num_seconds().max(0) as f64;
            let done = (covered / span).clamp(0.0, 1.0);
            let elapsed = started.elapsed().as_secs_f64();
            let rate = p.events as f64 / elapsed.max(0.001);
            let progress = format!(
                "{} events, {} windows, {rate:.0} events/s",
                p.events, p.cycles
            );
            match &bar {
                Some(bar) => {
                    bar.set_position(covered.min(span) as u64);
                    bar.set_message(progress);
                }
                None => {
                    let eta = if done > 0.0 {
                        elapsed * (1.0 - done) / done
                    } else {
                        f64::NAN
                    };
                    eprintln!(
                        "{stream}: {:5.1}%  {progress}  ETA {eta:.0} s  (at {at})",
                        done * 100.0
                    );
                }
            }
        })
        .await;
    let p = released(&mut pipeline, caught_up).await?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!(
        "{stream}: backfilled {} events, {} quarantined, {} batches in {:.1} s",
        p.events,
        p.quarantined,
        p.batches,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cflogs run`: every stream continuously until `shutdown`, each supervised: a stream that
/// fails is restarted with backoff and reported (metrics, `/healthz`); one fenced by another
/// instance stops and is reported. Returns when every stream has stopped.
pub async fn run(
    config: &Config,
    take_over: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let wired = Arc::new(Wired::connect(config).await?);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        info!("shutting down: the batch in flight is abandoned safely");
        let _ = tx.send(true);
    });
    let streams = wired.streams.iter().map(|s| s.id().to_string()).collect();
    // Ready while every stream has had a successful cycle within three of its poll intervals.
    let slowest = wired
        .streams
        .iter()
        .map(|s| s.policy.poll_interval)
        .max()
        .unwrap_or_default();
    let ready_within = (slowest * 3).max(std::time::Duration::from_secs(60));
    let metrics = Arc::new(Metrics::new(streams, wired.client.clone(), ready_within));
    // A stream that fails from its first cycle still has a lag that grows (an alert fires):
    // from its stored watermark, when the store answers now.
    for stream in &wired.streams {
        if let Ok(Some(cp)) = wired.storage.store.load(stream.id()).await {
            metrics.watermark(stream.id(), cp.watermark);
        }
    }
    if let Some(addr) = config.metrics_addr {
        let mut rx = rx.clone();
        crate::metrics::serve(addr, metrics.clone(), async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
        .await?;
    }
    let mut tasks = Vec::new();
    for stream in &wired.streams {
        let (w, s) = (wired.clone(), stream.clone());
        // --take-over takes each stream once; after that this instance claims like any other.
        let mut claim = claim(config, "", take_over);
        let build = Box::new(move || {
            let pipeline = w.pipeline(&s, s.policy.clone(), claim.clone());
            claim.take_over = false;
            pipeline.map_err(invalid)
        });
        let supervisor = Supervisor::new(stream.id().clone(), build)
            .with_observer(metrics.clone())
            .with_monitor(metrics.clone())
            .with_standby_retry(config.lease_ttl / 3);
        let mut rx = rx.clone();
        tasks.push(tokio::spawn(supervisor.run(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })));
    }
    let mut fenced = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => fenced += 1,
        }
    }
    if fenced > 0 {
        bail!("{fenced} stream(s) were taken by another instance (see the log)");
    }
    Ok(())
}

/// A wiring error as the core's `Invalid` (a pipeline that cannot be built: restart later).
fn invalid(e: anyhow::Error) -> cflogs_core::Error {
    cflogs_core::Error::invalid("pipeline", format!("{e:#}"))
}

/// The configured streams' ids (none without Cloudflare settings: commands that only touch
/// the stores then work from what the archive holds).
fn configured(config: &Config) -> Vec<StreamId> {
    config.streams().iter().map(StreamConfig::id).collect()
}

/// `cflogs verify`: the archive's manifest chain of every stream, configured or found in the
/// archive, against its checkpoint. Needs no Cloudflare settings.
pub async fn verify(config: &Config) -> Result<bool> {
    let storage = Storage::connect(config).await?;
    let streams = storage.all_streams(&configured(config)).await?;
    if streams.is_empty() {
        println!("no streams configured and none in the archive: nothing to verify");
    }
    let mut clean = true;
    for (stream, report) in storage.verify(&streams).await? {
        println!("{stream}: {report}");
        clean &= report.is_clean();
    }
    Ok(clean)
}

/// `cflogs migrate`: applies the database schema, then moves every stream's archive objects
/// that an earlier release wrote without the `stream=` partition to today's layout
/// (checkpoints, rows and manifest chains are left as they are). Idempotent.
pub async fn migrate(config: &Config) -> Result<()> {
    match &config.analytics {
        crate::config::Analytics::Postgres(pg) => {
            // Connecting applies the schema (PostgresConfig's migrate-on-start); once is enough.
            let client = cflogs_postgres::PostgresClient::connect(pg).await?;
            let report = match client.schema() {
                Some(report) => report.clone(),
                None => client.migrate().await?,
            };
            println!("PostgreSQL {}: {report:?}", pg.endpoint());
        }
        crate::config::Analytics::Sqlite(lite) => {
            crate::wiring::open_sqlite(lite).await?;
            println!("SQLite {}: schema up to date", lite.path().display());
        }
    }
    let archive = cflogs_s3::ParquetArchive::open(&config.archive)?;
    // Every chain in the archive, configured or not: a stream dropped from the configuration
    // keeps its history, in the same layout as the others.
    for stream in crate::wiring::all_streams(&archive, &configured(config)).await? {
        let r = archive.relocate(&stream).await?;
        println!(
            "archive {stream}: {} objects moved to the stream= partition, {} already there, {} \
             old keys kept (could not be deleted)",
            r.moved, r.already, r.kept
        );
    }
    Ok(())
}

/// `cflogs rehydrate`: every published batch of every stream (configured or found in the
/// archive), read back from the archive into the analytics store, then each checkpoint that
/// is missing or behind the archive restored from the archive's newest manifest. Idempotent:
/// what is already there is left alone. Needs no Cloudflare settings: a stream's dataset is
/// the one its manifests name.
pub async fn rehydrate(config: &Config) -> Result<()> {
    let storage = Storage::connect(config).await?;
    for id in storage.all_streams(&configured(config)).await? {
        let r = storage
            .archive
            .rehydrate(&id, storage.analytics.as_ref())
            .await?;
        println!(
            "{id}: {} batches and {} objects read back; {} events inserted, {} already present, \
             {} quarantined records inserted",
            r.batches, r.objects, r.inserted, r.duplicates, r.quarantined
        );
        restore_from_archive(&storage, &id).await?;
    }
    Ok(())
}

/// Restores `id`'s checkpoint from the archive when the store has none or is behind it.
async fn restore_from_archive(storage: &Storage, id: &StreamId) -> Result<()> {
    use cflogs_core::ArchiveSink as _;
    let stored = storage.store.load(id).await?;
    let known = stored.as_ref().map_or(0, |cp| cp.seq);
    let Some(newest) = storage.archive.newest_after(id, known).await? else {
        println!("{id}: checkpoint in step with the archive (batch {known})");
        return Ok(());
    };
    // Taking the lease fences an instance still running the stream (it stops at its next
    // commit); then the archive is asked again, against the checkpoint now held. A new
    // checkpoint starts where the newest batch did; the restore moves it past that batch.
    let cp = storage.store.acquire(id, newest.window.from()).await?;
    let Some(newest) = storage.archive.newest_after(id, cp.seq).await? else {
        println!(
            "{id}: checkpoint in step with the archive (batch {})",
            cp.seq
        );
        return Ok(());
    };
    let restored = cflogs_core::restore_checkpoint(storage.store.as_ref(), &cp, &newest).await?;
    println!(
        "{id}: checkpoint restored from the archive: batch {} (was {}), watermark {}",
        restored.seq,
        cp.seq,
        restored.watermark.to_rfc3339()
    );
    Ok(())
}
