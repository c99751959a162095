//! Trap and fault tests: late visibility, rate limiting, 5xx, cut bodies, malformed events,
//! determinism and live generation.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use cflogs_sim::{MalformedKind, SimClock, Simulator};
use chrono::TimeDelta;
use common::*;
use serde_json::Value;

fn v1_all(base_url: &str) -> String {
    format!("{base_url}/accounts/acc1/audit_logs?per_page=1000&direction=asc")
}

#[tokio::test]
async fn late_events_appear_only_after_their_delay() {
    let sim = base()
        .span(t0(), t1(), 800)
        .late_fraction(0.5)
        .max_late(Duration::from_secs(120))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let now = t1();
    let events = sim.events("acc1");
    let hidden: Vec<_> = events.iter().filter(|e| e.visible_at > now).collect();
    assert!(!hidden.is_empty(), "no late event near the end of the span");
    assert!(
        hidden
            .iter()
            .all(|e| e.visible_at - e.when <= TimeDelta::seconds(120))
    );

    let served: HashSet<String> = ids_of(&get(&c, &v1_all(&sim.base_url()), "tok").await.events())
        .into_iter()
        .collect();
    for e in &hidden {
        assert!(
            !served.contains(&e.id),
            "late event served before visible_at"
        );
    }
    assert_eq!(served.len(), sim.visible_ids("acc1").len());

    // Exactly at visible_at - 1µs the event is hidden; at visible_at it is served.
    let late = hidden
        .iter()
        .find(|e| e.malformed.is_none())
        .expect("a well-formed late event");
    let clock = sim.clock().clone();
    clock.set(late.visible_at - TimeDelta::microseconds(1));
    let ids = ids_of(&get(&c, &v1_all(&sim.base_url()), "tok").await.events());
    assert!(!ids.contains(&late.id));
    assert!(!sim.visible_ids("acc1").contains(&late.id));
    clock.set(late.visible_at);
    let ids = ids_of(&get(&c, &v1_all(&sim.base_url()), "tok").await.events());
    assert!(ids.contains(&late.id));
    assert!(sim.visible_ids("acc1").contains(&late.id));

    // After the maximum delay every event of the span is visible.
    clock.set(t1() + TimeDelta::seconds(121));
    let ids = ids_of(&get(&c, &v1_all(&sim.base_url()), "tok").await.events());
    assert_eq!(ids.len(), 800);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn rate_limit_blocks_with_retry_after_until_block_ends() {
    let clock = SimClock::fixed(t1());
    let sim = base()
        .clock(clock.clone())
        .legacy_key("ops@example.com", "k")
        .span(t0(), t1(), 10)
        .rate_limit(10, Duration::from_secs(2), Duration::from_secs(1))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let url = format!("{}/accounts/acc1/audit_logs", sim.base_url());
    for i in 0..10u32 {
        let r = get(&c, &url, "tok").await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(
            r.header("ratelimit").unwrap(),
            format!("\"default\";r={};t=2", 9 - i)
        );
        assert_eq!(
            r.header("ratelimit-policy").unwrap(),
            "\"default\";q=10;w=2"
        );
    }
    // The 11th request in the window exceeds the limit and starts the block.
    let r = get(&c, &url, "tok").await;
    assert_eq!((r.status, r.error_code()), (429, 971));
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(r.header("ratelimit").unwrap(), "\"default\";r=0;t=1");
    // Every call is blocked, whatever the endpoint, until the block ends.
    clock.advance(Duration::from_millis(500));
    for path in ["/accounts/acc1/audit_logs", "/user/tokens/verify"] {
        let r = get(&c, &format!("{}{path}", sim.base_url()), "tok").await;
        assert_eq!((r.status, r.error_code()), (429, 971));
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    }
    // Another credential has its own bucket.
    let r = send(
        c.get(&url)
            .header("x-auth-email", "ops@example.com")
            .header("x-auth-key", "k"),
    )
    .await;
    assert_eq!(r.status, 200);
    // Block over: served again, with a fresh window.
    clock.advance(Duration::from_millis(500));
    let r = get(&c, &url, "tok").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("ratelimit").unwrap(), "\"default\";r=9;t=2");
    let st = sim.stats();
    assert_eq!(st.blocks_triggered, 1);
    assert_eq!(st.rate_limited, 3);
    assert_eq!(st.status_count(429), 3);
    assert_eq!(st.status_count(200), 12);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn rate_limit_with_the_real_clock() {
    let sim = Simulator::builder()
        .account("acc1")
        .token("tok")
        // A long window so a slow machine cannot let it slide; a short block.
        .rate_limit(3, Duration::from_secs(60), Duration::from_secs(1))
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let url = format!("{}/user/tokens/verify", sim.base_url());
    for _ in 0..3 {
        assert_eq!(get(&c, &url, "tok").await.status, 200);
    }
    let r = get(&c, &url, "tok").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("1"));
    assert_eq!(get(&c, &url, "tok").await.status, 429);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get(&c, &url, "tok").await.status, 200);
    assert_eq!(sim.stats().blocks_triggered, 1);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn error_rate_one_answers_only_5xx() {
    let sim = base()
        .span(t0(), t1(), 100)
        .error_rate(1.0)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let mut codes = HashSet::new();
    let mut html = 0;
    let mut json = 0;
    for i in 0..30 {
        let url = if i % 2 == 0 {
            format!("{}/accounts/acc1/audit_logs", sim.base_url())
        } else {
            format!(
                "{}/accounts/acc1/logs/audit?since={}&before={}",
                sim.base_url(),
                q(t0()),
                q(t1())
            )
        };
        let r = get(&c, &url, "tok").await;
        assert!([500, 502, 503, 504].contains(&r.status), "{}", r.status);
        codes.insert(r.status);
        match r.header("content-type").as_deref() {
            Some("text/html") => {
                html += 1;
                assert!(String::from_utf8_lossy(&r.body).contains("cloudflare"));
            }
            Some("application/json") => {
                json += 1;
                assert_eq!(r.json()["success"], false);
            }
            other => panic!("unexpected content type {other:?}"),
        }
    }
    assert!(codes.len() >= 3, "{codes:?}");
    assert!(html > 0 && json > 0);
    let st = sim.stats();
    assert_eq!(st.injected_5xx, 30);
    assert_eq!(st.status_count(200), 0);
    // Control endpoints are never faulted.
    let r = send(c.get(format!("{}/stats", sim.control_url()))).await;
    assert_eq!(r.status, 200);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn cut_body_rate_one_breaks_every_body() {
    let sim = base()
        .span(t0(), t1(), 200)
        .cut_body_rate(1.0)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    for _ in 0..5 {
        let resp = c
            .get(v1_all(&sim.base_url()))
            .bearer_auth("tok")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let declared: usize = resp.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(declared > 1000);
        let body = resp.bytes().await;
        assert!(body.is_err(), "body read should fail on a cut body");
    }
    // Errors are not cut (only 200 bodies are).
    let r = get(
        &c,
        &format!("{}/accounts/acc1/audit_logs?per_page=5000", sim.base_url()),
        "tok",
    )
    .await;
    assert_eq!(r.status, 400);
    let st = sim.stats();
    assert_eq!(st.cut_bodies, 5);
    assert_eq!(st.status_count(200), 5);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_events_are_served_stably_and_excluded_from_the_oracle() {
    let sim = base()
        .span(t0(), t1(), 3000)
        .malformed_rate(0.02)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let malformed = sim.malformed("acc1");
    assert!(malformed.len() > 20, "{}", malformed.len());
    let kinds: HashSet<MalformedKind> = malformed.iter().map(|m| m.kind).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    let visible = sim.visible_ids("acc1");
    assert_eq!(visible.len() + malformed.len(), 3000);
    for m in &malformed {
        assert!(visible.binary_search(&m.internal_id).is_err());
    }

    // v1: every malformed event's exact bytes appear in the pages, twice the same.
    let mut bodies = Vec::new();
    let mut served = 0;
    for page in 1..=3 {
        let url = format!("{}&page={page}", v1_all(&sim.base_url()));
        let r = get(&c, &url, "tok").await;
        assert_eq!(r.status, 200);
        served += r.json()["result"].as_array().unwrap().len();
        let again = get(&c, &url, "tok").await;
        assert_eq!(r.body, again.body, "re-fetch differs");
        bodies.push(String::from_utf8(r.body).unwrap());
    }
    assert_eq!(served, 3000);
    let all = bodies.concat();
    for m in &malformed {
        assert!(
            all.contains(&m.v1),
            "malformed v1 bytes not served: {}",
            m.v1
        );
        let v: Value = serde_json::from_str(&m.v1).unwrap();
        match m.kind {
            MalformedKind::MissingId => assert!(v.get("id").is_none()),
            MalformedKind::MissingTime => assert!(v.get("when").is_none()),
            MalformedKind::TimeNotADate => assert_eq!(v["when"], "yesterday"),
            MalformedKind::TimeOutOfRange => assert_eq!(v["when"], "2026-13-45T99:00:00Z"),
        }
    }
    // v2 serves them too.
    let mut v2_all = String::new();
    let mut cursor = String::new();
    loop {
        let mut url = format!(
            "{}/accounts/acc1/logs/audit?since={}&before={}&limit=1000",
            sim.base_url(),
            q(t0()),
            q(t1())
        );
        if !cursor.is_empty() {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let r = get(&c, &url, "tok").await;
        let v = r.json();
        v2_all.push_str(std::str::from_utf8(&r.body).unwrap());
        cursor = v["result_info"]["cursors"]["after"]
            .as_str()
            .unwrap()
            .to_owned();
        if cursor.is_empty() {
            break;
        }
    }
    for m in &malformed {
        assert!(v2_all.contains(&m.v2));
    }
    sim.shutdown().await.unwrap();
}

async fn fetch_pages(sim: &cflogs_sim::RunningSim) -> Vec<Vec<u8>> {
    let c = client();
    let mut out = Vec::new();
    for page in 1..=3 {
        let url = format!(
            "{}/accounts/acc1/audit_logs?per_page=200&page={page}",
            sim.base_url()
        );
        out.push(get(&c, &url, "tok").await.body);
    }
    let v2 = format!(
        "{}/accounts/acc1/logs/audit?since={}&before={}&limit=300",
        sim.base_url(),
        q(t0()),
        q(t1())
    );
    let r = get(&c, &v2, "tok").await;
    let cursor = r.json()["result_info"]["cursors"]["after"]
        .as_str()
        .unwrap()
        .to_owned();
    out.push(r.body);
    out.push(get(&c, &format!("{v2}&cursor={cursor}"), "tok").await.body);
    out
}

#[tokio::test]
async fn same_seed_gives_byte_identical_pages() {
    let make = |seed: u64| {
        base()
            .seed(seed)
            .span(t0(), t1(), 1000)
            .late_fraction(0.1)
            .malformed_rate(0.01)
            .build()
            .unwrap()
    };
    let a = make(42).spawn().await.unwrap();
    let b = make(42).spawn().await.unwrap();
    let c = make(43).spawn().await.unwrap();
    let pa = fetch_pages(&a).await;
    let pb = fetch_pages(&b).await;
    let pc = fetch_pages(&c).await;
    assert_eq!(pa.len(), 5);
    assert!(pa.iter().all(|p| p.len() > 10_000));
    assert_eq!(pa, pb);
    assert_ne!(pa[0], pc[0]);
    assert_eq!(a.visible_ids("acc1"), b.visible_ids("acc1"));
    assert_ne!(a.visible_ids("acc1"), c.visible_ids("acc1"));
    for s in [a, b, c] {
        s.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn live_mode_generates_events_as_the_clock_advances() {
    let start = t1();
    let make = || {
        Simulator::builder()
            .seed(9)
            .account("acc1")
            .token("tok")
            .no_rate_limit()
            .clock(SimClock::fixed(start))
            .live(5.0)
            .live_from(start)
            .build()
            .unwrap()
    };
    let a = make().spawn().await.unwrap();
    let b = make();
    let c = client();
    let url = format!(
        "{}/accounts/acc1/audit_logs?per_page=1000&direction=asc",
        a.base_url()
    );
    // At `start` only events stamped exactly at `start` could be visible.
    let initial = get(&c, &url, "tok").await.events();
    assert!(initial.iter().all(|e| v1_when(e) == start));

    // Advance in small steps on one simulator, in one jump on the other.
    for _ in 0..20 {
        a.clock().advance(Duration::from_millis(500));
        let _ = a.visible_ids("acc1");
    }
    b.clock().advance(Duration::from_secs(10));
    let ids_a = a.visible_ids("acc1");
    assert_eq!(ids_a, b.visible_ids("acc1"));
    // 5 events per second over 10 s, plus any stamped exactly at the current instant.
    let now = start + TimeDelta::seconds(10);
    let due = a.events("acc1").iter().filter(|e| e.when <= now).count();
    assert_eq!(ids_a.len(), due);
    assert!((50..=55).contains(&due), "{due}");
    assert_eq!(a.events("acc1").iter().filter(|e| e.when < now).count(), 50);
    let served = get(&c, &url, "tok").await.events();
    assert_eq!(sorted(ids_of(&served)), ids_a);
    assert!(
        served
            .iter()
            .all(|e| v1_when(e) >= start && v1_when(e) <= start + TimeDelta::seconds(10))
    );
    a.shutdown().await.unwrap();
}
