//! Where the archive lives and how to reach it: [`ArchiveConfig`], from a URL and settings or
//! from the `S3_*` environment variables.
//!
//! Secrets are held in [`Secret`], whose `Debug` and `Display` print `Secret(***)` and `***`: they never
//! reach a log line, an error message or a panic.

use std::path::PathBuf;
use std::time::Duration;

use cflogs_core::{Error, Result};

pub use cflogs_core::Secret;

/// The kind of store and its root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An S3-compatible bucket (AWS S3, MinIO, Garage, Cloudflare R2, …).
    S3 {
        /// The bucket name.
        bucket: String,
    },
    /// A directory of the local filesystem (created if missing).
    File {
        /// The directory; keys are paths below it.
        dir: PathBuf,
    },
    /// An in-memory store, for tests and trials: lost when the process ends.
    Memory,
}

/// How bucket and key are put into request URLs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Addressing {
    /// `https://endpoint/bucket/key`: MinIO, Garage, most self-hosted stores, R2 (what
    /// [`ArchiveConfig::with_endpoint`] switches to).
    Path,
    /// `https://bucket.endpoint/key`: AWS S3's default, and this one's (no endpoint set).
    #[default]
    VirtualHosted,
}

/// S3 Object Lock retention mode (see the bucket's Object Lock documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Users with `s3:BypassGovernanceRetention` may still delete or shorten the retention.
    Governance,
    /// Nobody, not even the root account, can delete the object before the date.
    Compliance,
}

impl LockMode {
    /// The header value: `GOVERNANCE` or `COMPLIANCE`.
    pub fn as_header(&self) -> &'static str {
        match self {
            Self::Governance => "GOVERNANCE",
            Self::Compliance => "COMPLIANCE",
        }
    }
}

/// Object Lock retention set on every published object and manifest (not on staged objects,
/// which are deleted right after publishing). The bucket must have Object Lock enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectLock {
    /// The retention mode.
    pub mode: LockMode,
    /// How long from publishing each object stays locked.
    pub retain_for: Duration,
}

/// Connection settings of an S3-compatible store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// `http(s)://host:port` of a non-AWS store (MinIO, Garage, R2); `None` for AWS S3.
    pub endpoint: Option<String>,
    /// The region; Garage uses its `s3_region` (`garage` by default), MinIO `us-east-1`, R2
    /// `auto`. Defaults to `us-east-1`.
    pub region: Option<String>,
    /// The access key id; with neither key set, the AWS default chain is used (`AWS_*`
    /// variables, web identity, container and instance credentials).
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<Secret>,
    /// A session token for temporary credentials.
    pub session_token: Option<Secret>,
    /// Path-style or virtual-hosted-style requests.
    pub addressing: Addressing,
}

/// How objects are uploaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UploadSettings {
    /// Objects up to this size go up in one PUT; larger ones by multipart upload.
    pub multipart_threshold: usize,
    /// Size of each multipart part (S3 needs at least 5 MiB, except for the last part).
    pub part_size: usize,
    /// Parts in flight at once per object.
    pub max_concurrency: usize,
}

impl Default for UploadSettings {
    /// Multipart above 16 MiB, 8 MiB parts, 4 in flight.
    fn default() -> Self {
        Self {
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            max_concurrency: 4,
        }
    }
}

/// How Parquet files are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParquetSettings {
    /// zstd level (1 fastest … 22 smallest).
    pub zstd_level: i32,
    /// Most rows per row group.
    pub row_group_rows: usize,
    /// Rows converted to Arrow at once while encoding (bounds the encoder's working memory).
    pub chunk_rows: usize,
}

impl Default for ParquetSettings {
    /// zstd level 1, row groups of up to 65,536 rows, chunks of 8,192 rows. (On audit events
    /// level 1 is both faster and smaller than level 3; see `docs/sinks/archive.md`.)
    fn default() -> Self {
        Self {
            zstd_level: 1,
            row_group_rows: 64 * 1024,
            chunk_rows: 8 * 1024,
        }
    }
}

/// Everything needed to open the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// The store.
    pub location: Location,
    /// Key prefix of everything the archive writes, without leading or trailing `/` (may be
    /// empty).
    pub prefix: String,
    /// S3 connection settings (ignored by the other locations).
    pub s3: S3Settings,
    /// Object Lock retention of published objects, if wanted.
    pub object_lock: Option<ObjectLock>,
    /// Upload behaviour.
    pub upload: UploadSettings,
    /// Parquet behaviour.
    pub parquet: ParquetSettings,
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::invalid("archive config", reason)
}

