//! Identifiers: streams, datasets, events, epochs.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One source scope with its own progress, e.g. `audit-v1/account/<id>` or
/// `logpull/zone/<id>`.
///
/// Segments separated by `/`, each of ASCII letters, digits, `.`, `_`, `-` (no `.` or `..`
/// segments), 1 to 200 bytes in all. The restriction makes the id safe in object keys and SQL
/// values; [`StreamId::key_segment`] gives a single-segment form for file names.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Validates and wraps a stream id.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the id is empty, longer than 200 bytes, has an empty, `.` or
    /// `..` segment, or a character outside `[A-Za-z0-9._-]` and `/`.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > 200 {
            return Err(Error::invalid(
                "stream id",
                format!("{id:?} must be 1 to 200 bytes long"),
            ));
        }
        for segment in id.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(Error::invalid(
                    "stream id",
                    format!("{id:?} has an empty, '.' or '..' segment"),
                ));
            }
            if let Some(c) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            {
                return Err(Error::invalid(
                    "stream id",
                    format!(
                        "{id:?} contains {c:?}; use ASCII letters, digits, '.', '_', '-' and '/'"
                    ),
                ));
            }
        }
        Ok(Self(id))
    }

    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as one path segment (`/` replaced by `~`, which ids cannot contain), for object
    /// names such as `part-{stream}-{seq}.parquet`. Injective: two streams never share it.
    pub fn key_segment(&self) -> String {
        self.0.replace('/', "~")
    }

    /// The stream whose [`StreamId::key_segment`] is `segment`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the segment is not one of a valid id.
    pub fn from_key_segment(segment: &str) -> Result<Self> {
        Self::new(segment.replace('~', "/"))
    }
}

impl TryFrom<String> for StreamId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

/// The kind of records a stream carries, which decides the table and the archive folder:
/// `audit_logs`, `http_requests`, …
///
/// Lowercase ASCII letters, digits and `_`, starting with a letter, 1 to 63 bytes (a valid
/// unquoted PostgreSQL identifier).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Dataset(String);

impl Dataset {
    /// Account audit logs (v1 and v2 map to the same columns).
    pub const AUDIT_LOGS: &'static str = "audit_logs";

    /// Validates and wraps a dataset name.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the name is not `[a-z][a-z0-9_]{0,62}`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        let ok = (1..=63).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(name))
        } else {
            Err(Error::invalid(
                "dataset",
                format!("{name:?} must match [a-z][a-z0-9_]{{0,62}}"),
            ))
        }
    }

    /// The audit log dataset.
    pub fn audit_logs() -> Self {
        Self(Self::AUDIT_LOGS.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Dataset {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<Dataset> for String {
    fn from(value: Dataset) -> Self {
        value.0
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dataset({})", self.0)
    }
}

/// The identity of an event inside its stream: the Cloudflare id (audit `id`, HTTP `RayID`) or,
/// where a record has none, a content hash (`sha256:<hex>`, see [`EventId::content_hash`]).
///
/// 1 to 512 bytes, no control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(String);

impl EventId {
    /// Validates and wraps an event id.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the id is empty, longer than 512 bytes or holds a control
    /// character.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > 512 {
            return Err(Error::invalid(
                "event id",
                format!("must be 1 to 512 bytes long, got {} bytes", id.len()),
            ));
        }
        if id.chars().any(char::is_control) {
            return Err(Error::invalid("event id", "contains a control character"));
        }
        Ok(Self(id))
    }

    /// The id of a record that has none of its own: `sha256:` and the hex SHA-256 of its bytes.
    /// The same bytes always give the same id, so a re-fetched record deduplicates.
    pub fn content_hash(raw: &[u8]) -> Self {
        Self(format!("sha256:{}", super::Digest::of(raw).to_hex()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<EventId> for String {
    fn from(value: EventId) -> Self {
        value.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

/// Fencing token of the instance that holds a stream's lease. A newer lease has a strictly
/// greater epoch and fences every older one: their compare-and-set writes fail.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch of a checkpoint no instance has leased yet.
    pub const NONE: Epoch = Epoch(0);

    /// The next epoch.
    #[must_use]
    pub fn next(self) -> Self {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_validated() {
        assert!(StreamId::new("audit-v1/account/0123abc").is_ok());
        assert!(StreamId::new("logpush/my.bucket/some_prefix").is_ok());
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "a b",
            "a~b",
            "ä",
            &"x".repeat(201),
        ] {
            assert!(StreamId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn key_segment_is_injective_and_slash_free() {
        let a = StreamId::new("a/b-c").unwrap();
        let b = StreamId::new("a-b/c").unwrap();
        assert_eq!(a.key_segment(), "a~b-c");
        assert_ne!(a.key_segment(), b.key_segment());
        assert!(!a.key_segment().contains('/'));
        assert_eq!(StreamId::from_key_segment(&a.key_segment()).unwrap(), a);
        assert_eq!(StreamId::from_key_segment(&b.key_segment()).unwrap(), b);
    }

    #[test]
    fn datasets_are_validated() {
        assert_eq!(Dataset::audit_logs().as_str(), "audit_logs");
        assert!(Dataset::new("http_requests").is_ok());
        for bad in ["", "Audit", "1abc", "a-b", &"a".repeat(64)] {
            assert!(Dataset::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn event_ids_are_validated_and_content_hashes_are_stable() {
        assert!(EventId::new("").is_err());
        assert!(EventId::new("a\nb").is_err());
        assert!(EventId::new("x".repeat(513)).is_err());
        let a = EventId::content_hash(b"{\"x\":1}");
        assert_eq!(a, EventId::content_hash(b"{\"x\":1}"));
        assert_ne!(a, EventId::content_hash(b"{\"x\":2}"));
        assert!(a.as_str().starts_with("sha256:") && a.as_str().len() == 7 + 64);
    }

    #[test]
    fn serde_rejects_invalid_ids() {
        assert!(serde_json::from_str::<StreamId>("\"a//b\"").is_err());
        let s: StreamId = serde_json::from_str("\"a/b\"").unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"a/b\"");
    }
}
