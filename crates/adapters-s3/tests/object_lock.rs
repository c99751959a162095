//! Object Lock retention headers: sent, signed and accepted on the requests that write final
//! objects and manifests, never on staged objects. A recording TCP proxy on 127.0.0.1 in front of
//! the test server shows what was sent, and the server's signature check shows the re-signed
//! requests are valid. Garage (the local path) accepts and ignores the headers; MinIO (the
//! container path) gets a bucket with Object Lock enabled, and applies them.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cflogs_core::testing::samples::audit_events;
use cflogs_core::{ArchiveSink, Batch, StreamId, Window};
use cflogs_s3::{LockMode, ObjectLock, ParquetArchive};
use chrono::TimeZone;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards connections to `upstream`, keeping a copy of what clients send.
async fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        // Bounded: the test makes a handful of connections.
        for _ in 0..64 {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let Ok(server) = TcpStream::connect(&upstream).await else {
                return;
            };
            let record = record.clone();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = sw.shutdown().await;
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// Request heads (request line and headers) found in the recorded client bytes.
fn request_heads(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut heads = Vec::new();
    for method in ["PUT /", "POST /", "GET /", "DELETE /", "HEAD /"] {
        for (i, _) in text.match_indices(method) {
            let rest = &text[i..];
            if let Some(end) = rest.find("\r\n\r\n") {
                heads.push(rest[..end].to_lowercase());
            }
        }
    }
    heads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locked_archives_send_signed_retention_headers_on_final_writes_only() {
    let bucket = cflogs_integration::TestBucket::with_object_lock().await;
    let mut config = common::s3_config(&bucket, "object-lock");
    let upstream = config
        .s3
        .endpoint
        .clone()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let (proxy, seen) = recording_proxy(upstream).await;
    config = config
        .with_endpoint(&proxy)
        .unwrap()
        .with_object_lock(Some(ObjectLock {
            mode: LockMode::Governance,
            retain_for: Duration::from_secs(86_400),
        }));
    let archive = ParquetArchive::open(&config).expect("open");
    let stream = StreamId::new("lock/a").unwrap();
    let start = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .unwrap();
    let batch = Batch {
        stream: stream.clone(),
        schema: cflogs_core::testing::samples::audit_schema(),
        window: Window::new(start, start + chrono::Duration::minutes(5)).unwrap(),
        events: audit_events("acc", 0, 50, start, chrono::Duration::seconds(1)),
        quarantined: Vec::new(),
    };
    let m = archive
        .stage(&batch, common::first_batch(start))
        .await
        .expect("stage");
    archive
        .publish(&m)
        .await
        .expect("Garage accepts the re-signed requests");
    assert!(
        archive
            .verify(&stream, Some(m.hash()))
            .await
            .unwrap()
            .is_clean()
    );

    let heads = request_heads(&seen.lock().unwrap());
    let locked: Vec<&String> = heads
        .iter()
        .filter(|h| h.contains("x-amz-object-lock-mode: governance"))
        .collect();
    let is_copy = |h: &&String| h.contains("x-amz-copy-source");
    let is_manifest = |h: &&String| {
        h.starts_with("put ")
            && h.lines()
                .next()
                .unwrap_or_default()
                .contains("/_manifests/")
    };
    assert_eq!(
        locked.iter().filter(|h| is_copy(h)).count(),
        m.objects.len(),
        "every copy to a final key is locked: {heads:#?}"
    );
    assert_eq!(
        locked.iter().filter(|h| is_manifest(h)).count(),
        1,
        "the manifest is locked"
    );
    for h in &locked {
        assert!(h.contains("x-amz-object-lock-retain-until-date: "), "{h}");
        let signed = h
            .lines()
            .find(|l| l.starts_with("authorization:"))
            .expect("signed");
        assert!(
            signed.contains("x-amz-object-lock-mode")
                && signed.contains("x-amz-object-lock-retain-until-date"),
            "the lock headers are signed: {signed}"
        );
    }
    let request_line = |h: &String| h.lines().next().unwrap_or_default().to_owned();
    let staged: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("put ") && request_line(h).contains("/_staging/"))
        .collect();
    assert!(
        !staged.is_empty(),
        "staged objects were written: {heads:#?}"
    );
    for h in staged {
        assert!(
            !h.contains("x-amz-object-lock"),
            "staged objects are never locked: {h}"
        );
    }
}
