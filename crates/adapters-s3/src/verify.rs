//! Verification of a stream's archive (`cflogs verify`): walk the manifest chain, recompute
//! every object's SHA-256, and report what does not match.
//!
//! What is checked, and the finding each failure gives:
//!
//! | check | finding |
//! |---|---|
//! | every manifest object parses, is of this stream and sits at its own seq's key | [`Finding::UnreadableManifest`] |
//! | seqs run from 1 to the last without a gap | [`Finding::MissingManifest`] |
//! | manifest `n`'s `prev` is the SHA-256 of manifest `n-1`'s bytes (genesis for 1) | [`Finding::BrokenLink`] |
//! | the last manifest's hash is the checkpoint's `chain_head` (when given) | [`Finding::HeadMismatch`] |
//! | each object a manifest names exists… | [`Finding::MissingObject`] |
//! | …with the SHA-256 and size the manifest records | [`Finding::ModifiedObject`] |
//! | every data, quarantine or manifest object of the stream is named by a manifest | [`Finding::UnlistedObject`] |
//!
//! Editing a manifest changes its hash, which breaks the next link, or, for the last manifest,
//! disagrees with the checkpoint's chain head: pass `expected_head` to catch an edit of the
//! last manifest or a truncated chain.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use cflogs_core::{Digest, Error, Manifest, Result, StreamId};
use futures_util::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::ArchiveError;
use crate::layout;
use crate::sink::{digest_of, object_path};

/// One problem found by [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// An object exists but its bytes are not those the manifest recorded.
    ModifiedObject {
        /// The manifest that names it.
        seq: u64,
        /// Its key (relative to the archive prefix).
        key: String,
        /// SHA-256 in the manifest.
        expected: Digest,
        /// SHA-256 of the stored bytes.
        found: Digest,
    },
    /// A manifest names an object that does not exist.
    MissingObject {
        /// The manifest that names it.
        seq: u64,
        /// Its key.
        key: String,
    },
    /// An object of the stream (data, quarantine or manifest folder) that no manifest names:
    /// added by hand, or left by a publish whose manifest is gone.
    UnlistedObject {
        /// Its key.
        key: String,
    },
    /// A manifest's `prev` is not the hash of the manifest before it: that one was edited or
    /// replaced.
    BrokenLink {
        /// The manifest whose `prev` does not match.
        seq: u64,
        /// Its `prev`.
        expected: Digest,
        /// The hash of the stored manifest `seq - 1` (genesis for seq 1).
        found: Digest,
    },
    /// No manifest for this seq, while later ones exist: a gap in the chain.
    MissingManifest {
        /// The missing seq.
        seq: u64,
    },
    /// The last manifest is not the one the checkpoint committed last (edited, removed,
    /// or manifests appended).
    HeadMismatch {
        /// The checkpoint's chain head.
        expected: Digest,
        /// The hash of the last stored manifest, `None` when there is none.
        found: Option<Digest>,
        /// The seq of the last stored manifest.
        last_seq: Option<u64>,
    },
    /// A manifest object that cannot be read as this stream's manifest for its seq.
    UnreadableManifest {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ModifiedObject {
                seq,
                key,
                expected,
                found,
            } => write!(
                f,
                "modified object {key} (manifest {seq}): sha256 {found}, manifest records {expected}"
            ),
            Self::MissingObject { seq, key } => {
                write!(f, "missing object {key} (named by manifest {seq})")
            }
            Self::UnlistedObject { key } => {
                write!(f, "unlisted object {key}: no manifest names it")
            }
            Self::BrokenLink {
                seq,
                expected,
                found,
            } => write!(
                f,
                "broken link at manifest {seq}: prev is {expected}, manifest {} hashes to {found}",
                seq.saturating_sub(1)
            ),
            Self::MissingManifest { seq } => write!(f, "missing manifest {seq}: gap in the chain"),
            Self::HeadMismatch {
                expected,
                found,
                last_seq,
            } => match (found, last_seq) {
                (Some(found), Some(seq)) => write!(
                    f,
                    "chain head mismatch: checkpoint says {expected}, last manifest ({seq}) hashes to {found}"
                ),
                _ => write!(
                    f,
                    "chain head mismatch: checkpoint says {expected}, no manifest found"
                ),
            },
            Self::UnreadableManifest { key, reason } => {
                write!(f, "unreadable manifest {key}: {reason}")
            }
        }
    }
}

