//! Datasets described by data: a [`DatasetSchema`] names a dataset's time field, its id rule and
//! its typed columns with the JSON paths they are read from. Sinks derive their tables and
//! files from it (the next step of issue 12 wires PostgreSQL, SQLite and Parquet to it), so
//! adding a dataset is one schema definition, never code in a sink.
//!
//! Mapping is lenient by design: a missing field is NULL, a value of the wrong type is NULL in
//! its column (the raw event keeps it), and only a missing or unreadable time or id makes a
//! record unmappable (quarantined by the source).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value as Json;

use super::{Dataset, EventId, Timestamp};
use crate::error::{Error, Result};

/// How a timestamp is written in the source's JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TimeFormat {
    /// An RFC 3339 string (`2026-11-25T10:00:00.123Z`).
    Rfc3339,
    /// Seconds since the Unix epoch, integer or fractional (Logpush `timestamp_format: unix`).
    UnixSeconds,
    /// Milliseconds since the Unix epoch (Workers trace events' `EventTimestampMs`).
    UnixMillis,
    /// Nanoseconds since the Unix epoch (Logpull's and Logpush's default, `unixnano`).
    UnixNanos,
    /// Any of the above, for datasets whose jobs users configure: a string is RFC 3339, a
    /// number is read by its magnitude (from 1e17 nanoseconds, from 1e14 microseconds, from
    /// 1e11 milliseconds, else seconds: unambiguous for dates from 1973 to 5138).
    Any,
}

/// The type of a column, which each sink maps to its own (PostgreSQL, SQLite, Arrow).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ColumnType {
    /// Text; a JSON string as it is, any other scalar as its JSON text (`true`, `403`).
    Text,
    /// A 64-bit integer (a JSON integer, or a string holding one).
    Integer,
    /// A 64-bit float (any JSON number, or a string holding one).
    Float,
    /// A boolean (JSON `true`/`false`).
    Boolean,
    /// A point in time, written as the format says.
    Timestamp(TimeFormat),
    /// An IPv4 or IPv6 address (a string; surrounding blanks ignored).
    Ip,
    /// Any JSON value, kept as its JSON text.
    Json,
}

/// A path into a JSON object: keys separated by `.` (`actor.email`, `ClientIP`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonPath(Vec<String>);

impl JsonPath {
    /// Parses `actor.email`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty path or an empty key.
    pub fn new(path: &str) -> Result<Self> {
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        if keys.iter().any(String::is_empty) {
            return Err(Error::invalid(
                "dataset schema",
                format!("JSON path {path:?} has an empty key"),
            ));
        }
        Ok(Self(keys))
    }

    /// The value at this path, unless it is missing or JSON `null`.
    pub fn find<'a>(&self, object: &'a Json) -> Option<&'a Json> {
        let mut at = object;
        for key in &self.0 {
            at = at.as_object()?.get(key)?;
        }
        (!at.is_null()).then_some(at)
    }

    /// Puts `value` at this path in `object`, creating the objects on the way (replacing
    /// whatever is not an object there): how a test builds a record for a schema.
    pub fn put(&self, object: &mut Json, value: Json) {
        let mut at = object;
        for key in &self.0 {
            if !at.is_object() {
                *at = Json::Object(serde_json::Map::new());
            }
            at = at
                .as_object_mut()
                .map(|o| o.entry(key.clone()).or_insert(Json::Null))
                .unwrap_or_else(|| unreachable!("made an object above"));
        }
        *at = value;
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPath({self})")
    }
}

/// The first path of `paths` that holds a value (v1 and v2 name fields differently).
fn first<'a>(paths: &[JsonPath], object: &'a Json) -> Option<&'a Json> {
    paths.iter().find_map(|p| p.find(object))
}

/// Values a stream knows about all its records that the records do not carry themselves, by
/// name: the account or zone of the request path (audit logs carry no account id).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context(Vec<(String, String)>);

impl Context {
    /// No values.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same context with `key` set to `value`.
    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v.as_str()))
    }
}

/// One typed column of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    name: String,
    ty: ColumnType,
    paths: Vec<JsonPath>,
    context: Option<String>,
    gather: Vec<(String, JsonPath)>,
    key: bool,
    indexed: bool,
}

