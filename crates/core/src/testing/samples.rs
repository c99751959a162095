//! Sample events for tests and benchmarks: audit events shaped like Cloudflare's, deterministic
//! from their index.

use bytes::Bytes;

use crate::domain::{
    AuditFields, Batch, Dataset, Event, EventId, Fields, Quarantined, StreamId, Timestamp, Window,
};

const ACTIONS: [&str; 6] = [
    "login",
    "token_create",
    "dns_record_update",
    "waf_rule_update",
    "member_invite",
    "zone_setting_change",
];
const ACTORS: [&str; 4] = ["user", "admin", "Cloudflare", "system"];

/// An audit event (v1 shape) numbered `n`, at `at`, for account `account`. About 535 bytes of
/// JSON, the size of a short real audit event.
pub fn audit_event(account: &str, n: u64, at: Timestamp) -> Event {
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n,
        n % 0xffff,
        n % 0xfff,
        (n * 7) % 0xfff,
        n * 31
    );
    let action = ACTIONS[(n % ACTIONS.len() as u64) as usize];
    let actor_type = ACTORS[(n % ACTORS.len() as u64) as usize];
    let ip = if n.is_multiple_of(5) {
        format!("2001:db8::{:x}", n % 0xffff)
    } else {
        format!("198.51.100.{}", n % 250)
    };
    let email = format!("user{}@example.com", n % 97);
    let when = at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let metadata = format!(
        r#"{{"zone_name":"example-{z}.com","zone_id":"{z:032x}","note":"change n°{n} – ok"}}"#,
        z = n % 13
    );
    let raw = format!(
        r#"{{"id":"{id}","action":{{"info":"{action} via API","result":{result},"type":"{action}"}},"actor":{{"email":"{email}","id":"{actor:032x}","ip":"{ip}","type":"{actor_type}"}},"interface":"API","metadata":{metadata},"newValue":"on","oldValue":"off","owner":{{"id":"{account}"}},"resource":{{"id":"{res:032x}","type":"zone"}},"when":"{when}"}}"#,
        result = !n.is_multiple_of(11),
        actor = n % 97,
        res = n % 1009,
    );
    Event {
        id: EventId::new(id).unwrap_or_else(|e| unreachable!("sample id: {e}")),
        occurred_at: at,
        raw: Bytes::from(raw),
        fields: Fields::Audit(AuditFields {
            account_id: Some(account.to_owned()),
            actor_email: Some(email),
            actor_type: Some(actor_type.to_owned()),
            action_type: Some(action.to_owned()),
            action_result: Some((!n.is_multiple_of(11)).to_string()),
            resource_type: Some("zone".to_owned()),
            resource_id: Some(format!("{:032x}", n % 1009)),
            ip_address: Some(ip),
            metadata: Some(metadata),
        }),
    }
}

/// `count` audit events numbered from `first`, `step` apart starting at `start`.
pub fn audit_events(
    account: &str,
    first: u64,
    count: u64,
    start: Timestamp,
    step: chrono::Duration,
) -> Vec<Event> {
    (0..count)
        .map(|i| audit_event(account, first + i, start + step * i as i32))
        .collect()
}

/// A batch of `events` and `quarantined` of `stream`, whose window is the one second past the
/// events' times (a fixed time when there are none).
pub fn batch(
    stream: &StreamId,
    dataset: Dataset,
    events: Vec<Event>,
    quarantined: Vec<Quarantined>,
) -> Batch {
    let from = events
        .iter()
        .map(|e| e.occurred_at)
        .min()
        .unwrap_or_else(|| {
            chrono::DateTime::from_timestamp(1_795_564_800, 0)
                .unwrap_or_else(|| unreachable!("2026-11-25 is a valid time"))
        });
    let to =
        events.iter().map(|e| e.occurred_at).max().unwrap_or(from) + chrono::Duration::seconds(1);
    Batch {
        stream: stream.clone(),
        dataset,
        window: Window::new(from, to).unwrap_or_else(|e| unreachable!("from < to: {e}")),
        events,
        quarantined,
    }
}
