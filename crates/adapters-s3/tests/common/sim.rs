//! Realistic audit events from the Cloudflare simulator (`cflogs-sim`), fetched over HTTP from
//! 127.0.0.1 and mapped by the real audit log source (`cflogs-cloudflare`), so what the tests
//! and the benchmark archive is what the pipeline archives.
#![allow(dead_code, missing_docs)]

use std::sync::Arc;

use cflogs_cloudflare::{
    AccountId, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient, Credentials,
    RateBudget, Secret,
};
use cflogs_core::{BatchLimits, Event, FetchRequest, Window, WindowSource};
use chrono::{TimeDelta, Utc};

/// Which audit API's bytes to archive.
pub use cflogs_cloudflare::AuditApi as Api;

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

/// `count` events of one simulated account over the last day, sorted by time, with their exact
/// served bytes, as the audit logs API `api` serves them and its source maps them.
pub async fn simulator_events(count: u64, api: Api) -> Vec<Event> {
    let to = Utc::now() - TimeDelta::minutes(5);
    let from = to - TimeDelta::hours(24);
    let running = cflogs_sim::Simulator::builder()
        .seed(2026)
        .account(ACCOUNT)
        .token("tok")
        .span(from, to, count)
        .no_rate_limit()
        .build()
        .expect("simulator")
        .spawn()
        .await
        .expect("spawn simulator on 127.0.0.1");
    let mut config = ClientConfig::new(Credentials::Token(Secret::new("tok")));
    config.base_url = running.base_url();
    config.rate_budget =
        RateBudget::new(1_000_000, std::time::Duration::from_secs(1)).expect("budget");
    let client = Arc::new(CloudflareClient::new(config).expect("client"));
    let source = AuditLogSource::new(
        client,
        AuditSourceConfig::new(AccountId::new(ACCOUNT).expect("account"), api),
    );
    let window =
        Window::new(from - TimeDelta::hours(1), to + TimeDelta::minutes(1)).expect("window");
    let fetched = source
        .fetch(&FetchRequest {
            window,
            floor: window.from(),
            limits: BatchLimits::new(usize::MAX, usize::MAX).expect("limits"),
        })
        .await
        .expect("fetch");
    running.shutdown().await.expect("shutdown");
    let mut events = fetched.events;
    events.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    events
}