impl Column {
    /// The column's name in every sink: a lowercase SQL identifier.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its type.
    pub fn ty(&self) -> ColumnType {
        self.ty
    }

    /// Where it is read from, first present wins.
    pub fn paths(&self) -> &[JsonPath] {
        &self.paths
    }

    /// The [`Context`] key its value comes from instead of the record, if any.
    pub fn context_key(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// When none of [`Column::paths`] is present: the fields gathered into one JSON object
    /// (name, path), of those present ([`ColumnType::Json`] columns only).
    pub fn gathered(&self) -> &[(String, JsonPath)] {
        &self.gather
    }

    /// Whether it is part of each row's key with the stream and the event id: never NULL
    /// (`''` when missing), so rows of several accounts or zones share one table.
    pub fn is_key(&self) -> bool {
        self.key
    }

    /// Whether sinks index it (the columns users filter on).
    pub fn is_indexed(&self) -> bool {
        self.indexed
    }

    /// This column's value in `object`: `None` when the field is missing, `null`, or of a type
    /// the column cannot hold.
    pub fn value(&self, object: &Json) -> Option<Value> {
        self.value_in(object, &Context::default())
    }

    /// This column's value in `object` of a stream whose context is `context`.
    pub fn value_in(&self, object: &Json, context: &Context) -> Option<Value> {
        if let Some(key) = &self.context {
            return convert(self.ty, &Json::String(context.get(key)?.to_owned()));
        }
        if let Some(v) = first(&self.paths, object) {
            return convert(self.ty, v);
        }
        if self.gather.is_empty() {
            return None;
        }
        let mut out = serde_json::Map::new();
        for (name, path) in &self.gather {
            if let Some(v) = path.find(object) {
                out.insert(name.clone(), v.clone());
            }
        }
        (!out.is_empty()).then(|| Value::Json(Json::Object(out).to_string()))
    }
}

/// A column value as read from an event.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// [`ColumnType::Text`].
    Text(String),
    /// [`ColumnType::Integer`].
    Integer(i64),
    /// [`ColumnType::Float`].
    Float(f64),
    /// [`ColumnType::Boolean`].
    Boolean(bool),
    /// [`ColumnType::Timestamp`].
    Timestamp(Timestamp),
    /// [`ColumnType::Ip`].
    Ip(IpAddr),
    /// [`ColumnType::Json`], as JSON text.
    Json(String),
}

impl Value {
    /// The value as JSON: text, addresses (canonical) and timestamps (RFC 3339 to the
    /// nanosecond) as strings, numbers and booleans as themselves, a JSON column as its
    /// document (a string when its text is not JSON). What [`Value::from_json`] reads back.
    pub fn to_json(&self) -> Json {
        match self {
            Self::Text(v) => Json::String(v.clone()),
            Self::Integer(v) => Json::from(*v),
            Self::Float(v) => Json::from(*v),
            Self::Boolean(v) => Json::Bool(*v),
            Self::Timestamp(_) | Self::Ip(_) => Json::String(self.to_text()),
            Self::Json(v) => serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.clone())),
        }
    }

    /// A value of a column of type `ty` from its JSON form ([`Value::to_json`]; a timestamp in
    /// any of the formats of [`TimeFormat::Any`]); `None` for `null` or a value the type
    /// cannot hold.
    pub fn from_json(ty: ColumnType, v: &Json) -> Option<Self> {
        match ty {
            _ if v.is_null() => None,
            ColumnType::Timestamp(_) => convert(ColumnType::Timestamp(TimeFormat::Any), v),
            _ => convert(ty, v),
        }
    }

    /// The value as text: text and JSON as they are, numbers and booleans as Rust prints them,
    /// a timestamp in RFC 3339 to the nanosecond, an address in canonical form.
    pub fn to_text(&self) -> String {
        match self {
            Self::Text(v) | Self::Json(v) => v.clone(),
            Self::Integer(v) => v.to_string(),
            Self::Float(v) => v.to_string(),
            Self::Boolean(v) => v.to_string(),
            Self::Timestamp(t) => super::rfc3339_nanos::format(t),
            Self::Ip(ip) => ip.to_string(),
        }
    }
}

