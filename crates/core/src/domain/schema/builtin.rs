//! The built-in dataset schemas: Cloudflare's Logpush/Logpull field names, the columns security
//! and platform teams filter on most, every other field kept in the raw event.

use super::{ColumnType as T, DatasetSchema, SchemaBuilder, TimeFormat};
use crate::domain::Dataset;

/// Times are read in any format: Logpush jobs choose `unixnano`, `unix` or `rfc3339`.
const ANY: T = T::Timestamp(TimeFormat::Any);

pub(super) fn schema(dataset: &Dataset) -> DatasetSchema {
    let builder = match dataset.as_str() {
        Dataset::AUDIT_LOGS => audit_logs(dataset.clone()),
        "http_requests" => http_requests(dataset.clone()),
        "firewall_events" => firewall_events(dataset.clone()),
        "gateway_dns" => gateway_dns(dataset.clone()),
        "workers_trace_events" => workers_trace_events(dataset.clone()),
        _ => generic(dataset.clone()),
    };
    builder
        .build()
        .unwrap_or_else(|e| unreachable!("built-in schema {dataset}: {e}"))
}

/// Account audit logs, v1 and v2 in one schema (each path lists v1's name first): the columns
/// of seed 001, unchanged for existing users. The account comes from the request path
/// (context key `account_id`), and is part of the row key so that accounts share the table;
/// v2 has no `metadata`, so the context v1 kept there is gathered from v2's fields.
fn audit_logs(dataset: Dataset) -> SchemaBuilder {
    DatasetSchema::builder(dataset, &["when", "action.time"], TimeFormat::Rfc3339)
        .id_field(&["id"])
        .context_column("account_id", T::Text, "account_id")
        .column("actor_email", T::Text, &["actor.email"])
        .column("actor_type", T::Text, &["actor.type"])
        .column("action_type", T::Text, &["action.type"])
        .column("action_result", T::Text, &["action.result"])
        .column(
            "resource_type",
            T::Text,
            &["resource.type", "resource.product"],
        )
        .column("resource_id", T::Text, &["resource.id"])
        .column("ip_address", T::Ip, &["actor.ip", "actor.ip_address"])
        .column("metadata", T::Json, &["metadata"])
        .gather(
            "metadata",
            &[
                ("zone", "zone"),
                ("request", "raw"),
                ("description", "action.description"),
                ("actor_context", "actor.context"),
                ("token_id", "actor.token_id"),
                ("token_name", "actor.token_name"),
                ("product", "resource.product"),
                ("scope", "resource.scope"),
            ],
        )
        .key(&["account_id"])
        .index(&["actor_email", "action_type", "resource_id", "ip_address"])
}

/// Any other dataset: its time, wherever Cloudflare's datasets keep it, and the raw JSON.
fn generic(dataset: Dataset) -> SchemaBuilder {
    DatasetSchema::builder(
        dataset,
        &[
            "Datetime",
            "EdgeStartTimestamp",
            "EventTimestampMs",
            "When",
            "timestamp",
        ],
        TimeFormat::Any,
    )
}

fn fields(mut b: SchemaBuilder, fields: &[(&str, T)]) -> SchemaBuilder {
    for (field, ty) in fields {
        b = b.field(field, *ty);
    }
    b
}

/// Zone HTTP requests (Logpull, Logpush). `RayID` is not guaranteed unique, so ids come from
/// the source.
fn http_requests(dataset: Dataset) -> SchemaBuilder {
    let b = DatasetSchema::builder(dataset, &["EdgeStartTimestamp"], TimeFormat::Any);
    fields(
        b,
        &[
            ("RayID", T::Text),
            ("EdgeEndTimestamp", ANY),
            ("ClientIP", T::Ip),
            ("ClientCountry", T::Text),
            ("ClientASN", T::Integer),
            ("ClientRequestHost", T::Text),
            ("ClientRequestMethod", T::Text),
            ("ClientRequestURI", T::Text),
            ("ClientRequestProtocol", T::Text),
            ("ClientRequestUserAgent", T::Text),
            ("ClientRequestReferer", T::Text),
            ("ClientSSLProtocol", T::Text),
            ("EdgeResponseStatus", T::Integer),
            ("EdgeResponseBytes", T::Integer),
            ("EdgeColoCode", T::Text),
            ("OriginIP", T::Ip),
            ("OriginResponseStatus", T::Integer),
            ("OriginResponseDurationMs", T::Integer),
            ("CacheCacheStatus", T::Text),
            ("SecurityAction", T::Text),
            ("SecurityRuleID", T::Text),
            ("BotScore", T::Integer),
            ("WAFAttackScore", T::Integer),
            ("ZoneName", T::Text),
        ],
    )
    .id_from_source()
}

/// Zone firewall events (Logpush).
fn firewall_events(dataset: Dataset) -> SchemaBuilder {
    let b = DatasetSchema::builder(dataset, &["Datetime"], TimeFormat::Any);
    fields(
        b,
        &[
            ("RayID", T::Text),
            ("Action", T::Text),
            ("Source", T::Text),
            ("RuleID", T::Text),
            ("Description", T::Text),
            ("Kind", T::Text),
            ("ClientIP", T::Ip),
            ("ClientCountry", T::Text),
            ("ClientASN", T::Integer),
            ("ClientRequestHost", T::Text),
            ("ClientRequestMethod", T::Text),
            ("ClientRequestPath", T::Text),
            ("ClientRequestQuery", T::Text),
            ("ClientRequestUserAgent", T::Text),
            ("EdgeResponseStatus", T::Integer),
            ("OriginResponseStatus", T::Integer),
            ("Metadata", T::Json),
        ],
    )
    .id_from_source()
}

/// Zero Trust Gateway DNS queries (account Logpush). `QueryID` identifies a query.
fn gateway_dns(dataset: Dataset) -> SchemaBuilder {
    let b = DatasetSchema::builder(dataset, &["Datetime"], TimeFormat::Any);
    fields(
        b,
        &[
            ("QueryID", T::Text),
            ("QueryName", T::Text),
            ("QueryTypeName", T::Text),
            ("ResolverDecision", T::Text),
            ("SrcIP", T::Ip),
            ("DstIP", T::Ip),
            ("Protocol", T::Text),
            ("Email", T::Text),
            ("UserID", T::Text),
            ("DeviceID", T::Text),
            ("PolicyID", T::Text),
            ("PolicyName", T::Text),
            ("ColoCode", T::Text),
        ],
    )
    .id_field(&["QueryID"])
}

/// Workers trace events (account Logpush); time in Unix milliseconds.
fn workers_trace_events(dataset: Dataset) -> SchemaBuilder {
    let b = DatasetSchema::builder(dataset, &["EventTimestampMs"], TimeFormat::Any);
    fields(
        b,
        &[
            ("ScriptName", T::Text),
            ("Outcome", T::Text),
            ("EventType", T::Text),
            ("DispatchNamespace", T::Text),
            ("CPUTimeMs", T::Integer),
            ("WallTimeMs", T::Integer),
            ("Event", T::Json),
            ("Logs", T::Json),
            ("Exceptions", T::Json),
            ("ScriptTags", T::Json),
        ],
    )
    .id_from_source()
}