/// What [`verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Manifests read.
    pub manifests_checked: u64,
    /// Objects whose bytes were hashed.
    pub objects_checked: u64,
    /// Problems, in the order found.
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// No finding.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The process exit code for `cflogs verify`: 0 when clean, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(!self.is_clean())
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} manifests, {} objects checked, {} findings",
            self.manifests_checked,
            self.objects_checked,
            self.findings.len()
        )?;
        for finding in &self.findings {
            writeln!(f, "  {finding}")?;
        }
        Ok(())
    }
}

fn store_error(op: &'static str, key: &str, e: object_store::Error) -> Error {
    ArchiveError::store(op, key, e).into_core("archive verify")
}

/// Verifies the archive of `stream` in `store` under `prefix`: walks its manifest chain,
/// recomputes each object's SHA-256, and reports modified, missing and unlisted objects, broken
/// links, gaps, and a chain head that differs from `expected_head` (the checkpoint's
/// `chain_head`; `None` skips that check). Objects are streamed, not held in memory.
///
/// # Errors
/// Only for failures to read the store ([`Error::Transient`] or [`Error::Fatal`]); problems of
/// the archive are findings.
pub async fn verify(
    store: &dyn ObjectStore,
    prefix: &str,
    stream: &StreamId,
    expected_head: Option<Digest>,
) -> Result<VerifyReport> {
    let listing = list_archive(store, prefix).await?;
    verify_listed(store, prefix, &listing, stream, expected_head).await
}

/// [`verify`] for several streams (each with its expected head), listing the archive once
/// instead of once per stream. Reports come in the order of `streams`.
///
/// # Errors
/// As [`verify`].
pub async fn verify_streams(
    store: &dyn ObjectStore,
    prefix: &str,
    streams: &[(StreamId, Option<Digest>)],
) -> Result<Vec<VerifyReport>> {
    let listing = list_archive(store, prefix).await?;
    let mut reports = Vec::with_capacity(streams.len());
    for (stream, head) in streams {
        reports.push(verify_listed(store, prefix, &listing, stream, *head).await?);
    }
    Ok(reports)
}

