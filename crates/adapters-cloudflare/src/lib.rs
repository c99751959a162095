//! Cloudflare sources for cflogs.
//!
//! [`AuditLogSource`] reads account audit logs (API v1 `audit_logs` or v2 `logs/audit`) and
//! implements the core's [`WindowSource`](cflogs_core::WindowSource) port (read with an `overlap` cursor). Every request goes
//! through one [`CloudflareClient`] per API token, which owns the token's rate budget (so all
//! streams of a token share it and never trigger Cloudflare's 5-minute block), retries with
//! exponential backoff and full jitter, honours `Retry-After` and the `Ratelimit` headers, and
//! bounds response sizes.
//!
//! Secrets live in [`Secret`], whose `Debug` and `Display` print `***`: they never reach logs,
//! errors or panics.

mod budget;
mod client;
mod config;
mod error;
mod mapping;
mod source;

pub use budget::SlidingWindow;
pub use client::{ClientStats, CloudflareClient};
pub use config::{
    AccountId, AuditApi, AuditSourceConfig, ClientConfig, Credentials, PerPage, RateBudget, Secret,
    redact_userinfo,
};
pub use error::{Error, Result};
pub use source::{AuditLogSource, PLANNED_SKEW_MAX, PLANNED_SKEW_MIN, audit_stream_id};
