//! A faithful simulator of Cloudflare's account audit log APIs, for cflogs tests, demos and
//! benchmarks.
//!
//! It serves, under `http://ADDR/client/v4`:
//!
//! * audit logs v1 — `GET /accounts/{account_id}/audit_logs` (page-number paging, no
//!   `result_info`, default direction `desc`, HTTP 400 past the last page);
//! * audit logs v2 — `GET /accounts/{account_id}/logs/audit` (required `since`/`before`,
//!   cursor paging with the cursor in `result_info.cursors.after` or `result_info.cursor`);
//! * `GET /user/tokens/verify`.
//!
//! Both audit APIs serve the same deterministic event set (same ids) generated from a seed,
//! with the traps of the real service: bursts of equal timestamps straddling pages, events
//! that become visible late, malformed events, rate limiting with a block, random 5xx and
//! bodies cut mid-stream. An oracle (library methods and `GET /__sim/...`) tells tests what a
//! complete ingestion must contain.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use chrono::{TimeDelta, Utc};
//!
//! let to = Utc::now();
//! let from = to - TimeDelta::hours(24);
//! let sim = cflogs_sim::Simulator::builder()
//!     .seed(7)
//!     .account("acc1")
//!     .token("tok")
//!     .span(from, to, 100_000)
//!     .late_fraction(0.05)
//!     .max_late(Duration::from_secs(120))
//!     .error_rate(0.05)
//!     .cut_body_rate(0.02)
//!     .malformed_rate(0.001)
//!     .page_past_end_400(true)
//!     .rate_limit(1200, Duration::from_secs(300), Duration::from_secs(300))
//!     .build()?;
//! let running = sim.spawn().await?; // binds 127.0.0.1:0
//! let base = running.base_url(); // "http://127.0.0.1:PORT/client/v4"
//! // ... run the client against `base` with token "tok" ...
//! let expected = running.visible_ids("acc1");
//! let stats = running.stats();
//! running.shutdown().await?;
//! # let _ = (base, expected, stats);
//! # Ok(())
//! # }
//! ```
//!
//! See `docs/sources/cloudflare-sim.md` in the repository for the full behaviour.

mod clock;
mod config;
mod generate;
mod json;
mod ratelimit;
mod server;
mod simulator;
mod stats;
mod store;

pub use clock::SimClock;
pub use config::{ConfigError, CursorStyle, RateLimitConfig, SimError, SimulatorBuilder};
pub use generate::MalformedKind;
pub use simulator::{RunningSim, Simulator};
pub use stats::Stats;
pub use store::{EventInfo, MalformedEvent};

/// Formats an instant the way the simulated APIs print event times (RFC 3339, `Z`, no
/// fraction for whole seconds, else milliseconds or microseconds).
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    generate::format_time(t)
}
