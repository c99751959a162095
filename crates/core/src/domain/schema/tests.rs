use super::*;
use serde_json::json;

fn ds(name: &str) -> Dataset {
    Dataset::new(name).unwrap()
}

#[test]
fn cloudflare_field_names_become_snake_case_columns() {
    for (field, column) in [
        ("RayID", "ray_id"),
        ("ClientIP", "client_ip"),
        ("ClientRequestURI", "client_request_uri"),
        ("ClientSSLProtocol", "client_ssl_protocol"),
        ("WAFAttackScore", "waf_attack_score"),
        ("CPUTimeMs", "cpu_time_ms"),
        ("EdgeStartTimestamp", "edge_start_timestamp"),
        ("OriginResponseDurationMs", "origin_response_duration_ms"),
        ("Datetime", "datetime"),
    ] {
        assert_eq!(snake_case(field), column, "{field}");
    }
}

#[test]
fn times_are_read_in_every_format_cloudflare_writes() {
    let want = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456789Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ns = json!(1_795_600_800_123_456_789_i64);
    assert_eq!(parse_time(TimeFormat::UnixNanos, &ns), Some(want));
    assert_eq!(parse_time(TimeFormat::Any, &ns), Some(want));
    let text = json!("2026-11-25T10:00:00.123456789Z");
    assert_eq!(parse_time(TimeFormat::Rfc3339, &text), Some(want));
    assert_eq!(parse_time(TimeFormat::Any, &text), Some(want));
    let whole = want.with_nanosecond(0).unwrap();
    assert_eq!(
        parse_time(TimeFormat::UnixSeconds, &json!(1_795_600_800)),
        Some(whole)
    );
    assert_eq!(
        parse_time(TimeFormat::Any, &json!(1_795_600_800)),
        Some(whole)
    );
    let ms = want.with_nanosecond(123_000_000).unwrap();
    assert_eq!(
        parse_time(TimeFormat::UnixMillis, &json!(1_795_600_800_123_i64)),
        Some(ms)
    );
    assert_eq!(
        parse_time(TimeFormat::Any, &json!(1_795_600_800_123_i64)),
        Some(ms)
    );
    let us = want.with_nanosecond(123_456_000).unwrap();
    assert_eq!(
        parse_time(TimeFormat::Any, &json!(1_795_600_800_123_456_i64)),
        Some(us)
    );
    assert_eq!(
        parse_time(TimeFormat::UnixSeconds, &json!(1_795_600_800.5)),
        Some(want.with_nanosecond(500_000_000).unwrap())
    );
    for bad in [json!("yesterday"), json!(true), json!(null), json!({})] {
        assert_eq!(parse_time(TimeFormat::Any, &bad), None, "{bad}");
    }
    assert_eq!(parse_time(TimeFormat::UnixNanos, &text), None);
    assert_eq!(parse_time(TimeFormat::Rfc3339, &ns), None);
}

use chrono::Timelike as _;

#[test]
fn a_missing_field_is_null_and_a_wrong_type_never_fails_the_record() {
    let schema = DatasetSchema::builtin(&ds("http_requests"));
    let line = json!({
        "RayID": "8e1f3c2a9b7d4e5f",
        "EdgeStartTimestamp": 1_795_600_800_123_456_789_i64,
        "ClientIP": "2001:db8::1",
        "EdgeResponseStatus": "four hundred",
        "BotScore": 30,
        "OriginIP": "not an address",
        "ClientRequestHost": 42,
    });
    let mapped = schema.map(&line).unwrap();
    assert_eq!(mapped.id, None, "http_requests ids come from the source");
    let value = |name: &str| {
        let i = schema
            .columns()
            .iter()
            .position(|c| c.name() == name)
            .unwrap();
        mapped.values[i].clone()
    };
    assert_eq!(
        value("ray_id"),
        Some(Value::Text("8e1f3c2a9b7d4e5f".into()))
    );
    assert_eq!(
        value("client_ip"),
        Some(Value::Ip("2001:db8::1".parse().unwrap()))
    );
    assert_eq!(value("bot_score"), Some(Value::Integer(30)));
    assert_eq!(value("edge_response_status"), None, "wrong type: NULL");
    assert_eq!(value("origin_ip"), None, "not an address: NULL");
    assert_eq!(value("client_request_host"), Some(Value::Text("42".into())));
    assert_eq!(value("zone_name"), None, "missing: NULL");
    assert_eq!(mapped.values.len(), schema.columns().len());
}