fn convert(ty: ColumnType, v: &Json) -> Option<Value> {
    match ty {
        ColumnType::Text => Some(Value::Text(match v {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        })),
        ColumnType::Integer => match v {
            Json::Number(n) => n.as_i64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .map(Value::Integer),
        ColumnType::Float => match v {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse().ok(),
            _ => None,
        }
        .filter(|f: &f64| f.is_finite())
        .map(Value::Float),
        ColumnType::Boolean => v.as_bool().map(Value::Boolean),
        ColumnType::Timestamp(format) => parse_time(format, v).map(Value::Timestamp),
        ColumnType::Ip => v
            .as_str()
            .and_then(|s| s.trim().parse().ok())
            .map(Value::Ip),
        ColumnType::Json => Some(Value::Json(v.to_string())),
    }
}

/// Reads a timestamp written as `format`.
pub fn parse_time(format: TimeFormat, v: &Json) -> Option<Timestamp> {
    let rfc3339 = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s.trim())
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let nanos = |n: i128| {
        let secs = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
        let sub = u32::try_from(n.rem_euclid(1_000_000_000)).ok()?;
        chrono::DateTime::from_timestamp(secs, sub)
    };
    let seconds = |n: &serde_json::Number| match n.as_i64() {
        Some(i) => chrono::DateTime::from_timestamp(i, 0),
        None => {
            let f = n.as_f64()?;
            nanos((f * 1e9).round() as i128).filter(|_| f.is_finite())
        }
    };
    match (format, v) {
        (TimeFormat::Rfc3339 | TimeFormat::Any, Json::String(s)) => rfc3339(s),
        (TimeFormat::UnixNanos, Json::Number(n)) => nanos(i128::from(n.as_i64()?)),
        (TimeFormat::UnixSeconds, Json::Number(n)) => seconds(n),
        (TimeFormat::UnixMillis, Json::Number(n)) => nanos(i128::from(n.as_i64()?) * 1_000_000),
        (TimeFormat::Any, Json::Number(n)) => match n.as_i64().map(|i| (i, i.unsigned_abs())) {
            Some((i, a)) if a >= 100_000_000_000_000_000 => nanos(i128::from(i)),
            Some((i, a)) if a >= 100_000_000_000_000 => nanos(i128::from(i) * 1_000),
            Some((i, a)) if a >= 100_000_000_000 => nanos(i128::from(i) * 1_000_000),
            _ => seconds(n),
        },
        _ => None,
    }
}

/// How an event's id is found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdRule {
    /// A field that is unique per event (audit `id`, Gateway `QueryID`).
    Field(Vec<JsonPath>),
    /// None in the record: the source gives each one an id of its own, which the dataset's
    /// documentation states (Logpush: `(object key, line)`; Logpull: content hash and
    /// occurrence, since `RayID` is not guaranteed unique).
    FromSource,
}

/// What a record is, as a dataset schema reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    /// The id, when the schema's rule finds one ([`IdRule::FromSource`]: `None`).
    pub id: Option<EventId>,
    /// Its time.
    pub occurred_at: Timestamp,
    /// One value per column of the schema, in order.
    pub values: Vec<Option<Value>>,
}

/// A dataset described by data: its time field, its id rule, its typed columns.
///
/// Build one with [`DatasetSchema::builder`]; the built-in ones come from
/// [`DatasetSchema::builtin`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSchema {
    dataset: Dataset,
    time: Vec<JsonPath>,
    time_format: TimeFormat,
    id: IdRule,
    columns: Vec<Column>,
}

/// The datasets with a built-in schema ([`DatasetSchema::builtin`]); any other name gets the
/// generic one.
pub const BUILTIN_DATASETS: &[&str] = &[
    "audit_logs",
    "http_requests",
    "firewall_events",
    "gateway_dns",
    "workers_trace_events",
];

/// Column names the sinks add themselves, which a schema cannot use.
pub const RESERVED_COLUMNS: &[&str] = &[
    "stream",
    "event_id",
    "timestamp",
    "raw_event",
    "ingestion_time",
];

/// Dataset names a schema cannot have: the SQL sinks' own tables (and every `cflogs_` name).
pub const RESERVED_DATASETS: &[&str] = &["quarantine", "raw_events"];

