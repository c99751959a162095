//! An S3 bucket per test, created and deleted with signed S3 requests (object_store has no
//! bucket API).

use std::time::Duration;

use rusty_s3::actions::{CreateBucket, DeleteBucket, DeleteObject, ListObjectsV2};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::containers::{self, MINIO_PASSWORD, MINIO_USER, MinioContainer};
use crate::names::unique_suffix;
use crate::{Held, clean_up_off_runtime, containers_allowed, env, off_runtime, patience, retry};

/// The variables naming an existing S3 server and a key that may create buckets.
pub const S3_VARS: [&str; 4] = [
    "CFLOGS_TEST_S3_ENDPOINT",
    "CFLOGS_TEST_S3_REGION",
    "CFLOGS_TEST_S3_ACCESS_KEY",
    "CFLOGS_TEST_S3_SECRET_KEY",
];

const HOW_TO_START: &str = "these tests need a real S3-compatible server. Run `bash \
    scripts/test.sh` (it starts a local Garage and sets the CFLOGS_TEST_S3_* variables), or \
    `source scripts/services/garage.sh` in your shell, or set CFLOGS_TEST_S3_ENDPOINT, \
    CFLOGS_TEST_S3_REGION, CFLOGS_TEST_S3_ACCESS_KEY and CFLOGS_TEST_S3_SECRET_KEY (a key that \
    may create buckets), or start a Docker engine (the harness then runs MinIO in a container)";

/// How long a signed request stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// A bucket created for one test, emptied and deleted when it ends (also when the test panics).
#[derive(Debug)]
pub struct TestBucket {
    endpoint: String,
    region: String,
    name: String,
    access_key: String,
    secret_key: String,
    container: Option<Held<MinioContainer>>,
}

impl TestBucket {
    /// Creates a fresh bucket on the test server (see the crate documentation for where the
    /// server comes from). Panics, saying how to start one, when there is none.
    pub async fn new() -> Self {
        Self::create_new(false).await
    }

    /// Like [`TestBucket::new`], asking for S3 Object Lock on the bucket
    /// (`x-amz-bucket-object-lock-enabled`), which MinIO needs before it accepts retention
    /// headers. Garage ignores the request header and the retention headers alike.
    pub async fn with_object_lock() -> Self {
        Self::create_new(true).await
    }

    async fn create_new(object_lock: bool) -> Self {
        let found: Vec<Option<String>> = S3_VARS.iter().map(|v| env(v)).collect();
        let (endpoint, region, access_key, secret_key, container) = match &found[..] {
            [Some(e), Some(r), Some(a), Some(s)] => {
                (e.clone(), r.clone(), a.clone(), s.clone(), None)
            }
            [None, None, None, None] if containers_allowed() => {
                let container = off_runtime(containers::minio);
                (
                    container.endpoint.clone(),
                    "us-east-1".to_owned(),
                    MINIO_USER.to_owned(),
                    MINIO_PASSWORD.to_owned(),
                    Some(Held::new(container)),
                )
            }
            _ => {
                let missing: Vec<&str> = S3_VARS
                    .iter()
                    .zip(&found)
                    .filter(|(_, v)| v.is_none())
                    .map(|(n, _)| *n)
                    .collect();
                panic!("{} not set: {HOW_TO_START}", missing.join(", "))
            }
        };
        let name = format!("cflogs-test-{}", unique_suffix());
        let bucket = Self {
            endpoint,
            region,
            name,
            access_key,
            secret_key,
            container,
        };
        retry(patience(&bucket.container), async || {
            bucket.create(object_lock).await
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "creating the test bucket {}: {e}. {HOW_TO_START}",
                bucket.name
            )
        });
        bucket
    }

    /// The endpoint URL (`http://127.0.0.1:3900` for the local Garage).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The region the server expects in signatures.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The access key id.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret access key (of a throw-away test server).
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The keys in the bucket, in order.
    pub async fn keys(&self) -> Result<Vec<String>, String> {
        list_keys(&client()?, &self.target()?).await
    }

    fn target(&self) -> Result<Target, String> {
        Target::new(
            &self.endpoint,
            &self.region,
            &self.name,
            &self.access_key,
            &self.secret_key,
        )
    }

    async fn create(&self, object_lock: bool) -> Result<(), String> {
        let target = self.target()?;
        let mut action = CreateBucket::new(&target.bucket, &target.credentials);
        if object_lock {
            // Signed with the request, as servers require of x-amz-* headers.
            action
                .headers_mut()
                .insert("x-amz-bucket-object-lock-enabled", "true");
        }
        // us-east-1 takes no location constraint; every other region needs one.
        let body = if self.region == "us-east-1" {
            String::new()
        } else {
            action.body()
        };
        let mut request = client()?.put(action.sign(SIGNED_FOR)).body(body);
        if object_lock {
            request = request.header("x-amz-bucket-object-lock-enabled", "true");
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{}: {e}", self.endpoint))?;
        expect_success(response).await
    }
}

