//! Building the [`ObjectStore`] of an [`ArchiveConfig`]: S3-compatible (with path-style or
//! virtual-hosted addressing and optional Object Lock retention), local directory, memory.
//!
//! # Object Lock
//!
//! `object_store` has no setting for the `x-amz-object-lock-*` headers, and S3 rejects unsigned
//! `x-amz-*` headers. With [`ArchiveConfig::object_lock`] set, the S3 client goes through
//! [`ObjectLockConnector`]: it adds `x-amz-object-lock-mode` and
//! `x-amz-object-lock-retain-until-date` to every `CopyObject` (publishing: staged → final) and to
//! the `PutObject` of manifests, and signs the request again with the same credentials. Staged
//! objects are never locked (they are deleted right after publishing). It needs static
//! credentials (`S3_ACCESS_KEY`/`S3_SECRET_KEY`) and a bucket created with Object Lock enabled;
//! SHA-256 upload checksums are switched on, since S3 requires a checksum on locked writes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cflogs_core::{Error, Result};
use object_store::aws::{AmazonS3Builder, AwsAuthorizer, AwsCredential, Checksum};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::config::{Addressing, ArchiveConfig, Location, ObjectLock};

/// Marker put in a request's extensions (through `PutOptions::extensions`) to ask
/// [`ObjectLockConnector`] to lock the object it writes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LockThis;

/// Builds the store of `config`. Keys are relative to the store's root; the archive prefix
/// is applied by the sink.
///
/// # Errors
/// [`Error::Invalid`] for settings the store rejects (naming them), [`Error::Fatal`] when the
/// local directory cannot be created.
pub fn build_store(config: &ArchiveConfig) -> Result<Arc<dyn ObjectStore>> {
    match &config.location {
        Location::Memory => Ok(Arc::new(InMemory::new())),
        Location::File { dir } => {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::fatal(
                    "archive store",
                    format!("cannot create archive directory {}: {e}", dir.display()),
                )
            })?;
            let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                Error::invalid(
                    "archive config",
                    format!("archive directory {}: {e}", dir.display()),
                )
            })?;
            Ok(Arc::new(fs))
        }
        Location::S3 { bucket } => build_s3(config, bucket),
    }
}

fn build_s3(config: &ArchiveConfig, bucket: &str) -> Result<Arc<dyn ObjectStore>> {
    // reqwest is built without a default TLS provider (no aws-lc): use ring, unless the
    // process installed one already.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let s3 = &config.s3;
    let has_keys = s3.access_key_id.is_some() && s3.secret_access_key.is_some();
    // Without static keys, start from the AWS environment (web identity, container and
    // instance credentials, AWS_* variables); explicit settings below take precedence.
    let mut builder = if has_keys {
        AmazonS3Builder::new()
    } else {
        AmazonS3Builder::from_env()
    };
    let region = s3.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
    builder = builder
        .with_bucket_name(bucket)
        .with_region(&region)
        .with_virtual_hosted_style_request(s3.addressing == Addressing::VirtualHosted)
        .with_retry(RetryConfig {
            max_retries: 5,
            retry_timeout: Duration::from_secs(120),
            ..RetryConfig::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_timeout(Duration::from_secs(120))
                .with_connect_timeout(Duration::from_secs(10)),
        );
    if let Some(endpoint) = &s3.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    let mut credential = None;
    if let (Some(key), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
        builder = builder
            .with_access_key_id(key)
            .with_secret_access_key(secret.expose());
        credential = Some(AwsCredential {
            key_id: key.clone(),
            secret_key: secret.expose().to_owned(),
            token: s3.session_token.as_ref().map(|t| t.expose().to_owned()),
        });
    }
    if let Some(token) = &s3.session_token {
        builder = builder.with_token(token.expose());
    }
    if let Some(lock) = config.object_lock {
        let Some(credential) = credential else {
            return Err(Error::invalid(
                "archive config",
                "Object Lock retention needs static credentials: set S3_ACCESS_KEY and \
                 S3_SECRET_KEY, or turn Object Lock off",
            ));
        };
        builder = builder
            .with_checksum_algorithm(Checksum::SHA256)
            .with_http_connector(ObjectLockConnector {
                lock,
                credential: Arc::new(credential),
                region,
            });
    }
    let store = builder.build().map_err(|e| {
        // The builder's errors name settings, never secret values.
        Error::invalid(
            "archive config",
            format!("S3 store for bucket {bucket:?}: {e}"),
        )
    })?;
    Ok(Arc::new(store))
}

/// An [`HttpConnector`] that adds Object Lock retention headers to the requests that write
/// final objects and manifests, and signs them again (see the module documentation).
#[derive(Debug)]
pub(crate) struct ObjectLockConnector {
    lock: ObjectLock,
    credential: Arc<AwsCredential>,
    region: String,
}

impl HttpConnector for ObjectLockConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(ObjectLockService {
            inner,
            lock: self.lock,
            credential: self.credential.clone(),
            region: self.region.clone(),
        }))
    }
}

#[derive(Debug)]
struct ObjectLockService {
    inner: HttpClient,
    lock: ObjectLock,
    credential: Arc<AwsCredential>,
    region: String,
}

impl ObjectLockService {
    fn wants_lock(request: &HttpRequest) -> bool {
        let is_put = request.method() == http::Method::PUT;
        let is_copy = request.headers().contains_key("x-amz-copy-source");
        let is_part = request
            .uri()
            .query()
            .is_some_and(|q| q.contains("partNumber=") || q.contains("uploadId="));
        is_put && !is_part && (is_copy || request.extensions().get::<LockThis>().is_some())
    }

    fn add_lock(&self, request: &mut HttpRequest) -> std::result::Result<(), HttpError> {
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(self.lock.retain_for).unwrap_or(chrono::Duration::MAX);
        let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let header = |v: &str| {
            http::HeaderValue::from_str(v)
                .map_err(|e| HttpError::new(object_store::client::HttpErrorKind::Request, e))
        };
        let headers = request.headers_mut();
        headers.insert(
            "x-amz-object-lock-mode",
            header(self.lock.mode.as_header())?,
        );
        headers.insert("x-amz-object-lock-retain-until-date", header(&until)?);
        headers.remove(http::header::AUTHORIZATION);
        // Sign again, with the payload hash the first signature used.
        let payload = request
            .headers()
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let authorizer = AwsAuthorizer::new(&self.credential, "s3", &self.region);
        match payload.as_deref() {
            Some("UNSIGNED-PAYLOAD") => authorizer
                .with_sign_payload(false)
                .try_authorize(request, None),
            Some(hex_digest) => match hex::decode(hex_digest) {
                Ok(digest) => authorizer.try_authorize(request, Some(&digest)),
                Err(_) => authorizer.try_authorize(request, None),
            },
            None => authorizer.try_authorize(request, None),
        }
        .map_err(|e| HttpError::new(object_store::client::HttpErrorKind::Request, e))
    }
}

#[async_trait]
impl HttpService for ObjectLockService {
    async fn call(&self, mut request: HttpRequest) -> std::result::Result<HttpResponse, HttpError> {
        if Self::wants_lock(&request) {
            self.add_lock(&mut request)?;
        }
        self.inner.execute(request).await
    }
}
