//! What the integration tests share: the services under test, connected.
#![allow(dead_code)]

use cflogs_integration::{TestBucket, TestDatabase};
use cflogs_postgres::{PostgresClient, PostgresConfig};
use cflogs_s3::{ArchiveConfig, ParquetArchive};

/// A client of the test database, migrated.
pub async fn postgres(db: &TestDatabase) -> PostgresClient {
    let config =
        PostgresConfig::from_url(&cflogs_postgres::Secret::new(db.url())).expect("database url");
    let client = PostgresClient::connect(&config)
        .await
        .unwrap_or_else(|e| panic!("connecting to {}: {e:?}", db.name()));
    client.migrate().await.expect("migrate");
    client
}

/// The Parquet archive in the test bucket, under the prefix `cflogs`.
pub fn archive(bucket: &TestBucket) -> ParquetArchive {
    let config = ArchiveConfig::s3(bucket.name(), "cflogs")
        .and_then(|c| c.with_endpoint(bucket.endpoint()))
        .expect("archive config")
        .with_region(bucket.region())
        .with_credentials(
            bucket.access_key(),
            cflogs_s3::Secret::new(bucket.secret_key()),
        );
    ParquetArchive::open(&config).expect("open archive")
}
