//! Realistic audit events from the Cloudflare simulator (`cflogs-sim`), fetched over HTTP from
//! 127.0.0.1 with their exact served bytes and mapped like the audit v1 source maps them.
#![allow(dead_code, missing_docs)]

use bytes::Bytes;
use cflogs_core::{AuditFields, Event, EventId, Fields};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;
use serde_json::value::RawValue;

const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

fn text(v: &Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    match cur {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Which audit API's bytes to archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    /// `/accounts/{id}/audit_logs`.
    V1,
    /// `/accounts/{id}/logs/audit`.
    V2,
}

/// Maps one served event; `None` for a malformed one (a source would quarantine it).
fn map(api: Api, raw: &RawValue) -> Option<Event> {
    let v: Value = serde_json::from_str(raw.get()).ok()?;
    let id = EventId::new(v.get("id")?.as_str()?).ok()?;
    let time = match api {
        Api::V1 => v.get("when")?,
        Api::V2 => v.get("action")?.get("time")?,
    };
    let when = DateTime::parse_from_rfc3339(time.as_str()?)
        .ok()?
        .with_timezone(&Utc);
    if api == Api::V2 {
        let fields = AuditFields {
            account_id: Some(ACCOUNT.to_owned()),
            actor_email: text(&v, &["actor", "email"]),
            actor_type: text(&v, &["actor", "type"]),
            action_type: text(&v, &["action", "type"]),
            action_result: text(&v, &["action", "result"]),
            resource_type: text(&v, &["resource", "type"]),
            resource_id: text(&v, &["resource", "id"]),
            ip_address: text(&v, &["actor", "ip_address"]),
            metadata: None,
        };
        return Some(
            Event::new(id, when, Bytes::copy_from_slice(raw.get().as_bytes()))
                .with_fields(Fields::Audit(fields)),
        );
    }
    let fields = AuditFields {
        account_id: Some(ACCOUNT.to_owned()),
        actor_email: text(&v, &["actor", "email"]),
        actor_type: text(&v, &["actor", "type"]),
        action_type: text(&v, &["action", "type"]),
        action_result: text(&v, &["action", "result"]),
        resource_type: text(&v, &["resource", "type"]),
        resource_id: text(&v, &["resource", "id"]),
        ip_address: text(&v, &["actor", "ip"]),
        metadata: v.get("metadata").map(Value::to_string),
    };
    Some(
        Event::new(id, when, Bytes::copy_from_slice(raw.get().as_bytes()))
            .with_fields(Fields::Audit(fields)),
    )
}

#[derive(serde::Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    result: Vec<&'a RawValue>,
    #[serde(default)]
    result_info: Option<Value>,
}

/// `count` events of one simulated account over the last day, sorted by time, exactly as the
/// audit logs API `api` serves them.
pub async fn simulator_events(count: u64, api: Api) -> Vec<Event> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let to = Utc::now() - TimeDelta::minutes(5);
    let sim = cflogs_sim::Simulator::builder()
        .seed(2026)
        .account(ACCOUNT)
        .token("tok")
        .span(to - TimeDelta::hours(24), to, count)
        .no_rate_limit()
        .build()
        .expect("simulator");
    let running = sim.spawn().await.expect("spawn simulator on 127.0.0.1");
    let client = reqwest::Client::new();
    let mut events = Vec::with_capacity(count as usize);
    let (since, before) = (
        cflogs_sim::format_time(to - TimeDelta::hours(25)),
        cflogs_sim::format_time(to + TimeDelta::minutes(1)),
    );
    let mut cursor = String::new();
    for page in 1.. {
        let url = match api {
            Api::V1 => format!(
                "{}/accounts/{ACCOUNT}/audit_logs?per_page=1000&page={page}&direction=asc",
                running.base_url()
            ),
            Api::V2 => format!(
                "{}/accounts/{ACCOUNT}/logs/audit?limit=1000&direction=asc&since={since}&before={before}{}",
                running.base_url(),
                if cursor.is_empty() {
                    String::new()
                } else {
                    format!("&cursor={cursor}")
                }
            ),
        };
        let response = client
            .get(&url)
            .bearer_auth("tok")
            .send()
            .await
            .expect("GET");
        if response.status().as_u16() == 400 && api == Api::V1 {
            break; // past the last page
        }
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
        let body = response.bytes().await.expect("body");
        let page: Page<'_> = serde_json::from_slice(&body).expect("page JSON");
        let n = page.result.len();
        events.extend(page.result.into_iter().filter_map(|raw| map(api, raw)));
        let next = page
            .result_info
            .as_ref()
            .and_then(|i| {
                i.get("cursors")
                    .and_then(|c| c.get("after"))
                    .or_else(|| i.get("cursor"))
            })
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match api {
            Api::V1 if n < 1000 => break,
            Api::V2 if next.is_empty() => break,
            _ => {}
        }
        cursor = next;
    }
    running.shutdown().await.expect("shutdown");
    events.sort_by(|a, b| (a.occurred_at, &a.id).cmp(&(b.occurred_at, &b.id)));
    events
}