impl DatasetSchema {
    /// Starts a schema for `dataset` whose time is read from `time` (first present of the
    /// comma-free paths given) written as `format`.
    pub fn builder(dataset: Dataset, time: &[&str], format: TimeFormat) -> SchemaBuilder {
        SchemaBuilder {
            dataset,
            time: time.iter().map(|p| (*p).to_owned()).collect(),
            time_format: format,
            id: None,
            columns: Vec::new(),
        }
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The name of the dataset's table in the SQL sinks: the dataset's name.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a name the sinks keep for tables of their own
    /// ([`RESERVED_DATASETS`], any `cflogs_` name).
    pub fn table_name(&self) -> Result<&str> {
        let name = self.dataset.as_str();
        if RESERVED_DATASETS.contains(&name) || name.starts_with("cflogs_") {
            return Err(Error::invalid(
                "dataset",
                format!(
                    "{name:?} cannot be stored in a table of its own: the sinks keep tables \
                     named quarantine, raw_events and cflogs_*; name the dataset otherwise"
                ),
            ));
        }
        Ok(name)
    }

    /// The columns that are part of the row key, in order.
    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.key)
    }

    /// The typed columns, in table order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The id rule.
    pub fn id_rule(&self) -> &IdRule {
        &self.id
    }

    /// Where the time is read from, and how it is written.
    pub fn time(&self) -> (&[JsonPath], TimeFormat) {
        (&self.time, self.time_format)
    }

    /// Reads `object` (a parsed event) of a stream without context.
    ///
    /// # Errors
    /// The reason the record cannot be an event, for its quarantine entry: no time, an
    /// unreadable time, no id, a bad id.
    pub fn map(&self, object: &Json) -> std::result::Result<Mapped, String> {
        self.map_in(object, &Context::default())
    }

    /// Reads `object` (a parsed event) of a stream whose context is `context`.
    ///
    /// # Errors
    /// As [`DatasetSchema::map`].
    pub fn map_in(&self, object: &Json, context: &Context) -> std::result::Result<Mapped, String> {
        let paths = || {
            self.time
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("' or '")
        };
        let Some(t) = first(&self.time, object) else {
            return Err(format!("missing field '{}'", paths()));
        };
        let occurred_at = parse_time(self.time_format, t)
            .ok_or_else(|| format!("unreadable time in '{}': {t}", paths()))?;
        let id = match &self.id {
            IdRule::FromSource => None,
            IdRule::Field(id_paths) => {
                let name = id_paths
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let Some(v) = first(id_paths, object) else {
                    return Err(format!("missing field '{name}'"));
                };
                let text = match v {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    _ => return Err(format!("field '{name}' is not a string")),
                };
                Some(EventId::new(text).map_err(|e| format!("bad '{name}': {e}"))?)
            }
        };
        Ok(Mapped {
            id,
            occurred_at,
            values: self.values_in(object, context),
        })
    }

    /// The columns of `object` (a parsed event) of a stream whose context is `context`, in
    /// order: what [`DatasetSchema::map_in`] returns as `values`, for a source that reads the id
    /// and the time by rules of its own.
    pub fn values_in(&self, object: &Json, context: &Context) -> Vec<Option<Value>> {
        self.columns
            .iter()
            .map(|c| c.value_in(object, context))
            .collect()
    }

    /// The built-in schema of `dataset` (`audit_logs`, `http_requests`, `firewall_events`,
    /// `gateway_dns`, `workers_trace_events`), or the generic one for any other dataset: the time (any
    /// format, from `Datetime`, `EdgeStartTimestamp`, `EventTimestampMs`, `When` or
    /// `timestamp`) and the raw JSON, no typed columns.
    pub fn builtin(dataset: &Dataset) -> Self {
        builtin::schema(dataset)
    }
}

/// Builds a [`DatasetSchema`], checking it whole at the end.
#[derive(Debug)]
pub struct SchemaBuilder {
    dataset: Dataset,
    time: Vec<String>,
    time_format: TimeFormat,
    id: Option<(Vec<String>, bool)>,
    columns: Vec<ColumnSpec>,
}