/// Checks a key prefix and returns it without leading and trailing `/`.
fn normalize_prefix(prefix: &str) -> Result<String> {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        return Ok(String::new());
    }
    for segment in p.split('/') {
        let bad = segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.chars().any(|c| c.is_control());
        if bad {
            return Err(invalid(format!(
                "prefix {prefix:?} has an empty, '.', '..' or control-character segment: \
                 use segments like 'cflogs/prod'"
            )));
        }
    }
    Ok(p.to_owned())
}

impl ArchiveConfig {
    fn with_location(location: Location, prefix: String) -> Self {
        Self {
            location,
            prefix,
            s3: S3Settings::default(),
            object_lock: None,
            upload: UploadSettings::default(),
            parquet: ParquetSettings::default(),
        }
    }

    /// An S3 bucket with a key prefix (may be empty).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty bucket or a malformed prefix.
    pub fn s3(bucket: impl Into<String>, prefix: &str) -> Result<Self> {
        let bucket = bucket.into();
        if bucket.is_empty() || bucket.contains('/') {
            return Err(invalid(format!(
                "bucket {bucket:?} must be a bucket name without '/'"
            )));
        }
        Ok(Self::with_location(
            Location::S3 { bucket },
            normalize_prefix(prefix)?,
        ))
    }

    /// A local directory.
    pub fn file(dir: impl Into<PathBuf>) -> Self {
        Self::with_location(Location::File { dir: dir.into() }, String::new())
    }

    /// An in-memory store with a key prefix.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed prefix.
    pub fn memory(prefix: &str) -> Result<Self> {
        Ok(Self::with_location(
            Location::Memory,
            normalize_prefix(prefix)?,
        ))
    }

    /// Parses `s3://bucket/prefix`, `file:///absolute/dir` or `memory://` (optionally
    /// `memory:///prefix`). Connection settings of S3 come from the `with_*` methods or
    /// the `with_*` methods.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming what is wrong with the URL.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url).map_err(|e| {
            invalid(format!(
                "archive URL {url:?} does not parse ({e}): use s3://bucket/prefix, \
                 file:///absolute/dir or memory://"
            ))
        })?;
        let path = percent_decode(parsed.path())?;
        match parsed.scheme() {
            "s3" | "s3a" => {
                let bucket = parsed.host_str().unwrap_or_default();
                if bucket.is_empty() {
                    return Err(invalid(format!(
                        "archive URL {url:?} has no bucket: use s3://bucket/prefix"
                    )));
                }
                Self::s3(bucket, &path)
            }
            "file" => {
                if parsed.host_str().is_some_and(|h| !h.is_empty()) {
                    return Err(invalid(format!(
                        "archive URL {url:?} names a host: use file:///absolute/dir (three slashes)"
                    )));
                }
                if path.is_empty() || path == "/" {
                    return Err(invalid(format!(
                        "archive URL {url:?} has no directory: use file:///absolute/dir"
                    )));
                }
                Ok(Self::file(PathBuf::from(path)))
            }
            "memory" => {
                let host = parsed.host_str().unwrap_or_default();
                Self::memory(&format!("{host}/{path}"))
            }
            other => Err(invalid(format!(
                "archive URL scheme {other:?} is not supported: use s3://, file:// or memory://"
            ))),
        }
    }

    /// Sets the endpoint of a non-AWS store, `http(s)://host[:port]`. Path-style addressing is
    /// switched on (what MinIO, Garage and R2 expect); switch it back with
    /// [`ArchiveConfig::with_addressing`] for a store that wants virtual-hosted requests.
    ///
    /// # Errors
    /// [`Error::Invalid`] unless it is an `http` or `https` URL.
    pub fn with_endpoint(mut self, endpoint: &str) -> Result<Self> {
        let parsed = url::Url::parse(endpoint).map_err(|e| {
            invalid(format!(
                "endpoint {endpoint:?} does not parse ({e}): use http(s)://host:port"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(invalid(format!(
                "endpoint {endpoint:?} must be http(s)://host:port"
            )));
        }
        self.s3.endpoint = Some(endpoint.trim_end_matches('/').to_owned());
        self.s3.addressing = Addressing::Path;
        Ok(self)
    }

    /// Sets the region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.s3.region = Some(region.into());
        self
    }

    /// Sets static credentials.
    #[must_use]
    pub fn with_credentials(mut self, access_key_id: impl Into<String>, secret: Secret) -> Self {
        self.s3.access_key_id = Some(access_key_id.into());
        self.s3.secret_access_key = Some(secret);
        self
    }

    /// Sets the addressing style.
    #[must_use]
    pub fn with_addressing(mut self, addressing: Addressing) -> Self {
        self.s3.addressing = addressing;
        self
    }

    /// Sets Object Lock retention of published objects.
    #[must_use]
    pub fn with_object_lock(mut self, lock: Option<ObjectLock>) -> Self {
        self.object_lock = lock;
        self
    }

    /// Sets the key prefix.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed prefix.
    pub fn with_prefix(mut self, prefix: &str) -> Result<Self> {
        self.prefix = normalize_prefix(prefix)?;
        Ok(self)
    }

    /// Sets how objects are uploaded.
    #[must_use]
    pub fn with_upload(mut self, upload: UploadSettings) -> Self {
        self.upload = upload;
        self
    }

    /// Sets how Parquet is written.
    #[must_use]
    pub fn with_parquet(mut self, parquet: ParquetSettings) -> Self {
        self.parquet = parquet;
        self
    }

    /// The archive's address without secrets, for logs: `s3://bucket/prefix (endpoint …)`.
    pub fn describe(&self) -> String {
        let prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", self.prefix)
        };
        match &self.location {
            Location::S3 { bucket } => match &self.s3.endpoint {
                Some(endpoint) => format!("s3://{bucket}{prefix} (endpoint {endpoint})"),
                None => format!("s3://{bucket}{prefix}"),
            },
            Location::File { dir } => format!("file://{}{prefix}", dir.display()),
            Location::Memory => format!("memory://{prefix}"),
        }
    }
}