#[test]
fn only_time_and_id_make_a_record_unmappable() {
    let schema = DatasetSchema::builtin(&ds("gateway_dns"));
    let ok = json!({"Datetime": "2026-11-25T10:00:00Z", "QueryID": "q-1", "SrcIP": 7});
    let mapped = schema.map(&ok).unwrap();
    assert_eq!(mapped.id.unwrap().as_str(), "q-1");
    let no_time = schema.map(&json!({"QueryID": "q-1"})).unwrap_err();
    assert!(no_time.contains("missing field 'Datetime'"), "{no_time}");
    let bad_time = schema
        .map(&json!({"Datetime": "soon", "QueryID": "q-1"}))
        .unwrap_err();
    assert!(bad_time.contains("unreadable time"), "{bad_time}");
    let no_id = schema
        .map(&json!({"Datetime": "2026-11-25T10:00:00Z"}))
        .unwrap_err();
    assert!(no_id.contains("missing field 'QueryID'"), "{no_id}");
}

#[test]
fn every_built_in_schema_builds_and_an_unknown_dataset_gets_the_generic_one() {
    for name in BUILTIN_DATASETS {
        let schema = DatasetSchema::builtin(&ds(name));
        assert_eq!(schema.dataset().as_str(), *name);
        assert!(schema.columns().len() >= 9, "{name}");
    }
    let generic = DatasetSchema::builtin(&ds("spectrum_events"));
    assert!(generic.columns().is_empty());
    let mapped = generic
        .map(&json!({"Timestamp": 1, "Datetime": 1_795_600_800_000_000_000_i64}))
        .unwrap();
    assert_eq!(mapped.occurred_at.to_rfc3339(), "2026-11-25T10:00:00+00:00");
}