/// What a signed request needs.
struct Target {
    bucket: Bucket,
    credentials: Credentials,
}

impl Target {
    fn new(
        endpoint: &str,
        region: &str,
        name: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self, String> {
        let url = endpoint
            .parse()
            .map_err(|e| format!("endpoint {endpoint}: {e}"))?;
        let bucket = Bucket::new(url, UrlStyle::Path, name.to_owned(), region.to_owned())
            .map_err(|e| format!("bucket {name} at {endpoint}: {e}"))?;
        Ok(Self {
            bucket,
            credentials: Credentials::new(access_key, secret_key),
        })
    }
}

fn client() -> Result<reqwest::Client, String> {
    // reqwest is built without a default TLS provider in this workspace.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("http client: {e}"))
}

async fn expect_success(response: reqwest::Response) -> Result<(), String> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(format!("{status}: {body}"))
}

async fn list_keys(client: &reqwest::Client, target: &Target) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut action = ListObjectsV2::new(&target.bucket, Some(&target.credentials));
        if let Some(token) = &token {
            action.with_continuation_token(token.clone());
        }
        let response = client
            .get(action.sign(SIGNED_FOR))
            .send()
            .await
            .map_err(|e| format!("list: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("list: {}", response.status()));
        }
        let text = response.text().await.map_err(|e| format!("list: {e}"))?;
        let page = ListObjectsV2::parse_response(&text).map_err(|e| format!("list: {e}"))?;
        keys.extend(page.contents.into_iter().map(|c| c.key));
        match page.next_continuation_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    keys.sort();
    Ok(keys)
}

/// Deletes every object, then the bucket.
async fn delete_bucket(target: &Target) -> Result<(), String> {
    let client = client()?;
    for key in list_keys(&client, target).await? {
        let action = DeleteObject::new(&target.bucket, Some(&target.credentials), &key);
        let response = client
            .delete(action.sign(SIGNED_FOR))
            .send()
            .await
            .map_err(|e| format!("delete {key}: {e}"))?;
        expect_success(response).await?;
    }
    let action = DeleteBucket::new(&target.bucket, &target.credentials);
    let response = client
        .delete(action.sign(SIGNED_FOR))
        .send()
        .await
        .map_err(|e| format!("delete bucket: {e}"))?;
    expect_success(response).await
}

impl Drop for TestBucket {
    fn drop(&mut self) {
        let target = self.target();
        let name = self.name.clone();
        clean_up_off_runtime(async move {
            if let Err(e) = async { delete_bucket(&target?).await }.await {
                // Not a test failure: the test is over. Say so where a person will see it.
                eprintln!("test bucket {name} was not deleted: {e}");
            }
        });
        // The container (if this was its last user) goes after the bucket.
        drop(self.container.take());
    }
}
