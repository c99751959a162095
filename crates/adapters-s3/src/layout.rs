//! The archive's key layout. Every key here is relative to the archive prefix (manifests name
//! objects by these relative keys, so an archive copied under another prefix or bucket still
//! verifies).
//!
//! ```text
//! {dataset}/stream={stream}/year=YYYY/month=MM/day=DD/hour=HH/part-{stream}-{seq:020}.parquet   events
//! _quarantine/{stream}/part-{seq:020}.parquet                                    quarantined records
//! _manifests/{stream}/{seq:020}.json                                             manifests
//! _staging/{stream}/{seq:020}-e{epoch:020}/{n:04}.parquet                        staged objects
//! _staging/{stream}/{seq:020}-e{epoch:020}/quarantine.parquet                    staged quarantine
//! ```
//!
//! `{stream}` is [`StreamId::key_segment`] (no `/`). No final key starts with `_staging/`, so
//! a staged key never equals a final key; the epoch in the staging directory keeps two
//! instances apart.
//!
//! Releases before the `stream=` partition wrote events to
//! `{dataset}/year=…/hour=HH/part-{stream}-{seq:020}.parquet`; manifests (immutable, chained)
//! still name those keys. [`relocated`] maps such a key to its place in this layout, where
//! `cflogs migrate` moves the object; readers and `verify` look there when the named key is
//! gone, and the object's SHA-256 in the manifest still proves it.

use cflogs_core::{Dataset, Epoch, StreamId, Timestamp};
use chrono::{Datelike, Timelike};

/// Top folder of staged objects.
pub const STAGING: &str = "_staging";
/// Top folder of manifests.
pub const MANIFESTS: &str = "_manifests";
/// Top folder of quarantined records.
pub const QUARANTINE: &str = "_quarantine";

/// The hive partition folder of a stream's events in the hour `t` falls in:
/// `{dataset}/stream={stream}/year=YYYY/month=MM/day=DD/hour=HH`.
pub fn partition(dataset: &Dataset, stream: &StreamId, t: Timestamp) -> String {
    format!(
        "{dataset}/stream={}/year={:04}/month={:02}/day={:02}/hour={:02}",
        stream.key_segment(),
        t.year(),
        t.month(),
        t.day(),
        t.hour()
    )
}

/// The final key of a stream's batch `seq` in the partition of `t`.
pub fn data_key(dataset: &Dataset, t: Timestamp, stream: &StreamId, seq: u64) -> String {
    format!(
        "{}/{}",
        partition(dataset, stream, t),
        data_file_name(stream, seq)
    )
}

/// Where an earlier release's data key (`{dataset}/year=…/part-{stream}-{seq}.parquet`, no
/// `stream=` partition) lives in this layout; `None` for any other key.
pub fn relocated(key: &str) -> Option<String> {
    let (dataset, rest) = key.split_once('/')?;
    if dataset.starts_with('_') || !rest.starts_with("year=") {
        return None;
    }
    let name = rest.rsplit('/').next()?;
    let (segment, seq) = name
        .strip_prefix("part-")?
        .strip_suffix(".parquet")?
        .rsplit_once('-')?;
    parse_seq(seq)?;
    Some(format!("{dataset}/stream={segment}/{rest}"))
}

/// `part-{stream}-{seq:020}.parquet`.
pub fn data_file_name(stream: &StreamId, seq: u64) -> String {
    format!("part-{}-{seq:020}.parquet", stream.key_segment())
}

/// Whether the file name (last key segment) is a data object of `stream`, and its seq.
/// Exact: `part-a-b-…` of stream `a-b` is not taken for stream `a`.
pub fn parse_data_file_name(name: &str, stream: &StreamId) -> Option<u64> {
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (segment, seq) = rest.rsplit_once('-')?;
    (segment == stream.key_segment()).then_some(())?;
    parse_seq(seq)
}

/// The final key of a stream's quarantined records of batch `seq`.
pub fn quarantine_key(stream: &StreamId, seq: u64) -> String {
    format!("{}/part-{seq:020}.parquet", quarantine_dir(stream))
}