/// A column as given to the builder, checked by [`SchemaBuilder::build`].
#[derive(Debug)]
struct ColumnSpec {
    name: String,
    ty: ColumnType,
    paths: Vec<String>,
    context: Option<String>,
    gather: Vec<(String, String)>,
    key: bool,
    indexed: bool,
}

impl ColumnSpec {
    fn new(name: &str, ty: ColumnType) -> Self {
        Self {
            name: name.to_owned(),
            ty,
            paths: Vec::new(),
            context: None,
            gather: Vec::new(),
            key: false,
            indexed: false,
        }
    }
}

impl SchemaBuilder {
    /// Ids come from the first present of `paths`.
    #[must_use]
    pub fn id_field(mut self, paths: &[&str]) -> Self {
        self.id = Some((paths.iter().map(|p| (*p).to_owned()).collect(), true));
        self
    }

    /// Ids come from the source (see [`IdRule::FromSource`]); the default.
    #[must_use]
    pub fn id_from_source(mut self) -> Self {
        self.id = Some((Vec::new(), false));
        self
    }

    /// Adds column `name` of type `ty`, read from the first present of `paths`.
    #[must_use]
    pub fn column(mut self, name: &str, ty: ColumnType, paths: &[&str]) -> Self {
        let mut spec = ColumnSpec::new(name, ty);
        spec.paths = paths.iter().map(|p| (*p).to_owned()).collect();
        self.columns.push(spec);
        self
    }

    /// Adds column `name` of type `ty` whose value is the stream's [`Context`] value `key`.
    #[must_use]
    pub fn context_column(mut self, name: &str, ty: ColumnType, key: &str) -> Self {
        let mut spec = ColumnSpec::new(name, ty);
        spec.context = Some(key.to_owned());
        self.columns.push(spec);
        self
    }

    /// When none of column `name`'s paths is present, its value is one JSON object of the
    /// `(name, path)` fields present (`name` must be a [`ColumnType::Json`] column added before).
    #[must_use]
    pub fn gather(mut self, name: &str, fields: &[(&str, &str)]) -> Self {
        self.edit(name, |c| {
            c.gather = fields
                .iter()
                .map(|(k, p)| ((*k).to_owned(), (*p).to_owned()))
                .collect();
        });
        self
    }

    /// Makes the columns `names` part of each row's key (see [`Column::is_key`]).
    #[must_use]
    pub fn key(mut self, names: &[&str]) -> Self {
        for name in names {
            self.edit(name, |c| c.key = true);
        }
        self
    }

    /// Indexes the columns `names` in the sinks.
    #[must_use]
    pub fn index(mut self, names: &[&str]) -> Self {
        for name in names {
            self.edit(name, |c| c.indexed = true);
        }
        self
    }

    /// Applies `f` to column `name`; an unknown name is kept as a column without path, which
    /// [`SchemaBuilder::build`] refuses with its name.
    fn edit(&mut self, name: &str, f: impl FnOnce(&mut ColumnSpec)) {
        if !self.columns.iter().any(|c| c.name == name) {
            self.columns.push(ColumnSpec::new(name, ColumnType::Text));
        }
        if let Some(c) = self.columns.iter_mut().find(|c| c.name == name) {
            f(c);
        }
    }

    /// Adds a column named after a Cloudflare field in snake case (`ClientIP` → `client_ip`),
    /// read from that field.
    #[must_use]
    pub fn field(self, field: &str, ty: ColumnType) -> Self {
        let name = snake_case(field);
        self.column(&name, ty, &[field])
    }

