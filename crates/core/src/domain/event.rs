//! Events as received, their mapped columns, and quarantined records.

use bytes::Bytes;

use super::{EventId, Timestamp};

/// One source event.
///
/// `raw` holds the bytes exactly as the source sent them (one JSON object); sinks that store a
/// parsed form must still keep these bytes somewhere (the archive does). `fields` are the
/// columns mapped from it for fast queries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Identity inside the stream.
    pub id: EventId,
    /// When it happened at the source (audit `when`, HTTP `EdgeStartTimestamp`).
    pub occurred_at: Timestamp,
    /// The event exactly as received.
    pub raw: Bytes,
    /// Columns mapped from the event.
    pub fields: Fields,
}

impl Event {
    /// An event with no mapped columns.
    pub fn new(id: EventId, occurred_at: Timestamp, raw: impl Into<Bytes>) -> Self {
        Self {
            id,
            occurred_at,
            raw: raw.into(),
            fields: Fields::None,
        }
    }

    /// The same event with mapped columns.
    #[must_use]
    pub fn with_fields(mut self, fields: Fields) -> Self {
        self.fields = fields;
        self
    }

    /// Size that counts against a batch's byte cap: the raw bytes.
    pub fn size(&self) -> usize {
        self.raw.len()
    }
}

/// Columns mapped from an event, by dataset.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
#[allow(
    clippy::large_enum_variant,
    reason = "nearly every event carries mapped columns; boxing them would cost an allocation each"
)]
pub enum Fields {
    /// Nothing mapped: sinks keep the raw event only.
    #[default]
    None,
    /// The audit log columns of the seed schema.
    Audit(AuditFields),
}

/// The audit log columns (seed 001): every one optional, because Cloudflare omits fields and
/// adds new values freely.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AuditFields {
    /// The account the event belongs to (from the request path).
    pub account_id: Option<String>,
    /// `actor.email`.
    pub actor_email: Option<String>,
    /// `actor.type`: `user`, `admin`, `Cloudflare`, or any value Cloudflare adds later.
    pub actor_type: Option<String>,
    /// `action.type`.
    pub action_type: Option<String>,
    /// `action.result`, as text (`true`/`false` in v1, `success`/`failure` in v2).
    pub action_result: Option<String>,
    /// `resource.type`.
    pub resource_type: Option<String>,
    /// `resource.id`.
    pub resource_id: Option<String>,
    /// `actor.ip` (v1) or `actor.ip_address` (v2), as sent: it may not be a valid address.
    pub ip_address: Option<String>,
    /// `metadata`, as JSON text.
    pub metadata: Option<String>,
}

impl AuditFields {
    /// `ip_address` when it is an IP address (surrounding blanks ignored), else `None`: what
    /// the sinks can store as an address (the raw event keeps the text either way).
    pub fn parsed_ip(&self) -> Option<std::net::IpAddr> {
        self.ip_address.as_deref()?.trim().parse().ok()
    }
}

/// A record the source could not turn into an [`Event`] (no id, no time, unparsable time, not
/// JSON…). It is kept with its exact bytes and the reason, written to the sinks with the batch,
/// and never blocks the stream.
///
/// Its id is the content hash of its bytes, so a record seen again in an overlapping window is
/// recognised and stored once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quarantined {
    /// `sha256:<hex>` of `raw`.
    pub id: EventId,
    /// The record exactly as received.
    pub raw: Bytes,
    /// Why it was quarantined, e.g. `"missing field 'id'"`.
    pub reason: String,
    /// Its time, when that much could be read.
    pub occurred_at: Option<Timestamp>,
}

impl Quarantined {
    /// Quarantines `raw` for `reason`.
    pub fn new(raw: impl Into<Bytes>, reason: impl Into<String>) -> Self {
        let raw = raw.into();
        Self {
            id: EventId::content_hash(&raw),
            raw,
            reason: reason.into(),
            occurred_at: None,
        }
    }

    /// The same record with the time that could be read from it.
    #[must_use]
    pub fn with_time(mut self, occurred_at: Timestamp) -> Self {
        self.occurred_at = Some(occurred_at);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::AuditFields;

    #[test]
    fn an_ip_address_is_parsed_or_none() {
        let ip = |text: &str| {
            AuditFields {
                ip_address: Some(text.to_owned()),
                ..AuditFields::default()
            }
            .parsed_ip()
            .map(|a| a.to_string())
        };
        assert_eq!(ip(" 2001:DB8::1 ").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("198.51.100.7").as_deref(), Some("198.51.100.7"));
        for bad in ["not-an-ip", "10.1", "fe80::1%eth0", ""] {
            assert_eq!(ip(bad), None, "{bad}");
        }
        assert_eq!(AuditFields::default().parsed_ip(), None);
    }
}