#[test]
fn a_new_dataset_is_one_schema_definition() {
    let schema = DatasetSchema::builder(
        ds("app_events"),
        &["timestamp_utc"],
        TimeFormat::UnixSeconds,
    )
    .id_field(&["event_id", "id"])
    .column("event_type", ColumnType::Text, &["event_type"])
    .column("customer_id", ColumnType::Integer, &["customer_id"])
    .column("is_admin", ColumnType::Boolean, &["event_data.is_admin"])
    .column("event_data", ColumnType::Json, &["event_data"])
    .build()
    .unwrap();
    let mapped = schema
        .map(&json!({
            "id": 17, "event_type": "login_attempt", "timestamp_utc": 1_609_459_200,
            "customer_id": 123, "event_data": {"is_admin": true}
        }))
        .unwrap();
    assert_eq!(mapped.id.unwrap().as_str(), "17");
    assert_eq!(
        mapped.values,
        vec![
            Some(Value::Text("login_attempt".into())),
            Some(Value::Integer(123)),
            Some(Value::Boolean(true)),
            Some(Value::Json(r#"{"is_admin":true}"#.into())),
        ]
    );
}

#[test]
fn a_bad_schema_is_refused_with_the_reason() {
    let base = || DatasetSchema::builder(ds("x"), &["t"], TimeFormat::Any);
    let err = |b: SchemaBuilder| b.build().unwrap_err().to_string();
    assert!(err(base().column("Bad", ColumnType::Text, &["a"])).contains("must match"));
    assert!(err(base().column("raw_event", ColumnType::Text, &["a"])).contains("reserved"));
    assert!(
        err(base()
            .column("a", ColumnType::Text, &["a"])
            .column("a", ColumnType::Integer, &["b"]))
        .contains("twice")
    );
    assert!(err(base().column("a", ColumnType::Text, &[])).contains("no path"));
    assert!(err(base().column("a", ColumnType::Text, &["a..b"])).contains("empty key"));
    assert!(err(base().id_field(&[])).contains("needs a path"));
    assert!(err(DatasetSchema::builder(ds("x"), &[], TimeFormat::Any)).contains("no time field"));
}

#[test]
fn audit_logs_has_the_seed_columns_with_the_account_from_the_context() {
    let schema = DatasetSchema::builtin(&ds("audit_logs"));
    let names: Vec<&str> = schema.columns().iter().map(Column::name).collect();
    assert_eq!(
        names,
        [
            "account_id",
            "actor_email",
            "actor_type",
            "action_type",
            "action_result",
            "resource_type",
            "resource_id",
            "ip_address",
            "metadata"
        ],
        "seed 001's columns, in its order"
    );
    let keys: Vec<&str> = schema
        .columns()
        .iter()
        .filter(|c| c.is_key())
        .map(Column::name)
        .collect();
    assert_eq!(keys, ["account_id"]);
    let indexed: Vec<&str> = schema
        .columns()
        .iter()
        .filter(|c| c.is_indexed())
        .map(Column::name)
        .collect();
    assert_eq!(
        indexed,
        ["actor_email", "action_type", "resource_id", "ip_address"]
    );
    let context = Context::new().with("account_id", "acc1");
    let v1 = schema
        .map_in(
            &json!({"id": "e1", "when": "2026-11-25T10:00:00Z", "action": {"result": true},
                    "actor": {"ip": "198.51.100.7"}, "metadata": {"z": 1}}),
            &context,
        )
        .unwrap();
    assert_eq!(v1.values[0], Some(Value::Text("acc1".into())));
    assert_eq!(v1.values[4], Some(Value::Text("true".into())));
    assert_eq!(
        v1.values[7],
        Some(Value::Ip("198.51.100.7".parse().unwrap()))
    );
    assert_eq!(v1.values[8], Some(Value::Json(r#"{"z":1}"#.into())));
    // v2: time in action.time, address in actor.ip_address, no metadata but gathered context.
    let v2 = schema
        .map_in(
            &json!({"id": "e2", "action": {"time": "2026-11-25T10:00:01Z", "description": "d"},
                    "actor": {"ip_address": "2001:db8::1", "token_name": "ci"},
                    "resource": {"product": "dns"}}),
            &context,
        )
        .unwrap();
    assert_eq!(v2.occurred_at.to_rfc3339(), "2026-11-25T10:00:01+00:00");
    assert_eq!(
        v2.values[5],
        Some(Value::Text("dns".into())),
        "resource.product"
    );
    assert_eq!(
        v2.values[8],
        Some(Value::Json(
            r#"{"description":"d","product":"dns","token_name":"ci"}"#.into()
        ))
    );
    // Without the context the account is missing (NULL; sinks store '' in a key column).
    let bare = schema
        .map(&json!({"id": "e3", "when": "2026-11-25T10:00:00Z"}))
        .unwrap();
    assert_eq!(bare.values[0], None);
    assert!(bare.values[1..].iter().all(Option::is_none));
}

#[test]
fn key_and_gathered_columns_are_checked() {
    let base = || DatasetSchema::builder(ds("x"), &["t"], TimeFormat::Any);
    let err = |b: SchemaBuilder| b.build().unwrap_err().to_string();
    assert!(
        err(base().column("n", ColumnType::Integer, &["n"]).key(&["n"])).contains("must be text")
    );
    assert!(
        err(base()
            .column("m", ColumnType::Text, &["m"])
            .gather("m", &[("a", "a")]))
        .contains("must be JSON")
    );
    assert!(err(base().index(&["nowhere"])).contains("\"nowhere\" has no path"));
    assert!(
        err(base()
            .column("m", ColumnType::Json, &["m"])
            .gather("m", &[("a", "a..b")]))
        .contains("empty key")
    );
    let ok = base()
        .context_column("zone_id", ColumnType::Text, "zone")
        .key(&["zone_id"])
        .build()
        .unwrap();
    assert_eq!(ok.columns()[0].context_key(), Some("zone"));
    let mapped = ok
        .map_in(&json!({"t": 1}), &Context::new().with("zone", "z1"))
        .unwrap();
    assert_eq!(mapped.values, [Some(Value::Text("z1".into()))]);
}

#[test]
fn the_sinks_own_table_names_are_not_dataset_tables() {
    for name in ["quarantine", "raw_events", "cflogs_checkpoints", "cflogs_x"] {
        let schema = DatasetSchema::builtin(&Dataset::new(name).unwrap());
        let err = schema.table_name().unwrap_err().to_string();
        assert!(err.contains("name the dataset otherwise"), "{name}: {err}");
    }
    let audit = DatasetSchema::builtin(&Dataset::audit_logs());
    assert_eq!(audit.table_name().unwrap(), "audit_logs");
    let keys: Vec<&str> = audit.key_columns().map(Column::name).collect();
    assert_eq!(keys, ["account_id"]);
}

#[test]
fn long_index_names_are_cut_with_a_stable_hash() {
    let table = "a".repeat(40);
    let name = index_name(&table, &"b".repeat(30));
    assert_eq!(name.len(), 63);
    assert_ne!(name, index_name(&table, &"b".repeat(31)));
    assert_eq!(name, index_name(&table, &"b".repeat(30)));
    assert_eq!(index_name("t", "c"), "t_c_idx");
}

#[test]
fn values_round_trip_through_their_json_form() {
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00.123456789Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for (ty, value) in [
        (ColumnType::Text, Value::Text("é☕".into())),
        (ColumnType::Integer, Value::Integer(-7)),
        (ColumnType::Float, Value::Float(2.25)),
        (ColumnType::Boolean, Value::Boolean(false)),
        (
            ColumnType::Timestamp(TimeFormat::UnixNanos),
            Value::Timestamp(t),
        ),
        (ColumnType::Ip, Value::Ip("2001:db8::1".parse().unwrap())),
        (ColumnType::Json, Value::Json(r#"{"a":[1,"x"]}"#.into())),
    ] {
        assert_eq!(
            Value::from_json(ty, &value.to_json()),
            Some(value),
            "{ty:?}"
        );
    }
    assert_eq!(Value::from_json(ColumnType::Text, &json!(null)), None);
    assert_eq!(Value::from_json(ColumnType::Integer, &json!("x")), None);
}