    /// The schema.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the problem: no time path, an empty path, a column name that
    /// is not `[a-z][a-z0-9_]{0,62}`, reserved ([`RESERVED_COLUMNS`]) or given twice, a column
    /// or id without paths, a key column that is not text, gathered fields on a column that is
    /// not JSON.
    pub fn build(self) -> Result<DatasetSchema> {
        let bad = |what: String| Error::invalid("dataset schema", what);
        let paths = |list: &[String]| -> Result<Vec<JsonPath>> {
            list.iter().map(|p| JsonPath::new(p)).collect()
        };
        let dataset = self.dataset;
        if self.time.is_empty() {
            return Err(bad(format!("{dataset}: no time field")));
        }
        let time = paths(&self.time)?;
        let id = match self.id {
            Some((list, true)) if list.is_empty() => {
                return Err(bad(format!("{dataset}: an id field needs a path")));
            }
            Some((list, true)) => IdRule::Field(paths(&list)?),
            Some((_, false)) | None => IdRule::FromSource,
        };
        let mut columns: Vec<Column> = Vec::with_capacity(self.columns.len());
        for spec in self.columns {
            let ColumnSpec {
                name,
                ty,
                paths: list,
                context,
                gather,
                key,
                indexed,
            } = spec;
            if Dataset::new(name.clone()).is_err() {
                return Err(bad(format!(
                    "{dataset}: column {name:?} must match [a-z][a-z0-9_]{{0,62}}"
                )));
            }
            if RESERVED_COLUMNS.contains(&name.as_str()) {
                return Err(bad(format!(
                    "{dataset}: column {name:?} is reserved: every table has it already"
                )));
            }
            if columns.iter().any(|c| c.name == name) {
                return Err(bad(format!("{dataset}: column {name:?} given twice")));
            }
            if list.is_empty() && context.is_none() && gather.is_empty() {
                return Err(bad(format!("{dataset}: column {name:?} has no path")));
            }
            if key && ty != ColumnType::Text {
                return Err(bad(format!("{dataset}: key column {name:?} must be text")));
            }
            if !gather.is_empty() && ty != ColumnType::Json {
                return Err(bad(format!(
                    "{dataset}: column {name:?} gathers fields, so it must be JSON"
                )));
            }
            let gather = gather
                .into_iter()
                .map(|(k, p)| Ok((k, JsonPath::new(&p)?)))
                .collect::<Result<Vec<_>>>()?;
            columns.push(Column {
                name,
                ty,
                paths: paths(&list)?,
                context,
                gather,
                key,
                indexed,
            });
        }
        Ok(DatasetSchema {
            dataset,
            time,
            time_format: self.time_format,
            id,
            columns,
        })
    }
}

/// What a sink derives once per schema (its table's statements, say), by dataset, kept with the
/// schema it was derived from: a schema of the same dataset that differs (a column added) is
/// derived again. Shared by clones of a sink; safe to use from several tasks.
#[derive(Debug)]
pub struct Derived<T>(Mutex<HashMap<String, DerivedEntry<T>>>);

/// A schema and what was derived from it.
type DerivedEntry<T> = (Arc<DatasetSchema>, Arc<T>);

impl<T> Default for Derived<T> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<T> Derived<T> {
    /// What was derived from `schema` (or an equal schema), if anything.
    pub fn get(&self, schema: &Arc<DatasetSchema>) -> Option<Arc<T>> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(schema.dataset.as_str())
            .filter(|(known, _)| Arc::ptr_eq(known, schema) || **known == **schema)
            .map(|(_, derived)| derived.clone())
    }

    /// Keeps `derived` as what was derived from `schema`, replacing what an earlier schema of
    /// the dataset gave.
    pub fn insert(&self, schema: &Arc<DatasetSchema>, derived: Arc<T>) {
        // Only inserts and reads: a panic elsewhere cannot leave the map half-changed.
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert(
            schema.dataset.as_str().to_owned(),
            (schema.clone(), derived),
        );
    }
}

/// The name of the SQL sinks' index on `column` of `table`: `{table}_{column}_idx`, or, past
/// the 63 bytes PostgreSQL keeps of an identifier, its first 54 bytes and a hash of the whole,
/// so two long names never collide and a name is the same in every release.
pub fn index_name(table: &str, column: &str) -> String {
    let full = format!("{table}_{column}_idx");
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across Rust releases, unlike the standard library's hasher.
    let hash = full.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{}_{hash:08x}", &full[..54])
}

/// `ClientRequestURI` → `client_request_uri`, `WAFAttackScore` → `waf_attack_score`,
/// `RayID` → `ray_id`.
pub fn snake_case(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut out = String::with_capacity(field.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_ascii_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            let prev_upper = i > 0 && chars[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.push('_');
        }
    }
    out
}

mod builtin;

#[cfg(test)]
mod tests;
