//! Time: timestamps and half-open windows.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A point in time, UTC, nanosecond precision.
pub type Timestamp = DateTime<Utc>;

/// Serde for timestamps as RFC 3339 with exactly nine fractional digits and `Z`
/// (`2026-11-25T10:00:00.123456789Z`), so a serialized manifest or checkpoint is canonical:
/// the same value always gives the same bytes, and nothing is lost below the microsecond.
pub mod rfc3339_nanos {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    /// Serializes `t` canonically.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    /// Parses any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(D::Error::custom)
    }

    /// The canonical text of `t`.
    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Nanos, true)
    }
}

/// A half-open time range `[from, to)` asked of a source. Never empty.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Window {
    #[serde(with = "rfc3339_nanos")]
    from: Timestamp,
    #[serde(with = "rfc3339_nanos")]
    to: Timestamp,
}

impl Window {
    /// The window `[from, to)`.
    ///
    /// # Errors
    /// [`Error::Invalid`] unless `from < to`.
    pub fn new(from: Timestamp, to: Timestamp) -> Result<Self> {
        if from < to {
            Ok(Self { from, to })
        } else {
            Err(Error::invalid(
                "window",
                format!(
                    "start {} is not before end {}",
                    rfc3339_nanos::format(&from),
                    rfc3339_nanos::format(&to)
                ),
            ))
        }
    }

    /// Inclusive start.
    pub fn from(&self) -> Timestamp {
        self.from
    }

    /// Exclusive end.
    pub fn to(&self) -> Timestamp {
        self.to
    }

    /// Whether `t` lies in `[from, to)`.
    pub fn contains(&self, t: Timestamp) -> bool {
        self.from <= t && t < self.to
    }
}

impl fmt::Debug for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}, {})",
            rfc3339_nanos::format(&self.from),
            rfc3339_nanos::format(&self.to)
        )
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_are_half_open_and_never_empty() {
        let w = Window::new(t("2026-01-01T00:00:00Z"), t("2026-01-01T01:00:00Z")).unwrap();
        assert!(w.contains(t("2026-01-01T00:00:00Z")));
        assert!(!w.contains(t("2026-01-01T01:00:00Z")));
        assert!(Window::new(w.to(), w.to()).is_err());
        assert!(Window::new(w.to(), w.from()).is_err());
    }

    #[test]
    fn timestamps_serialize_canonically_with_nanoseconds() {
        let w = Window::new(
            t("2026-01-01T00:00:00.000000001Z"),
            t("2026-01-01T03:00:00+02:00"),
        )
        .unwrap();
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(
            json,
            r#"{"from":"2026-01-01T00:00:00.000000001Z","to":"2026-01-01T01:00:00.000000000Z"}"#
        );
        let back: Window = serde_json::from_str(&json).unwrap();
        assert_eq!(back, w);
    }
}
