//! Request counters exposed by the oracle and `GET /__sim/stats`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Counters of the API requests served (control endpoints under `/__sim/` are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Every request under `/client/v4`.
    pub requests_total: u64,
    /// Responses by HTTP status code (a cut body counts under its 200).
    pub by_status: BTreeMap<u16, u64>,
    /// Requests to audit logs v1 (`/accounts/{id}/audit_logs`).
    pub v1_requests: u64,
    /// Requests to audit logs v2 (`/accounts/{id}/logs/audit`).
    pub v2_requests: u64,
    /// Requests to `/user/tokens/verify`.
    pub verify_requests: u64,
    /// Requests to other paths under `/client/v4` (answered 404).
    pub other_requests: u64,
    /// Requests rejected for missing, malformed or invalid credentials.
    pub auth_failures: u64,
    /// Requests refused for lack of permission or access (code 9109 / 7003).
    pub permission_failures: u64,
    /// Random 5xx answers injected.
    pub injected_5xx: u64,
    /// 200 responses whose body was cut mid-stream.
    pub cut_bodies: u64,
    /// HTTP 429 answers (the request that exceeded the limit and every blocked one).
    pub rate_limited: u64,
    /// Blocks started (requests that exceeded the limit).
    pub blocks_triggered: u64,
    /// Events served in 200 bodies (cut bodies included), malformed ones included.
    pub events_served: u64,
    /// Most API requests in progress at once (with a [latency](crate::SimulatorBuilder::latency),
    /// how many a client had in flight).
    pub peak_in_flight: u64,
}

impl Stats {
    /// Number of responses with `status`.
    pub fn status_count(&self, status: u16) -> u64 {
        self.by_status.get(&status).copied().unwrap_or(0)
    }
}
