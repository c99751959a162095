//! A minimal JSON object writer: events are serialized once, straight into a `String`,
//! without building intermediate `serde_json::Value` trees (much faster, also in debug
//! builds, where tests generate large event sets).

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal (quotes included). Non-ASCII text is kept as UTF-8,
/// as `serde_json` does.
pub(crate) fn push_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escaped = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        // Every byte matched above is ASCII, so `i` is a char boundary.
        out.push_str(&s[start..i]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(escaped);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Writes one JSON object; keys are written in call order.
pub(crate) struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    /// Opens an object at the end of `out`.
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        push_str(self.out, k);
        self.out.push(':');
    }

    /// A string member.
    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        push_str(self.out, v);
        self
    }

    /// A string member, omitted when `None`.
    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        if let Some(v) = v {
            self.str(k, v);
        }
        self
    }

    /// A string member, `null` when `None`.
    pub fn str_or_null(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => {
                self.key(k);
                self.out.push_str("null");
                self
            }
        }
    }

    /// A boolean member.
    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// An integer member.
    pub fn num(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    /// A nested object member, written by `f`.
    pub fn obj(&mut self, k: &str, f: impl FnOnce(&mut Obj<'_>)) -> &mut Self {
        self.key(k);
        let mut inner = Obj::new(self.out);
        f(&mut inner);
        inner.end();
        self
    }

    /// Closes the object.
    pub fn end(self) {
        self.out.push('}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_escaped_json() {
        let mut s = String::new();
        let mut o = Obj::new(&mut s);
        // Keys in sorted order, so the output must equal serde_json's.
        o.str("a", "q\"b\\s\n\t\u{1}é✓")
            .bool("b", true)
            .obj("e", |_| {})
            .num("n", 42)
            .obj("o", |o| {
                o.str("k", "v");
            })
            .opt_str("skip", None)
            .str_or_null("z", None);
        o.end();
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["a"], "q\"b\\s\n\t\u{1}é✓");
        assert_eq!(v["b"], true);
        assert_eq!(v["n"], 42);
        assert!(v.get("skip").is_none());
        assert!(v["z"].is_null());
        assert_eq!(v["o"]["k"], "v");
        assert_eq!(v["e"], serde_json::json!({}));
        assert_eq!(s, serde_json::to_string(&v).unwrap());
    }
}
