//! From one audit log item (exact bytes) to an [`Event`] with the columns of the core's
//! `audit_logs` schema (seed 001), or to a [`Quarantined`] record with the reason. Lenient on
//! everything but id and time: Cloudflare omits fields and adds values freely, and a strange
//! optional field must not lose the event (a value of the wrong type is NULL in its column; the
//! raw event keeps it).
//!
//! The id and the time are checked here, by the API version's rules (v1 `when`, v2
//! `action.time`, the id a string), so a quarantined record's reason names the field the user
//! sent; the columns are the schema's ([`DatasetSchema::values_in`]), with the account from the
//! stream's context.

use bytes::Bytes;
use cflogs_core::{Context, DatasetSchema, Event, EventId, Quarantined, Timestamp};
use serde_json::Value as Json;

use crate::config::AuditApi;

/// An item mapped.
#[derive(Debug)]
pub(crate) enum Mapped {
    Event(Event),
    Quarantined(Quarantined),
}

/// Maps one item read from `api` into `schema`'s columns, in a stream whose context is
/// `context` (the account).
pub(crate) fn map_item(
    raw: Bytes,
    schema: &DatasetSchema,
    context: &Context,
    api: AuditApi,
) -> Mapped {
    match map(&raw, api) {
        Ok((id, at, root)) => {
            let values = schema.values_in(&root, context);
            Mapped::Event(Event::new(id, at, raw).with_values(values))
        }
        Err((reason, at)) => {
            let q = Quarantined::new(raw, reason);
            Mapped::Quarantined(match at {
                Some(at) => q.with_time(at),
                None => q,
            })
        }
    }
}

type Failure = (String, Option<Timestamp>);

/// A field, `null` counting as absent.
fn present(v: Option<&Json>) -> Option<&Json> {
    v.filter(|v| !v.is_null())
}

fn map(raw: &Bytes, api: AuditApi) -> Result<(EventId, Timestamp, Json), Failure> {
    let text = std::str::from_utf8(raw).map_err(|_| ("not UTF-8".to_owned(), None))?;
    let root: Json = serde_json::from_str(text)
        .ok()
        .filter(Json::is_object)
        .ok_or_else(|| ("not a JSON object".to_owned(), None))?;
    let (time_field, time) = match api {
        AuditApi::V1 => ("when", present(root.get("when"))),
        AuditApi::V2 => (
            "action.time",
            present(root.get("action").and_then(|a| a.get("time"))),
        ),
    };
    let at = match time {
        Some(Json::String(text)) => Some(
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    (
                        format!("unparsable time in '{time_field}': {text:?} ({e})"),
                        None,
                    )
                })?,
        ),
        None => None,
        Some(_) => return Err((format!("field '{time_field}' is not a string"), None)),
    };
    let id = match present(root.get("id")) {
        Some(Json::String(id)) => {
            EventId::new(id.as_str()).map_err(|e| (format!("bad 'id': {e}"), at))?
        }
        None => return Err(("missing field 'id'".to_owned(), at)),
        Some(_) => return Err(("field 'id' is not a string".to_owned(), at)),
    };
    let Some(at) = at else {
        return Err((format!("missing field '{time_field}'"), None));
    };
    Ok((id, at, root))
}

#[cfg(test)]
mod tests {
    use super::*;

    use cflogs_core::Dataset;
    use cflogs_core::schema::Value;

    fn schema() -> DatasetSchema {
        DatasetSchema::builtin(&Dataset::audit_logs())
    }

    fn context() -> Context {
        Context::new().with("account_id", "acc")
    }

    fn event(raw: &str, api: AuditApi) -> Event {
        match map_item(
            Bytes::copy_from_slice(raw.as_bytes()),
            &schema(),
            &context(),
            api,
        ) {
            Mapped::Event(e) => e,
            Mapped::Quarantined(q) => panic!("quarantined: {}", q.reason),
        }
    }

    fn reason(raw: &str, api: AuditApi) -> String {
        match map_item(
            Bytes::copy_from_slice(raw.as_bytes()),
            &schema(),
            &context(),
            api,
        ) {
            Mapped::Event(e) => panic!("mapped: {e:?}"),
            Mapped::Quarantined(q) => {
                assert_eq!(q.raw.as_ref(), raw.as_bytes(), "bytes kept exactly");
                assert_eq!(q.id, EventId::content_hash(raw.as_bytes()));
                q.reason
            }
        }
    }

    /// The value of column `name`, as text.
    fn col(e: &Event, name: &str) -> Option<String> {
        let index = schema()
            .columns()
            .iter()
            .position(|c| c.name() == name)
            .unwrap_or_else(|| panic!("no column {name}"));
        e.value(index).map(|v| match v {
            Value::Text(t) | Value::Json(t) => t.clone(),
            Value::Ip(ip) => ip.to_string(),
            other => panic!("{name}: {other:?}"),
        })
    }

