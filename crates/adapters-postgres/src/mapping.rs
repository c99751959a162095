//! From events to `COPY` rows: what PostgreSQL can hold of each value.
//!
//! PostgreSQL refuses a few things an event may carry, and none of them may lose the event or
//! fail its batch (the archive keeps the exact bytes either way):
//! - `jsonb` rejects the escape `\u0000` and unpaired UTF-16 surrogate escapes: they are
//!   replaced by `\ufffd` (the replacement character);
//! - a document that is not JSON (or not UTF-8) is stored as one JSON string holding its text
//!   (UTF-8 is checked here; JSON syntax by the server, see [`json_for_jsonb`]);
//! - `text` cannot hold the NUL character: it becomes U+FFFD;
//! - an address column holds parsed addresses only (the schema's mapping made NULL of the rest).
//!
//! Rows are encoded in `COPY … FROM STDIN (FORMAT binary)`: each field is its length and its
//! bytes, so nothing needs escaping and the server does not scan for delimiters.

use std::borrow::Cow;

use cflogs_core::schema::{ColumnType, DatasetSchema, Value};
use cflogs_core::{Event, Timestamp};

/// What a JSON document becomes for `jsonb`: bytes that are not UTF-8 become one JSON string
/// of their text (with U+FFFD for the invalid bytes), and the `\u` escapes `jsonb` refuses are
/// replaced. Whether the text is JSON at all is left to the server: a document it refuses sends
/// the slice down the per-row fallback path, which keeps it as a JSON string (the events of a
/// mapped source were parsed as JSON already, so validating each here would cost every batch
/// for a case that does not happen).
pub(crate) fn json_for_jsonb(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(text) => fix_escapes(text),
        Err(_) => Cow::Owned(json_string(&String::from_utf8_lossy(raw))),
    }
}

/// `text` as one JSON string that `jsonb` accepts.
fn json_string(text: &str) -> String {
    let text: Cow<'_, str> = if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    };
    serde_json::to_string(&text).unwrap_or_else(|e| unreachable!("serializing a string: {e}"))
}

fn hex4(bytes: &[u8]) -> Option<u32> {
    let digits = std::str::from_utf8(bytes.get(..4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

/// Replaces the `\u` escapes `jsonb` rejects (NUL, unpaired surrogates) in valid JSON text by
/// `\ufffd`. Borrows when there is none, which is nearly always.
pub(crate) fn fix_escapes(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let Some(offset) = bytes[i..].iter().position(|&b| b == b'\\') else {
            break;
        };
        let at = i + offset;
        if bytes.get(at + 1) != Some(&b'u') {
            // `\\`, `\"`, `\n`…: skip the escaped character too.
            i = at + 2;
            continue;
        }
        let code = hex4(&bytes[(at + 2).min(bytes.len())..]);
        let (bad, len) = match code {
            Some(0) => (true, 6),
            Some(0xD800..=0xDBFF) => {
                let next = &bytes[(at + 6).min(bytes.len())..];
                let low = next
                    .strip_prefix(b"\\u")
                    .and_then(hex4)
                    .is_some_and(|c| (0xDC00..=0xDFFF).contains(&c));
                if low { (false, 12) } else { (true, 6) }
            }
            Some(0xDC00..=0xDFFF) => (true, 6),
            _ => (false, 6),
        };
        if bad {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len()));
            out.push_str(&text[copied..at]);
            out.push_str("\\ufffd");
            copied = at + 6;
        }
        i = at + len;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
    }
}

/// The header of a binary `COPY` stream: signature, flags, header extension length.
pub(crate) fn push_header(out: &mut Vec<u8>) {
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes());
    out.extend_from_slice(&0i32.to_be_bytes());
}

/// The trailer of a binary `COPY` stream.
pub(crate) fn push_trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i16).to_be_bytes());
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    // Values come from events capped far below 1 GiB; PostgreSQL refuses larger ones anyway.
    let len = i32::try_from(len).unwrap_or(i32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
}

/// Appends `value` as a binary `text` field; NUL, which `text` cannot hold, becomes U+FFFD.
pub(crate) fn push_text(out: &mut Vec<u8>, value: &str) {
    if value.as_bytes().contains(&0) {
        let value = value.replace('\0', "\u{fffd}");
        push_len(out, value.len());
        out.extend_from_slice(value.as_bytes());
    } else {
        push_len(out, value.len());
        out.extend_from_slice(value.as_bytes());
    }
}