/// `_quarantine/{stream}`.
pub fn quarantine_dir(stream: &StreamId) -> String {
    format!("{QUARANTINE}/{}", stream.key_segment())
}

/// `_manifests/{stream}`.
pub fn manifest_dir(stream: &StreamId) -> String {
    format!("{MANIFESTS}/{}", stream.key_segment())
}

/// The key of the manifest of a stream's batch `seq`.
pub fn manifest_key(stream: &StreamId, seq: u64) -> String {
    format!("{}/{seq:020}.json", manifest_dir(stream))
}

/// The seq of a manifest file name `{seq:020}.json`.
pub fn parse_manifest_file_name(name: &str) -> Option<u64> {
    parse_seq(name.strip_suffix(".json")?)
}

/// `_staging/{stream}`.
pub fn staging_dir(stream: &StreamId) -> String {
    format!("{STAGING}/{}", stream.key_segment())
}

/// The folder of the objects staged for batch `seq` by the holder of `epoch`.
pub fn staging_batch_dir(stream: &StreamId, seq: u64, epoch: Epoch) -> String {
    format!("{}/{seq:020}-e{:020}", staging_dir(stream), epoch.0)
}

/// `(seq, epoch)` of a staged key's batch folder `{seq:020}-e{epoch:020}`, given the key's
/// part after `_staging/{stream}/`.
pub fn parse_staged(rest: &str) -> Option<(u64, Epoch)> {
    let dir = rest.split('/').next()?;
    let (seq, epoch) = dir.split_once("-e")?;
    Some((parse_seq(seq)?, Epoch(parse_seq(epoch)?)))
}

fn parse_seq(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// `prefix/key`, or `key` for an empty prefix.
pub fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}/{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_follow_the_documented_layout() {
        let s = StreamId::new("audit-v1/account/abc").unwrap();
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            data_key(&Dataset::audit_logs(), t, &s, 7),
            "audit_logs/stream=audit-v1~account~abc/year=2026/month=01/day=02/hour=03/part-audit-v1~account~abc-00000000000000000007.parquet"
        );
        let old = "audit_logs/year=2026/month=01/day=02/hour=03/part-audit-v1~account~abc-00000000000000000007.parquet";
        assert_eq!(
            relocated(old).as_deref(),
            Some(data_key(&Dataset::audit_logs(), t, &s, 7).as_str())
        );
        let new = data_key(&Dataset::audit_logs(), t, &s, 7);
        assert_eq!(relocated(&new), None, "a key of this layout stays");
        assert_eq!(relocated(&quarantine_key(&s, 7)), None);
        assert_eq!(relocated("audit_logs/year=2026/notes.txt"), None);
        assert_eq!(
            manifest_key(&s, 7),
            "_manifests/audit-v1~account~abc/00000000000000000007.json"
        );
        assert_eq!(
            staging_batch_dir(&s, 7, Epoch(3)),
            "_staging/audit-v1~account~abc/00000000000000000007-e00000000000000000003"
        );
        assert_eq!(
            quarantine_key(&s, 7),
            "_quarantine/audit-v1~account~abc/part-00000000000000000007.parquet"
        );
        assert_eq!(join("", "k"), "k");
        assert_eq!(join("p/q", "k"), "p/q/k");
    }

    #[test]
    fn names_parse_back_exactly() {
        let a = StreamId::new("a").unwrap();
        let ab = StreamId::new("a-b").unwrap();
        assert_eq!(parse_data_file_name(&data_file_name(&a, 12), &a), Some(12));
        assert_eq!(parse_data_file_name(&data_file_name(&ab, 12), &a), None);
        assert_eq!(
            parse_data_file_name(&data_file_name(&ab, 12), &ab),
            Some(12)
        );
        assert_eq!(parse_data_file_name("part-a-x.parquet", &a), None);
        assert_eq!(
            parse_manifest_file_name("00000000000000000009.json"),
            Some(9)
        );
        assert_eq!(parse_manifest_file_name("9.json.bak"), None);
        assert_eq!(
            parse_staged("00000000000000000002-e00000000000000000005/0000.parquet"),
            Some((2, Epoch(5)))
        );
        assert_eq!(parse_staged("junk/0.parquet"), None);
    }
}
