//! `cflogs-sim`: serve a simulated Cloudflare audit log API on localhost.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use cflogs_sim::{CursorStyle, SimClock, Simulator};
use chrono::{TimeDelta, Utc};
use clap::Parser;

/// Simulated Cloudflare account audit log APIs (v1 and v2) with deterministic traps and
/// faults, for cflogs tests, demos and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "cflogs-sim", version)]
struct Args {
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8787)]
    port: u16,
    /// Seed of every random choice (events and faults).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Account id to serve (repeatable).
    #[arg(long = "account", default_value = "023e105f4ecef8ad9ca31a8372d0c353")]
    accounts: Vec<String>,
    /// API token accepted with the audit-log permission.
    #[arg(long, default_value = "cflogs-sim-token")]
    token: String,
    /// Extra token that authenticates but lacks the audit-log permission (answers 9109).
    #[arg(long)]
    restricted_token: Option<String>,
    /// Legacy credentials accepted as X-Auth-Email / X-Auth-Key, as EMAIL:KEY.
    #[arg(long, value_parser = parse_legacy)]
    legacy: Option<(String, String)>,
    /// Backfill: generate events over the last N hours before start-up.
    #[arg(long, default_value_t = 24.0)]
    backfill_hours: f64,
    /// Number of backfilled events per account (0 = none).
    #[arg(long, default_value_t = 10_000)]
    events: u64,
    /// Live events per second per account from start-up on (0 = none).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Probability that a generated timestamp starts a burst of equal timestamps.
    #[arg(long, default_value_t = 0.02)]
    burst_probability: f64,
    /// Largest burst of equal timestamps.
    #[arg(long, default_value_t = 120)]
    burst_max: u32,
    /// Fraction of events that become visible only after a delay.
    #[arg(long, default_value_t = 0.0)]
    late_fraction: f64,
    /// Maximum visibility delay of late events, in seconds.
    #[arg(long, default_value_t = 120)]
    max_late_secs: u64,
    /// Probability of a random 5xx answer.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Probability that a 200 body is cut mid-stream.
    #[arg(long, default_value_t = 0.0)]
    cut_body_rate: f64,
    /// Probability that an event is malformed.
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// Whether v1 answers 400 for a page past the last one.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    page_past_end_400: bool,
    /// Milliseconds every audit-log answer takes.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Where v2 puts the next cursor: after, cursor or alternate.
    #[arg(long, default_value_t = CursorStyle::After)]
    cursor_style: CursorStyle,
    /// Requests allowed per credential per window.
    #[arg(long, default_value_t = 1200)]
    rate_limit: u32,
    /// Rate-limit window, in seconds.
    #[arg(long, default_value_t = 300)]
    rate_window_secs: u64,
    /// Block after exceeding the limit, in seconds.
    #[arg(long, default_value_t = 300)]
    block_secs: u64,
    /// Disable rate limiting.
    #[arg(long)]
    no_rate_limit: bool,
    /// Start with a frozen clock at this RFC 3339 instant (move it with POST /__sim/clock).
    #[arg(long)]
    fixed_clock: Option<chrono::DateTime<Utc>>,
}

fn parse_legacy(s: &str) -> Result<(String, String), String> {
    s.split_once(':')
        .map(|(e, k)| (e.to_owned(), k.to_owned()))
        .ok_or_else(|| "expected EMAIL:KEY".to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cflogs-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let clock = match args.fixed_clock {
        Some(t) => SimClock::fixed(t),
        None => SimClock::system(),
    };
    let now = clock.now();
    let mut b = Simulator::builder()
        .seed(args.seed)
        .token(&args.token)
        .clock(clock)
        .bursts(args.burst_probability, args.burst_max)
        .late_fraction(args.late_fraction)
        .max_late(Duration::from_secs(args.max_late_secs))
        .error_rate(args.error_rate)
        .cut_body_rate(args.cut_body_rate)
        .malformed_rate(args.malformed_rate)
        .page_past_end_400(args.page_past_end_400)
        .latency(Duration::from_millis(args.latency_ms))
        .cursor_style(args.cursor_style);
    for a in &args.accounts {
        b = b.account(a);
    }
    if let Some(t) = &args.restricted_token {
        b = b.token_without_audit_permission(t);
    }
    if let Some((email, key)) = &args.legacy {
        b = b.legacy_key(email, key);
    }
    if args.events > 0 {
        if !(args.backfill_hours.is_finite() && args.backfill_hours > 0.0) {
            return Err("--backfill-hours must be positive".into());
        }
        let micros = (args.backfill_hours * 3_600_000_000.0) as i64;
        b = b.span(now - TimeDelta::microseconds(micros), now, args.events);
    }
    if args.rate > 0.0 {
        b = b.live(args.rate).live_from(now);
    }
    b = if args.no_rate_limit {
        b.no_rate_limit()
    } else {
        b.rate_limit(
            args.rate_limit,
            Duration::from_secs(args.rate_window_secs),
            Duration::from_secs(args.block_secs),
        )
    };
    let sim = b.build()?;
    let running = sim.spawn_on(SocketAddr::new(args.bind, args.port)).await?;
    println!("cflogs-sim listening");
    println!("  base URL:    {}", running.base_url());
    println!("  token:       {}", args.token);
    if let Some(t) = &args.restricted_token {
        println!("  restricted:  {t} (no audit-log permission)");
    }
    println!("  accounts:    {}", args.accounts.join(", "));
    println!("  control:     {}/stats", running.control_url());
    println!("Press Ctrl-C to stop (or send SIGTERM).");
    stop_signal().await?;
    println!("stopping; {:?}", running.stats());
    running.shutdown().await?;
    Ok(())
}

/// Ctrl-C, or SIGTERM (what `docker stop` and systemd send).
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