fn percent_decode(path: &str) -> Result<String> {
    let mut out = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| invalid(format!("path {path:?} is not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_store_parse() {
        let c = ArchiveConfig::from_url("s3://logs/cflogs/prod/").unwrap();
        assert_eq!(
            c.location,
            Location::S3 {
                bucket: "logs".into()
            }
        );
        assert_eq!(c.prefix, "cflogs/prod");
        let c = ArchiveConfig::from_url("s3://logs").unwrap();
        assert_eq!(c.prefix, "");
        let c = ArchiveConfig::from_url("file:///var/lib/cflogs/archive").unwrap();
        assert_eq!(
            c.location,
            Location::File {
                dir: "/var/lib/cflogs/archive".into()
            }
        );
        assert_eq!(ArchiveConfig::from_url("memory://").unwrap().prefix, "");
        assert_eq!(
            ArchiveConfig::from_url("memory:///a/b").unwrap().prefix,
            "a/b"
        );
        assert_eq!(
            ArchiveConfig::from_url("file:///d%20x").unwrap().location,
            Location::File { dir: "/d x".into() }
        );
        for bad in [
            "s3:///x",
            "file://host/dir",
            "gs://b/p",
            "not a url",
            "s3://b/a//c",
        ] {
            assert!(ArchiveConfig::from_url(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn builders_set_the_connection_and_secrets_never_show() {
        let secret = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY";
        let mut c = ArchiveConfig::s3("b", "/p/q/")
            .unwrap()
            .with_endpoint("http://127.0.0.1:3900")
            .unwrap()
            .with_region("garage")
            .with_credentials("AKIDEXAMPLE", Secret::new(secret));
        c.s3.session_token = Some(Secret::new("token-value-123"));
        assert_eq!(c.prefix, "p/q");
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(c.s3.addressing, Addressing::Path);
        let debug = format!("{c:?} {:?} {}", c.s3, c.describe());
        assert!(!debug.contains(secret), "secret in {debug}");
        assert!(!debug.contains("token-value-123"), "token in {debug}");
        assert!(debug.contains("Secret(***)"));
        assert_eq!(format!("{}", Secret::new(secret)), "***");
        assert_eq!(
            ArchiveConfig::s3("b", "").unwrap().s3.addressing,
            Addressing::VirtualHosted
        );
        for bad in ["ftp://x", "not a url"] {
            assert!(
                ArchiveConfig::s3("b", "")
                    .unwrap()
                    .with_endpoint(bad)
                    .is_err()
            );
        }
        assert!(ArchiveConfig::s3("b", "a//b").is_err());
        assert!(ArchiveConfig::s3("", "").is_err());
    }
}