/// Every key under the prefix, relative to it: a full listing also finds objects added under
/// an unexpected dataset folder.
async fn list_archive(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>> {
    let root = object_path(prefix, "")?;
    let root_text = root.as_ref().to_owned();
    let listing: Vec<object_store::ObjectMeta> = store
        .list(if root_text.is_empty() {
            None
        } else {
            Some(&root)
        })
        .try_collect()
        .await
        .map_err(|e| store_error("list", prefix, e))?;
    Ok(listing
        .iter()
        .map(|meta| {
            let key = meta.location.as_ref();
            if root_text.is_empty() {
                key.to_owned()
            } else {
                key.strip_prefix(&root_text)
                    .map(|k| k.trim_start_matches('/').to_owned())
                    .unwrap_or_else(|| key.to_owned())
            }
        })
        .collect())
}

/// [`verify`] on a listing made by [`list_archive`].
async fn verify_listed(
    store: &dyn ObjectStore,
    prefix: &str,
    listing: &[String],
    stream: &StreamId,
    expected_head: Option<Digest>,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let manifest_dir = format!("{}/", layout::manifest_dir(stream));
    let quarantine_dir = format!("{}/", layout::quarantine_dir(stream));
    let mut manifest_keys: BTreeMap<u64, String> = BTreeMap::new();
    let mut stream_objects: BTreeSet<String> = BTreeSet::new();
    for key in listing {
        let key = key.clone();
        if key.starts_with(&format!("{}/", layout::STAGING)) {
            continue;
        }
        if let Some(name) = key.strip_prefix(&manifest_dir) {
            match layout::parse_manifest_file_name(name) {
                Some(seq) if !name.contains('/') => {
                    manifest_keys.insert(seq, key);
                }
                _ => {
                    report.findings.push(Finding::UnlistedObject { key });
                }
            }
            continue;
        }
        let name = key.rsplit('/').next().unwrap_or_default();
        let is_data = !key.starts_with('_') && layout::parse_data_file_name(name, stream).is_some();
        if is_data || key.starts_with(&quarantine_dir) {
            stream_objects.insert(key);
        }
    }

    // Read the chain.
    let mut manifests: BTreeMap<u64, Manifest> = BTreeMap::new();
    let mut digests: BTreeMap<u64, Digest> = BTreeMap::new();
    for (seq, key) in &manifest_keys {
        let path = object_path(prefix, key)?;
        let bytes = match store.get(&path).await {
            Ok(r) => r.bytes().await.map_err(|e| store_error("read", key, e))?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(store_error("get", key, e)),
        };
        report.manifests_checked += 1;
        let digest = Digest::of(&bytes);
        digests.insert(*seq, digest);
        match Manifest::from_bytes(&bytes) {
            Ok(m) if m.stream != *stream => report.findings.push(Finding::UnreadableManifest {
                key: key.clone(),
                reason: format!("it is a manifest of stream {}", m.stream),
            }),
            Ok(m) if m.seq != *seq => report.findings.push(Finding::UnreadableManifest {
                key: key.clone(),
                reason: format!("it says seq {}", m.seq),
            }),
            Ok(m) => {
                manifests.insert(*seq, m);
            }
            Err(e) => report.findings.push(Finding::UnreadableManifest {
                key: key.clone(),
                reason: e.to_string(),
            }),
        }
    }

    // Gaps and links.
    let last_seq = manifest_keys.keys().next_back().copied();
    if let Some(last) = last_seq {
        for seq in 1..last {
            if !manifest_keys.contains_key(&seq) {
                report.findings.push(Finding::MissingManifest { seq });
            }
        }
    }
    for (seq, manifest) in &manifests {
        // The stored bytes of the previous manifest hash the same whether they parse or not;
        // a missing one is reported as a gap.
        let before = if *seq == 1 {
            Some(Digest::GENESIS)
        } else {
            digests.get(&(seq - 1)).copied()
        };
        if let Some(found) = before
            && manifest.prev != found
        {
            report.findings.push(Finding::BrokenLink {
                seq: *seq,
                expected: manifest.prev,
                found,
            });
        }
    }

    // The head.
    if let Some(expected) = expected_head {
        let found = last_seq.and_then(|seq| digests.get(&seq).copied());
        let ok = match found {
            Some(found) => found == expected,
            None => expected == Digest::GENESIS && last_seq.is_none(),
        };
        if !ok {
            report.findings.push(Finding::HeadMismatch {
                expected,
                found,
                last_seq,
            });
        }
    }

    // Objects.
    let mut listed: BTreeSet<String> = BTreeSet::new();
    for (seq, manifest) in &manifests {
        for o in &manifest.objects {
            // The key the manifest names, and where `cflogs migrate` moves an earlier
            // release's key: every copy present must match, and one must be.
            let keys: Vec<String> = std::iter::once(o.final_key.clone())
                .chain(layout::relocated(&o.final_key))
                .collect();
            let mut present = 0;
            for key in keys {
                listed.insert(key.clone());
                let path = object_path(prefix, &key)?;
                let Some((found, size)) = digest_of(store, &path)
                    .await
                    .map_err(|e| e.into_core("archive verify"))?
                else {
                    continue;
                };
                present += 1;
                report.objects_checked += 1;
                if found != o.sha256 || size != o.bytes {
                    report.findings.push(Finding::ModifiedObject {
                        seq: *seq,
                        key,
                        expected: o.sha256,
                        found,
                    });
                }
            }
            if present == 0 {
                report.findings.push(Finding::MissingObject {
                    seq: *seq,
                    key: o.final_key.clone(),
                });
            }
        }
    }
    // Objects named only by an unreadable manifest cannot be attributed: they are reported as
    // unlisted too, next to the unreadable manifest that explains them.
    for key in stream_objects.difference(&listed) {
        report
            .findings
            .push(Finding::UnlistedObject { key: key.clone() });
    }
    Ok(report)
}
