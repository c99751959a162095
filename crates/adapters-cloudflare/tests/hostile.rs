//! Upstreams that misbehave (issue 14, hostile upstreams): a redirect never carries the token
//! anywhere, and absurd `Retry-After` values neither freeze nor panic the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use cflogs_cloudflare::{
    AccountId, AuditApi, AuditLogSource, AuditSourceConfig, ClientConfig, CloudflareClient,
    Credentials, RateBudget, Secret,
};
use cflogs_core::{BatchLimits, FetchRequest, Window, WindowSource};

const TOKEN: &str = "tok-hostile-9c1e-secret";

/// Serves `app` on 127.0.0.1; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/client/v4")
}

/// One page of audit logs through `client` (an authenticated request with either credential).
async fn audit_page(client: CloudflareClient) -> cflogs_cloudflare::Result<()> {
    let config = AuditSourceConfig::new(AccountId::new("acc1").unwrap(), AuditApi::V1);
    let source = AuditLogSource::new(Arc::new(client), config);
    let to = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
    let window = Window::new(to - chrono::TimeDelta::minutes(5), to).unwrap();
    source
        .fetch(&FetchRequest {
            window,
            floor: window.from(),
            limits: BatchLimits::new(usize::MAX, usize::MAX).unwrap(),
        })
        .await
        .map(|_| ())
        .map_err(|e| cflogs_cloudflare::Error::Api {
            path: "audit_logs".into(),
            message: cflogs_core::error_chain(&e),
        })
}

fn client(base: &str, credentials: Credentials) -> CloudflareClient {
    let mut c = ClientConfig::new(credentials);
    c.base_url = base.to_owned();
    c.retry_initial_delay = Duration::from_millis(2);
    c.retry_max_delay = Duration::from_millis(20);
    c.max_retries = 3;
    c.rate_budget = RateBudget::new(100_000, Duration::from_secs(1)).unwrap();
    CloudflareClient::new(c).unwrap()
}

#[tokio::test]
async fn a_redirect_is_an_error_and_no_credential_reaches_its_target() {
    // The target counts what reaches it, and whether any credential came along.
    let hits = Arc::new(AtomicU64::new(0));
    let leaked = Arc::new(AtomicU64::new(0));
    let target = {
        let (hits, leaked) = (hits.clone(), leaked.clone());
        serve(Router::new().fallback(move |headers: HeaderMap| {
            let (hits, leaked) = (hits.clone(), leaked.clone());
            async move {
                hits.fetch_add(1, Ordering::SeqCst);
                if headers.contains_key(header::AUTHORIZATION) || headers.contains_key("x-auth-key")
                {
                    leaked.fetch_add(1, Ordering::SeqCst);
                }
                (StatusCode::OK, r#"{"success":true,"result":[]}"#)
            }
        }))
        .await
    };
    for status in [
        StatusCode::MOVED_PERMANENTLY,
        StatusCode::FOUND,
        StatusCode::TEMPORARY_REDIRECT,
        StatusCode::PERMANENT_REDIRECT,
    ] {
        let to = format!("{target}/user/tokens/verify");
        let base = serve(Router::new().fallback(move || {
            let to = to.clone();
            async move { (status, [(header::LOCATION, to)], "").into_response() }
        }))
        .await;
        for credentials in [
            Credentials::Token(Secret::new(TOKEN)),
            Credentials::Legacy {
                email: "sec@example.com".into(),
                key: Secret::new("legacy-key-7d2b"),
            },
        ] {
            let e = audit_page(client(&base, credentials))
                .await
                .expect_err("a redirect is not an answer");
            let text = cflogs_core::error_chain(&e);
            assert!(
                text.contains("redirect") && text.contains("CLOUDFLARE_API_BASE_URL"),
                "{status}: {text}"
            );
            assert!(!text.contains(TOKEN) && !text.contains("legacy-key-7d2b"));
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no redirect was followed");
    assert_eq!(leaked.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn absurd_retry_after_values_are_bounded_or_ignored_and_never_panic() {
    // Each value once on a 503, then a good answer: the client must come back within the
    // retry backoff (the absurd values are not waited out), never panic.
    for value in [
        "-1",
        "1.5",
        "soon",
        "",
        "99999999999999999999999",
        "Thu, 01 Jan 1970 00:00:00 GMT",
        "Sat, 32 Foo 2026 99:99:99 GMT",
    ] {
        let calls = Arc::new(AtomicU64::new(0));
        let base = {
            let calls = calls.clone();
            serve(Router::new().fallback(move || {
                let calls = calls.clone();
                async move {
                    if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            [(header::RETRY_AFTER, value)],
                            "",
                        )
                            .into_response()
                    } else {
                        (
                            StatusCode::OK,
                            r#"{"success":true,"result":{"status":"active"}}"#,
                        )
                            .into_response()
                    }
                }
            }))
            .await
        };
        let started = Instant::now();
        client(&base, Credentials::Token(Secret::new(TOKEN)))
            .verify_token()
            .await
            .unwrap_or_else(|e| panic!("Retry-After {value:?}: {e}"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Retry-After {value:?} was waited out: {:?}",
            started.elapsed()
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2, "{value:?}");
    }
}