fn push_null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Appends a binary `timestamptz`: microseconds since 2000-01-01 UTC (the nanoseconds below
/// are truncated; the archive keeps them).
pub(crate) fn push_timestamp(out: &mut Vec<u8>, t: &Timestamp) {
    push_len(out, 8);
    out.extend_from_slice(&(t.timestamp_micros() - PG_EPOCH_MICROS).to_be_bytes());
}

/// Appends `value` as the binary staging field of a column of type `ty` (see
/// `tables::stage_type`): NULL when absent, or when a source put a value of another type there.
fn push_value(out: &mut Vec<u8>, ty: ColumnType, value: Option<&Value>) {
    match (ty, value) {
        (ColumnType::Text, Some(Value::Text(v))) => push_text(out, v),
        (ColumnType::Integer, Some(Value::Integer(v))) => {
            push_len(out, 8);
            out.extend_from_slice(&v.to_be_bytes());
        }
        (ColumnType::Float, Some(Value::Float(v))) => {
            push_len(out, 8);
            out.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        (ColumnType::Boolean, Some(Value::Boolean(v))) => {
            push_len(out, 1);
            out.push(u8::from(*v));
        }
        (ColumnType::Timestamp(_), Some(Value::Timestamp(t))) => push_timestamp(out, t),
        (ColumnType::Ip, Some(Value::Ip(ip))) => push_text(out, &ip.to_string()),
        (ColumnType::Json, Some(Value::Json(doc))) => {
            push_text(out, &json_for_jsonb(doc.as_bytes()))
        }
        _ => push_null(out),
    }
}

/// Appends one event of `schema` as a binary staging row: id, time, the schema's columns, the
/// raw event.
pub(crate) fn push_event(out: &mut Vec<u8>, schema: &DatasetSchema, event: &Event) {
    let columns = schema.columns();
    // Columns are few (the core caps nothing, but a table holds at most 1,600).
    let fields = i16::try_from(columns.len() + 3).unwrap_or(i16::MAX);
    out.extend_from_slice(&fields.to_be_bytes());
    push_text(out, event.id.as_str());
    push_timestamp(out, &event.occurred_at);
    for (i, column) in columns.iter().enumerate() {
        push_value(out, column.ty(), event.value(i));
    }
    push_text(out, &json_for_jsonb(&event.raw));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_and_lone_surrogates_are_replaced() {
        assert!(matches!(fix_escapes(r#"{"a":"b"}"#), Cow::Borrowed(_)));
        assert_eq!(fix_escapes(r#"{"a":"x\u0000y"}"#), r#"{"a":"x\ufffdy"}"#);
        // An escaped backslash followed by u0000 is text, not an escape.
        assert_eq!(fix_escapes(r#"{"a":"\\u0000"}"#), r#"{"a":"\\u0000"}"#);
        assert_eq!(fix_escapes(r#"{"a":"\\\u0000"}"#), r#"{"a":"\\\ufffd"}"#);
        // A valid pair stays, halves alone go.
        assert_eq!(fix_escapes(r#"["\ud83d\ude00"]"#), r#"["\ud83d\ude00"]"#);
        assert_eq!(fix_escapes(r#"["\ud83dx"]"#), r#"["\ufffdx"]"#);
        assert_eq!(fix_escapes(r#"["\ude00"]"#), r#"["\ufffd"]"#);
        assert_eq!(fix_escapes(r#"["\ud83d\u0041"]"#), r#"["\ufffd\u0041"]"#);
        assert_eq!(fix_escapes(r#"["\U0000"]"#), r#"["\U0000"]"#);
    }

    #[test]
    fn documents_that_are_not_utf8_become_json_strings() {
        assert_eq!(json_for_jsonb(b"\xff\xfe"), "\"\u{fffd}\u{fffd}\"");
        assert_eq!(json_for_jsonb(b"a\0b\xff"), "\"a\u{fffd}b\u{fffd}\"");
        assert_eq!(
            json_for_jsonb(b"{\"a\":\"\\u0000\"}"),
            "{\"a\":\"\\ufffd\"}"
        );
        // Text that is not JSON passes unchanged: the server refuses it and the sink's per-row
        // fallback keeps it as a JSON string (tests/postgres/sink.rs checks the result).
        assert!(matches!(json_for_jsonb(b"not json"), Cow::Borrowed(_)));
        assert!(matches!(
            json_for_jsonb(br#"{"n":1e-20000}"#),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn text_fields_are_length_prefixed_and_nul_free() {
        let mut out = Vec::new();
        push_text(&mut out, "a\tb\0c");
        assert_eq!(&out[..4], &7i32.to_be_bytes());
        assert_eq!(&out[4..], "a\tb\u{fffd}c".as_bytes());
    }

    #[test]
    fn values_are_encoded_by_column_type_and_mismatches_are_null() {
        let mut out = Vec::new();
        push_value(&mut out, ColumnType::Integer, Some(&Value::Integer(-2)));
        assert_eq!(
            out,
            [&8i32.to_be_bytes()[..], &(-2i64).to_be_bytes()].concat()
        );
        out.clear();
        push_value(&mut out, ColumnType::Float, Some(&Value::Float(0.5)));
        assert_eq!(
            out,
            [&8i32.to_be_bytes()[..], &0.5f64.to_bits().to_be_bytes()].concat()
        );
        out.clear();
        push_value(&mut out, ColumnType::Boolean, Some(&Value::Boolean(true)));
        assert_eq!(out, [&1i32.to_be_bytes()[..], &[1]].concat());
        out.clear();
        let ip: std::net::IpAddr = "2001:DB8::1".parse().unwrap();
        push_value(&mut out, ColumnType::Ip, Some(&Value::Ip(ip)));
        assert_eq!(&out[4..], b"2001:db8::1");
        out.clear();
        push_value(
            &mut out,
            ColumnType::Integer,
            Some(&Value::Text("7".into())),
        );
        push_value(&mut out, ColumnType::Text, None);
        assert_eq!(out, [(-1i32).to_be_bytes(), (-1i32).to_be_bytes()].concat());
    }

    #[test]
    fn timestamps_are_microseconds_since_2000() {
        let t = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:01.000002999Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let mut out = Vec::new();
        push_timestamp(&mut out, &t);
        assert_eq!(&out[..4], &8i32.to_be_bytes());
        assert_eq!(&out[4..], &1_000_002i64.to_be_bytes());
    }
}
