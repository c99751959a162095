//! Sample events for tests and benchmarks: audit events shaped like Cloudflare's, deterministic
//! from their index.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::domain::schema::{ColumnType, Context, DatasetSchema, IdRule, TimeFormat, Value};
use crate::domain::{Batch, Dataset, Event, EventId, Quarantined, StreamId, Timestamp, Window};

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
    let raw = Bytes::from(raw);
    let object: serde_json::Value = serde_json::from_slice(&raw)
        .unwrap_or_else(|e| unreachable!("a sample event is JSON: {e}"));
    let values = audit_schema()
        .map_in(&object, &Context::new().with("account_id", account))
        .unwrap_or_else(|e| unreachable!("a sample event maps: {e}"))
        .values;
    Event::new(
        EventId::new(id).unwrap_or_else(|e| unreachable!("sample id: {e}")),
        at,
        raw,
    )
    .with_values(values)
}

/// `count` events of `schema`, numbered from `first`, one second apart from `start`: a record
/// built for the schema (every column at its first path, in its type; the time and the id
/// where the schema reads them) and mapped by it, as a source would. Some values are left out
/// (each column is missing from one record in five) and some are of the wrong type (one in
/// seven), which the mapping makes NULL, so every column holds values and NULLs. Context
/// columns read `ctx-{key}`. Ids: the schema's id field, or `src-{n}` for a schema whose ids
/// come from the source.
///
/// # Panics
/// When the schema cannot map the records built for it (a schema whose time is in a format
/// the generator does not write).
pub fn schema_events(
    schema: &DatasetSchema,
    first: u64,
    count: u64,
    start: Timestamp,
) -> Vec<Event> {
    let mut context = Context::new();
    for key in schema.columns().iter().filter_map(|c| c.context_key()) {
        context = context.with(key, &format!("ctx-{key}"));
    }
    let (time_paths, time_format) = schema.time();
    (first..first + count)
        .map(|n| {
            let micros = if time_format == TimeFormat::UnixSeconds {
                0
            } else {
                (n % 1_000) as i64 * 1_001
            };
            let at = start
                + chrono::Duration::seconds(n as i64 - first as i64)
                + chrono::Duration::microseconds(micros);
            let mut record = serde_json::json!({});
            for (i, column) in schema.columns().iter().enumerate() {
                let Some(path) = column.paths().first() else {
                    continue;
                };
                if (n + i as u64).is_multiple_of(5) {
                    continue;
                }
                let wrong = n % 7 == 3 && column.ty() != ColumnType::Text;
                path.put(&mut record, sample_value(column.ty(), n, at, wrong));
            }
            if let Some(path) = time_paths.first() {
                path.put(&mut record, time_json(time_format, at));
            }
            let source_id = match schema.id_rule() {
                IdRule::Field(paths) => {
                    if let Some(path) = paths.first() {
                        path.put(&mut record, serde_json::Value::String(format!("id-{n}")));
                    }
                    None
                }
                _ => Some(format!("src-{n}")),
            };
            let mapped = schema
                .map_in(&record, &context)
                .unwrap_or_else(|e| panic!("{}: a sample record maps: {e}", schema.dataset()));
            let id = mapped
                .id
                .or_else(|| source_id.and_then(|id| EventId::new(id).ok()))
                .unwrap_or_else(|| unreachable!("an id either way"));
            Event::new(id, mapped.occurred_at, Bytes::from(record.to_string()))
                .with_values(mapped.values)
        })
        .collect()
}

