//! From one audit log item (exact bytes) to an [`Event`] with the seed-001 columns, or to a
//! [`Quarantined`] record with the reason. Lenient on everything but id and time: Cloudflare
//! omits fields and adds values freely, and a strange optional field must not lose the event.

use bytes::Bytes;
use cflogs_core::{AuditFields, Event, EventId, Fields, Quarantined, Timestamp};
use std::collections::BTreeMap;

use serde_json::value::RawValue;

use crate::config::AuditApi;

/// An item mapped.
#[derive(Debug)]
pub(crate) enum Mapped {
    Event(Event),
    Quarantined(Quarantined),
}

/// A JSON object with every field optional and kept raw, so a surprising type cannot fail the
/// whole item.
#[derive(Default)]
struct Object<'a>(BTreeMap<String, &'a RawValue>);

impl<'a> Object<'a> {
    fn parse(raw: &'a str) -> Option<Self> {
        serde_json::from_str(raw).ok().map(Object)
    }

    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.get(key).copied().filter(|v| v.get() != "null")
    }

    fn object(&self, key: &str) -> Option<Object<'a>> {
        self.get(key).and_then(|v| Object::parse(v.get()))
    }

    /// A field as text: a JSON string unescaped, anything else as its JSON text.
    fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(text_of)
    }

    fn string(&self, key: &str) -> Result<Option<String>, ()> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => serde_json::from_str::<String>(v.get())
                .map(Some)
                .map_err(|_| ()),
        }
    }
}

fn text_of(v: &RawValue) -> String {
    serde_json::from_str::<String>(v.get()).unwrap_or_else(|_| v.get().to_owned())
}

/// Maps one item of account `account` read from `api`.
pub(crate) fn map_item(raw: Bytes, account: &str, api: AuditApi) -> Mapped {
    match map(&raw, account, api) {
        Ok((id, at, fields)) => Mapped::Event(Event {
            id,
            occurred_at: at,
            raw,
            fields: Fields::Audit(fields),
        }),
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

fn map(
    raw: &Bytes,
    account: &str,
    api: AuditApi,
) -> Result<(EventId, Timestamp, AuditFields), Failure> {
    let text = std::str::from_utf8(raw).map_err(|_| ("not UTF-8".to_owned(), None))?;
    let root = Object::parse(text).ok_or_else(|| ("not a JSON object".to_owned(), None))?;
    let action = root.object("action").unwrap_or_default();
    let actor = root.object("actor").unwrap_or_default();
    let resource = root.object("resource").unwrap_or_default();
    let (time_field, time) = match api {
        AuditApi::V1 => ("when", root.string("when")),
        AuditApi::V2 => ("action.time", action.string("time")),
    };
    let at = match time {
        Ok(Some(text)) => Some(
            chrono::DateTime::parse_from_rfc3339(&text)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    (
                        format!("unparsable time in '{time_field}': {text:?} ({e})"),
                        None,
                    )
                })?,
        ),
        Ok(None) => None,
        Err(()) => return Err((format!("field '{time_field}' is not a string"), None)),
    };
    let id = match root.string("id") {
        Ok(Some(id)) => EventId::new(id).map_err(|e| (format!("bad 'id': {e}"), at))?,
        Ok(None) => return Err(("missing field 'id'".to_owned(), at)),
        Err(()) => return Err(("field 'id' is not a string".to_owned(), at)),
    };
    let Some(at) = at else {
        return Err((format!("missing field '{time_field}'"), None));
    };
    let fields = match api {
        AuditApi::V1 => AuditFields {
            account_id: Some(account.to_owned()),
            actor_email: actor.text("email"),
            actor_type: actor.text("type"),
            action_type: action.text("type"),
            action_result: action.text("result"),
            resource_type: resource.text("type"),
            resource_id: resource.text("id"),
            ip_address: actor.text("ip"),
            metadata: root.get("metadata").map(|m| m.get().to_owned()),
        },
        AuditApi::V2 => AuditFields {
            account_id: Some(account.to_owned()),
            actor_email: actor.text("email"),
            actor_type: actor.text("type"),
            action_type: action.text("type"),
            action_result: action.text("result"),
            resource_type: resource.text("type").or_else(|| resource.text("product")),
            resource_id: resource.text("id"),
            ip_address: actor.text("ip_address"),
            metadata: v2_metadata(&root, &action, &actor, &resource),
        },
    };
    Ok((id, at, fields))
}

