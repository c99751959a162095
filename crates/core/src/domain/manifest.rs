//! Manifests and the SHA-256 hash chain that makes the archive tamper-evident.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{Dataset, Epoch, Position, StreamId, Timestamp, Window, window::rfc3339_nanos};
use crate::error::{Error, Result};

/// A SHA-256 value: of an object's bytes, or of a manifest (a link of the chain).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The chain's genesis: 32 zero bytes, the `prev` of a stream's first manifest.
    pub const GENESIS: Digest = Digest([0; 32]);

    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest's bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    ///
    /// # Errors
    /// [`Error::Invalid`] for anything else.
    pub fn from_hex(text: &str) -> Result<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out)
            .map_err(|e| Error::invalid("sha-256 digest", format!("{text:?}: {e}")))?;
        Ok(Self(out))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Digest::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// One archive object named by a manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestObject {
    /// Where publishing puts it.
    pub final_key: String,
    /// Where staging wrote it; the key includes the epoch, so two instances never share one.
    pub staged_key: String,
    /// SHA-256 of its bytes.
    pub sha256: Digest,
    /// Records it holds.
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
}

/// The record of one committed batch: which objects it published, and the hash of the manifest
/// before it. Manifests form a hash chain per stream; the chain head is also kept in the
/// checkpoint, so a truncated tail is detectable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version of this serialization (1).
    pub version: u32,
    /// The stream.
    pub stream: StreamId,
    /// The dataset of its events.
    pub dataset: Dataset,
    /// The batch's sequence number: 1 for a stream's first batch.
    pub seq: u64,
    /// The epoch of the instance that staged it.
    pub epoch: Epoch,
    /// The window the batch covers completely.
    pub window: Window,
    /// Events in the batch.
    pub events: u64,
    /// Quarantined records in the batch.
    pub quarantined: u64,
    /// The objects, in a stable order.
    pub objects: Vec<ManifestObject>,
    /// Hash of the previous manifest of the stream ([`Digest::GENESIS`] for the first).
    pub prev: Digest,
    /// When it was staged.
    #[serde(with = "rfc3339_nanos")]
    pub created_at: Timestamp,
    /// Where the stream's source stands once this batch is committed: the checkpoint's
    /// watermark and cursor of the same commit, so that a checkpoint store that lost its state
    /// can be restored from the archive alone. Set by the pipeline before the commit; absent
    /// in manifests written before it was recorded (their canonical bytes are unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<Position>,
}

impl Manifest {
    /// The current serialization version.
    pub const VERSION: u32 = 1;

    /// The canonical serialization: compact JSON with fields in declaration order and
    /// timestamps with nine fractional digits. The manifest object in the archive holds exactly
    /// these bytes, and [`Manifest::hash`] is their SHA-256.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|e| unreachable!("manifest serialization: {e}"))
    }

    /// SHA-256 of the canonical serialization: this manifest's link in the chain.
    pub fn hash(&self) -> Digest {
        Digest::of(&self.canonical_bytes())
    }

    /// Parses a manifest object.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the bytes are not a manifest of a known version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::invalid("manifest", e.to_string()))?;
        if manifest.version != Self::VERSION {
            return Err(Error::invalid(
                "manifest",
                format!("unknown version {}", manifest.version),
            ));
        }
        Ok(manifest)
    }

    /// Total records over all objects.
    pub fn rows(&self) -> u64 {
        self.objects.iter().map(|o| o.rows).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn manifest() -> Manifest {
        let t = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        Manifest {
            version: 1,
            stream: StreamId::new("audit-v1/account/a").unwrap(),
            dataset: Dataset::audit_logs(),
            seq: 3,
            epoch: Epoch(2),
            window: Window::new(t, t + chrono::Duration::minutes(5)).unwrap(),
            events: 2,
            quarantined: 0,
            objects: vec![ManifestObject {
                final_key: "f".into(),
                staged_key: "s".into(),
                sha256: Digest::of(b"x"),
                rows: 2,
                bytes: 1,
            }],
            prev: Digest::GENESIS,
            created_at: t,
            resume: None,
        }
    }

    #[test]
    fn hash_is_stable_across_a_round_trip() {
        let m = manifest();
        let back = Manifest::from_bytes(&m.canonical_bytes()).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.hash(), m.hash());
        // a value serialized through a JSON document that reorders keys hashes the same once parsed
        let value: serde_json::Value = serde_json::from_slice(&m.canonical_bytes()).unwrap();
        let reparsed: Manifest = serde_json::from_value(value).unwrap();
        assert_eq!(reparsed.hash(), m.hash());
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let m = manifest();
        let mut other = m.clone();
        other.objects[0].rows = 3;
        assert_ne!(other.hash(), m.hash());
        let mut other = m.clone();
        other.prev = Digest::of(b"y");
        assert_ne!(other.hash(), m.hash());
    }

    #[test]
    fn digests_round_trip_as_hex() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        assert!(Digest::from_hex("zz").is_err());
        assert!(Manifest::from_bytes(b"{}").is_err());
    }
}