/// A value for a column of type `ty` in record `n` (of time `at`), or one of the wrong type.
fn sample_value(ty: ColumnType, n: u64, at: Timestamp, wrong: bool) -> serde_json::Value {
    use serde_json::json;
    if wrong {
        return match ty {
            ColumnType::Json => json!(null),
            _ => json!({"not": "a scalar"}),
        };
    }
    match ty {
        ColumnType::Integer => json!(n as i64 * 1_000 - 5_000),
        ColumnType::Float => json!(n as f64 + 0.25),
        ColumnType::Boolean => json!(n.is_multiple_of(2)),
        ColumnType::Timestamp(format) => time_json(format, at),
        ColumnType::Ip if n.is_multiple_of(3) => json!(format!("2001:db8::{:x}", n % 0xffff)),
        ColumnType::Ip => json!(format!("198.51.100.{}", n % 250)),
        ColumnType::Json => {
            json!({"n": n, "tags": ["a", "é"], "nested": {"ok": n.is_multiple_of(2)}})
        }
        _ if n % 4 == 1 => json!(format!("ünïcödé ☕ {n}")),
        _ => json!(format!("v{}", n % 13)),
    }
}

/// `at` as `format` writes it.
fn time_json(format: TimeFormat, at: Timestamp) -> serde_json::Value {
    match format {
        TimeFormat::UnixSeconds => serde_json::json!(at.timestamp()),
        TimeFormat::UnixMillis => serde_json::json!(at.timestamp_millis()),
        TimeFormat::UnixNanos => serde_json::json!(at.timestamp_nanos_opt().unwrap_or_default()),
        _ => serde_json::json!(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
    }
}

/// Values for `schema`'s columns, given by name (the rest NULL): for tests that need values a
/// mapping would not produce.
///
/// # Panics
/// When a name is not a column of `schema`.
pub fn values_of(schema: &DatasetSchema, named: &[(&str, Value)]) -> Vec<Option<Value>> {
    let mut values = vec![None; schema.columns().len()];
    for (name, value) in named {
        let index = schema
            .columns()
            .iter()
            .position(|c| c.name() == *name)
            .unwrap_or_else(|| panic!("{} has no column {name}", schema.dataset()));
        values[index] = Some(value.clone());
    }
    values
}

/// The value of column `name` of `event` in `schema`, if not NULL.
///
/// # Panics
/// When `name` is not a column of `schema`.
pub fn value_of<'a>(schema: &DatasetSchema, event: &'a Event, name: &str) -> Option<&'a Value> {
    let index = schema
        .columns()
        .iter()
        .position(|c| c.name() == name)
        .unwrap_or_else(|| panic!("{} has no column {name}", schema.dataset()));
    event.value(index)
}

/// Every built-in schema ([`BUILTIN_DATASETS`](crate::schema::BUILTIN_DATASETS)) and the
/// generic one (as `spectrum_events`, a dataset with no schema of its own): what the sinks'
/// per-schema conformance runs cover.
pub fn builtin_schemas() -> Vec<Arc<DatasetSchema>> {
    crate::domain::schema::BUILTIN_DATASETS
        .iter()
        .chain(&["spectrum_events"])
        .map(|name| {
            let dataset =
                Dataset::new(*name).unwrap_or_else(|e| unreachable!("dataset {name}: {e}"));
            Arc::new(DatasetSchema::builtin(&dataset))
        })
        .collect()
}

/// The built-in `audit_logs` schema, shared.
pub fn audit_schema() -> Arc<DatasetSchema> {
    static SCHEMA: OnceLock<Arc<DatasetSchema>> = OnceLock::new();
    SCHEMA
        .get_or_init(|| Arc::new(DatasetSchema::builtin(&Dataset::audit_logs())))
        .clone()
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

/// A batch of `events` and `quarantined` of `stream` in `dataset`'s built-in schema, whose
/// window is the one second past the events' times (a fixed time when there are none).
pub fn batch(
    stream: &StreamId,
    dataset: Dataset,
    events: Vec<Event>,
    quarantined: Vec<Quarantined>,
) -> Batch {
    let schema = if dataset.as_str() == Dataset::AUDIT_LOGS {
        audit_schema()
    } else {
        Arc::new(DatasetSchema::builtin(&dataset))
    };
    batch_of(stream, schema, events, quarantined)
}

/// As [`batch`], for events of `schema`.
pub fn batch_of(
    stream: &StreamId,
    schema: Arc<DatasetSchema>,
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
        schema,
        window: Window::new(from, to).unwrap_or_else(|e| unreachable!("from < to: {e}")),
        events,
        quarantined,
    }
}