/// v2 has no `metadata`; gather the context that v1 kept there, as one JSON object.
fn v2_metadata(
    root: &Object<'_>,
    action: &Object<'_>,
    actor: &Object<'_>,
    resource: &Object<'_>,
) -> Option<String> {
    let mut out = serde_json::Map::new();
    let mut put = |key: &str, value: Option<&RawValue>| {
        if let Some(v) = value.and_then(|v| serde_json::from_str(v.get()).ok()) {
            out.insert(key.to_owned(), v);
        }
    };
    put("zone", root.get("zone"));
    put("request", root.get("raw"));
    put("description", action.get("description"));
    put("actor_context", actor.get("context"));
    put("token_id", actor.get("token_id"));
    put("token_name", actor.get("token_name"));
    put("product", resource.get("product"));
    put("scope", resource.get("scope"));
    (!out.is_empty()).then(|| serde_json::Value::Object(out).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(raw: &str, api: AuditApi) -> Event {
        match map_item(Bytes::copy_from_slice(raw.as_bytes()), "acc", api) {
            Mapped::Event(e) => e,
            Mapped::Quarantined(q) => panic!("quarantined: {}", q.reason),
        }
    }

    fn reason(raw: &str, api: AuditApi) -> String {
        match map_item(Bytes::copy_from_slice(raw.as_bytes()), "acc", api) {
            Mapped::Event(e) => panic!("mapped: {e:?}"),
            Mapped::Quarantined(q) => {
                assert_eq!(q.raw.as_ref(), raw.as_bytes(), "bytes kept exactly");
                assert_eq!(q.id, EventId::content_hash(raw.as_bytes()));
                q.reason
            }
        }
    }

    fn audit(e: &Event) -> &AuditFields {
        match &e.fields {
            Fields::Audit(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v1_events_map_to_the_seed_columns_and_keep_their_bytes() {
        let raw = r#"{"id":"f174be97","action":{"info":"x","result":true,"type":"change_setting"},"actor":{"email":"m@example.com","id":"f6","ip":"198.41.129.166","type":"user"},"interface":"API","metadata":{"zone_name":"example.com"},"resource":{"id":"r1","type":"zone"},"when":"2017-04-26T17:31:07Z"}"#;
        let e = event(raw, AuditApi::V1);
        assert_eq!(e.id.as_str(), "f174be97");
        assert_eq!(e.raw.as_ref(), raw.as_bytes());
        assert_eq!(e.occurred_at.to_rfc3339(), "2017-04-26T17:31:07+00:00");
        let a = audit(&e);
        assert_eq!(a.account_id.as_deref(), Some("acc"));
        assert_eq!(a.actor_email.as_deref(), Some("m@example.com"));
        assert_eq!(a.actor_type.as_deref(), Some("user"));
        assert_eq!(a.action_type.as_deref(), Some("change_setting"));
        assert_eq!(a.action_result.as_deref(), Some("true"));
        assert_eq!(a.resource_type.as_deref(), Some("zone"));
        assert_eq!(a.resource_id.as_deref(), Some("r1"));
        assert_eq!(a.ip_address.as_deref(), Some("198.41.129.166"));
        assert_eq!(
            a.metadata.as_deref(),
            Some(r#"{"zone_name":"example.com"}"#)
        );
    }

    #[test]
    fn times_with_fractions_and_optional_fields_missing_or_odd() {
        let e = event(
            r#"{"id":"a","when":"2026-11-20T10:00:00.123456Z","actor":{"type":"system","ip":"unknown"},"resource":{"id":42}}"#,
            AuditApi::V1,
        );
        assert_eq!(e.occurred_at.timestamp_subsec_micros(), 123_456);
        let a = audit(&e);
        assert_eq!(
            a.actor_type.as_deref(),
            Some("system"),
            "undocumented actor types are kept"
        );
        assert_eq!(
            a.ip_address.as_deref(),
            Some("unknown"),
            "a bad IP is kept as text"
        );
        assert_eq!(a.resource_id.as_deref(), Some("42"));
        assert_eq!(a.actor_email, None);
        assert_eq!(a.metadata, None);
        // A non-object where an object is expected loses only that field.
        let e = event(
            r#"{"id":"b","when":"2026-11-20T10:00:00Z","actor":"someone","metadata":null}"#,
            AuditApi::V1,
        );
        assert_eq!(audit(&e).actor_email, None);
    }

    #[test]
    fn v2_events_map_with_action_time_and_gathered_metadata() {
        let raw = r#"{"id":"v2id","account":{"id":"acc"},"action":{"description":"Add record","result":"success","time":"2026-11-20T10:00:01.5Z","type":"create"},"actor":{"context":"api_token","email":"a@example.com","ip_address":"2001:db8::1","token_id":"t1","token_name":"ci","type":"user"},"raw":{"cf_ray_id":"8","method":"POST","status_code":200,"uri":"/x"},"resource":{"id":"rid","product":"dns","scope":{"id":"z"},"type":"dns_record"},"zone":{"id":"z","name":"example.com"}}"#;
        let e = event(raw, AuditApi::V2);
        assert_eq!(e.occurred_at.timestamp_subsec_millis(), 500);
        let a = audit(&e);
        assert_eq!(a.ip_address.as_deref(), Some("2001:db8::1"));
        assert_eq!(a.action_result.as_deref(), Some("success"));
        assert_eq!(a.resource_type.as_deref(), Some("dns_record"));
        let meta: serde_json::Value = serde_json::from_str(a.metadata.as_deref().unwrap()).unwrap();
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

    /// The core's `audit_logs` schema (what the sinks will derive from) reads the same columns
    /// as this hand-written mapping, for v1 and v2 items and odd fields alike; only a value the
    /// column's type cannot hold differs (an address that is not one is NULL there, as in every
    /// sink today). Guards the switch of this source to the schema.
    #[test]
    fn the_core_audit_schema_reads_the_columns_this_mapping_reads() {
        use cflogs_core::schema::Value;
        use cflogs_core::{Context, Dataset, DatasetSchema};
        let schema = DatasetSchema::builtin(&Dataset::audit_logs());
        let context = Context::new().with("account_id", "acc");
        let mut items: Vec<(String, AuditApi)> = vec![
            (r#"{"id":"f1","action":{"result":true,"type":"change_setting"},"actor":{"email":"m@example.com","ip":"198.41.129.166","type":"user"},"metadata":{"zone_name":"example.com","n":[1,2]},"resource":{"id":"r1","type":"zone"},"when":"2017-04-26T17:31:07Z"}"#.to_owned(), AuditApi::V1),
            (r#"{"id":"a","when":"2026-11-20T10:00:00.123456Z","actor":{"type":"system","ip":"unknown"},"resource":{"id":42}}"#.to_owned(), AuditApi::V1),
            (r#"{"id":"b","when":"2026-11-20T10:00:00Z","actor":"someone","metadata":null}"#.to_owned(), AuditApi::V1),
            (r#"{"id":"v2id","action":{"description":"Add record","result":"success","time":"2026-11-20T10:00:01.5Z","type":"create"},"actor":{"context":"api_token","email":"a@example.com","ip_address":" 2001:DB8::1 ","token_id":"t1","token_name":"ci","type":"user"},"raw":{"method":"POST","status_code":200},"resource":{"id":"rid","product":"dns","scope":{"id":"z"}},"zone":{"id":"z","name":"example.com"}}"#.to_owned(), AuditApi::V2),
            (r#"{"id":"v2b","action":{"time":"2026-11-20T10:00:02Z"},"actor":{}}"#.to_owned(), AuditApi::V2),
        ];
        let start = chrono::DateTime::from_timestamp(1_795_600_800, 0).unwrap();
        for n in 0..50 {
            let e = cflogs_core::testing::samples::audit_event("acc", n, start);
            items.push((String::from_utf8(e.raw.to_vec()).unwrap(), AuditApi::V1));
        }
        for (raw, api) in items {
            let e = event(&raw, api);
            let a = audit(&e);
            let json: serde_json::Value = serde_json::from_str(&raw).unwrap();
            let mapped = schema.map_in(&json, &context).expect("the schema maps it");
            assert_eq!(mapped.id.as_ref(), Some(&e.id), "{raw}");
            assert_eq!(mapped.occurred_at, e.occurred_at, "{raw}");
            let text = |v: &Option<String>| v.clone().map(Value::Text);
            let expected = [
                text(&a.account_id),
                text(&a.actor_email),
                text(&a.actor_type),
                text(&a.action_type),
                text(&a.action_result),
                text(&a.resource_type),
                text(&a.resource_id),
                a.parsed_ip().map(Value::Ip),
            ];
            assert_eq!(mapped.values[..8], expected, "{raw}");
            let as_json = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
            match (&mapped.values[8], &a.metadata) {
                (Some(Value::Json(got)), Some(want)) => {
                    assert_eq!(as_json(got), as_json(want), "{raw}");
                }
                (None, None) => {}
                (got, want) => panic!("metadata {got:?} != {want:?} in {raw}"),
            }
        }
    }

    #[test]
    fn a_quarantined_event_keeps_its_time_when_it_has_one() {
        match map_item(
            Bytes::from_static(br#"{"when":"2026-11-20T10:00:00Z"}"#),
            "acc",
            AuditApi::V1,
        ) {
            Mapped::Quarantined(q) => assert!(q.occurred_at.is_some()),
            Mapped::Event(_) => panic!("mapped"),
        }
    }
}