    #[test]
    fn v1_events_map_to_the_seed_columns_and_keep_their_bytes() {
        let raw = r#"{"id":"f174be97","action":{"info":"x","result":true,"type":"change_setting"},"actor":{"email":"m@example.com","id":"f6","ip":"198.41.129.166","type":"user"},"interface":"API","metadata":{"zone_name":"example.com"},"resource":{"id":"r1","type":"zone"},"when":"2017-04-26T17:31:07Z"}"#;
        let e = event(raw, AuditApi::V1);
        assert_eq!(e.id.as_str(), "f174be97");
        assert_eq!(e.raw.as_ref(), raw.as_bytes());
        assert_eq!(e.occurred_at.to_rfc3339(), "2017-04-26T17:31:07+00:00");
        assert_eq!(col(&e, "account_id").as_deref(), Some("acc"));
        assert_eq!(col(&e, "actor_email").as_deref(), Some("m@example.com"));
        assert_eq!(col(&e, "actor_type").as_deref(), Some("user"));
        assert_eq!(col(&e, "action_type").as_deref(), Some("change_setting"));
        assert_eq!(col(&e, "action_result").as_deref(), Some("true"));
        assert_eq!(col(&e, "resource_type").as_deref(), Some("zone"));
        assert_eq!(col(&e, "resource_id").as_deref(), Some("r1"));
        assert_eq!(col(&e, "ip_address").as_deref(), Some("198.41.129.166"));
        assert_eq!(
            col(&e, "metadata").as_deref(),
            Some(r#"{"zone_name":"example.com"}"#)
        );
        assert_eq!(e.values.len(), schema().columns().len());
    }

    #[test]
    fn times_with_fractions_and_optional_fields_missing_or_odd() {
        let e = event(
            r#"{"id":"a","when":"2026-11-20T10:00:00.123456Z","actor":{"type":"system","ip":"unknown"},"resource":{"id":42}}"#,
            AuditApi::V1,
        );
        assert_eq!(e.occurred_at.timestamp_subsec_micros(), 123_456);
        assert_eq!(
            col(&e, "actor_type").as_deref(),
            Some("system"),
            "undocumented actor types are kept"
        );
        assert_eq!(
            col(&e, "ip_address"),
            None,
            "an address that is not one is NULL (the raw event keeps the text)"
        );
        assert_eq!(col(&e, "resource_id").as_deref(), Some("42"));
        assert_eq!(col(&e, "actor_email"), None);
        assert_eq!(col(&e, "metadata"), None);
        // A non-object where an object is expected loses only that field.
        let e = event(
            r#"{"id":"b","when":"2026-11-20T10:00:00Z","actor":"someone","metadata":null}"#,
            AuditApi::V1,
        );
        assert_eq!(col(&e, "actor_email"), None);
    }

    #[test]
    fn v2_events_map_with_action_time_and_gathered_metadata() {
        let raw = r#"{"id":"v2id","account":{"id":"acc"},"action":{"description":"Add record","result":"success","time":"2026-11-20T10:00:01.5Z","type":"create"},"actor":{"context":"api_token","email":"a@example.com","ip_address":"2001:db8::1","token_id":"t1","token_name":"ci","type":"user"},"raw":{"cf_ray_id":"8","method":"POST","status_code":200,"uri":"/x"},"resource":{"id":"rid","product":"dns","scope":{"id":"z"},"type":"dns_record"},"zone":{"id":"z","name":"example.com"}}"#;
        let e = event(raw, AuditApi::V2);
        assert_eq!(e.occurred_at.timestamp_subsec_millis(), 500);
        assert_eq!(col(&e, "ip_address").as_deref(), Some("2001:db8::1"));
        assert_eq!(col(&e, "action_result").as_deref(), Some("success"));
        assert_eq!(col(&e, "resource_type").as_deref(), Some("dns_record"));
        let meta: serde_json::Value =
            serde_json::from_str(col(&e, "metadata").as_deref().unwrap()).unwrap();
        assert_eq!(meta["zone"]["name"], "example.com");
        assert_eq!(meta["token_name"], "ci");
        assert_eq!(meta["request"]["method"], "POST");
    }

    #[test]
    fn events_without_id_or_time_are_quarantined_with_a_reason() {
        assert_eq!(
            reason(r#"{"when":"2026-11-20T10:00:00Z"}"#, AuditApi::V1),
            "missing field 'id'"
        );
        assert_eq!(
            reason(r#"{"id":"a"}"#, AuditApi::V1),
            "missing field 'when'"
        );
        assert!(
            reason(r#"{"id":"a","when":"yesterday"}"#, AuditApi::V1)
                .contains("unparsable time in 'when'")
        );
        assert!(
            reason(r#"{"id":"a","when":"2026-13-45T99:00:00Z"}"#, AuditApi::V1)
                .contains("unparsable")
        );
        assert_eq!(
            reason(r#"{"id":7,"when":"2026-11-20T10:00:00Z"}"#, AuditApi::V1),
            "field 'id' is not a string"
        );
        assert_eq!(
            reason(r#"{"id":"a","when":12}"#, AuditApi::V1),
            "field 'when' is not a string"
        );
        assert_eq!(
            reason(r#"{"id":"a","when":"2026-11-20T10:00:00Z"}"#, AuditApi::V2),
            "missing field 'action.time'"
        );
        assert_eq!(reason(r#"[1,2]"#, AuditApi::V1), "not a JSON object");
        assert!(
            reason(r#"{"id":"","when":"2026-11-20T10:00:00Z"}"#, AuditApi::V1)
                .starts_with("bad 'id'")
        );
    }

    #[test]
    fn a_quarantined_event_keeps_its_time_when_it_has_one() {
        match map_item(
            Bytes::from_static(br#"{"when":"2026-11-20T10:00:00Z"}"#),
            &schema(),
            &context(),
            AuditApi::V1,
        ) {
            Mapped::Quarantined(q) => assert!(q.occurred_at.is_some()),
            Mapped::Event(_) => panic!("mapped"),
        }
    }
}
