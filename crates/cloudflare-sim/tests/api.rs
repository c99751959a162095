//! API shape tests: v1 and v2 paging semantics, auth, control endpoints.

mod common;

use std::collections::HashSet;

use cflogs_sim::{CursorStyle, Simulator};
use chrono::TimeDelta;
use common::*;
use serde_json::Value;

#[tokio::test]
async fn v1_since_is_inclusive_and_before_is_exclusive() {
    let sim = base()
        .span(t0(), t1(), 600)
        .bursts(0.3, 6)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let events = sim.events("acc1");
    // A timestamp shared by several events (a burst).
    let t = events
        .windows(2)
        .find(|w| w[0].when == w[1].when)
        .map(|w| w[0].when)
        .expect("no burst generated");
    let at_t: Vec<String> = sorted(
        events
            .iter()
            .filter(|e| e.when == t)
            .map(|e| e.id.clone())
            .collect(),
    );
    assert!(at_t.len() >= 2);
    let c = client();
    let url = |since: chrono::DateTime<chrono::Utc>, before: chrono::DateTime<chrono::Utc>| {
        format!(
            "{}/accounts/acc1/audit_logs?since={}&before={}&per_page=1000&direction=asc",
            sim.base_url(),
            q(since),
            q(before)
        )
    };
    // [t, t + 1µs) holds exactly the events at t: since is inclusive.
    let r = get(&c, &url(t, t + TimeDelta::microseconds(1)), "tok").await;
    assert_eq!(r.status, 200);
    assert_eq!(sorted(ids_of(&r.events())), at_t);
    // [t - 1s, t) excludes them: before is exclusive.
    let r = get(&c, &url(t - TimeDelta::seconds(1), t), "tok").await;
    let got = ids_of(&r.events());
    assert!(got.iter().all(|id| !at_t.contains(id)));
    assert!(r.events().iter().all(|e| v1_when(e) < t));
    // (t, t + 1s] style query starting 1µs later also excludes them.
    let r = get(
        &c,
        &url(t + TimeDelta::microseconds(1), t + TimeDelta::seconds(1)),
        "tok",
    )
    .await;
    assert!(ids_of(&r.events()).iter().all(|id| !at_t.contains(id)));
    // The oracle agrees with a wider window.
    let (s, b) = (t - TimeDelta::minutes(5), t + TimeDelta::minutes(5));
    let r = get(&c, &url(s, b), "tok").await;
    assert_eq!(
        sorted(ids_of(&r.events())),
        sim.visible_ids_in("acc1", s, b)
    );
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn v1_has_no_result_info_and_envelope_shape() {
    let sim = base()
        .span(t0(), t1(), 50)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let r = get(
        &client(),
        &format!("{}/accounts/acc1/audit_logs", sim.base_url()),
        "tok",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    let v = r.json();
    let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        HashSet::from(["success", "errors", "messages", "result"])
    );
    assert!(v.get("result_info").is_none());
    assert_eq!(v["errors"], Value::Array(vec![]));
    let evs = r.events();
    assert_eq!(evs.len(), 50);
    // v1 event shape.
    let e = &evs[0];
    for k in ["id", "action", "actor", "owner", "resource", "when"] {
        assert!(e.get(k).is_some(), "missing {k} in {e}");
    }
    assert!(e["action"]["result"].is_boolean());
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn v1_page_past_the_end_is_400_and_empty_first_page_is_200() {
    let sim = base()
        .span(t0(), t1(), 250)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let page = |p: u32| {
        format!(
            "{}/accounts/acc1/audit_logs?per_page=100&page={p}",
            sim.base_url()
        )
    };
    let mut seen = Vec::new();
    for (p, n) in [(1, 100), (2, 100), (3, 50)] {
        let r = get(&c, &page(p), "tok").await;
        assert_eq!(r.status, 200);
        let evs = r.events();
        assert_eq!(evs.len(), n);
        seen.extend(ids_of(&evs));
    }
    assert_eq!(sorted(seen), sim.visible_ids("acc1"));
    let r = get(&c, &page(4), "tok").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), 1001);
    let r = get(&c, &page(40), "tok").await;
    assert_eq!(r.status, 400);

    // No events at all in the window: page 1 is an empty 200, page 2 a 400.
    let empty = |p: u32| {
        format!(
            "{}/accounts/acc1/audit_logs?since={}&page={p}",
            sim.base_url(),
            q(t1() + TimeDelta::hours(1))
        )
    };
    let r = get(&c, &empty(1), "tok").await;
    assert_eq!(r.status, 200);
    assert!(r.events().is_empty());
    assert_eq!(get(&c, &empty(2), "tok").await.status, 400);
    sim.shutdown().await.unwrap();

    // The trap can be turned off: then a page past the end is an empty 200.
    let sim = base()
        .span(t0(), t1(), 250)
        .page_past_end_400(false)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let r = get(
        &c,
        &format!(
            "{}/accounts/acc1/audit_logs?per_page=100&page=4",
            sim.base_url()
        ),
        "tok",
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.events().is_empty());
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn v1_ties_straddle_page_boundaries_and_paging_is_exact() {
    let sim = base()
        .span(t0(), t1(), 3000)
        .bursts(0.05, 120)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let mut pages: Vec<Vec<Value>> = Vec::new();
    for p in 1.. {
        let r = get(
            &c,
            &format!(
                "{}/accounts/acc1/audit_logs?direction=asc&per_page=100&page={p}",
                sim.base_url()
            ),
            "tok",
        )
        .await;
        if r.status == 400 {
            assert_eq!(r.error_code(), 1001);
            break;
        }
        assert_eq!(r.status, 200);
        pages.push(r.events());
    }
    assert_eq!(pages.len(), 30);
    let straddles = pages
        .windows(2)
        .filter(|w| v1_when(w[0].last().unwrap()) == v1_when(&w[1][0]))
        .count();
    assert!(straddles >= 1, "no tie straddles a page boundary");
    let all: Vec<Value> = pages.into_iter().flatten().collect();
    // Order: (when, id) ascending.
    assert!(all.windows(2).all(|w| {
        let (a, b) = (v1_when(&w[0]), v1_when(&w[1]));
        a < b || (a == b && w[0]["id"].as_str() < w[1]["id"].as_str())
    }));
    let ids = ids_of(&all);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an id was served twice");
    assert_eq!(sorted(ids), sim.visible_ids("acc1"));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn v1_default_direction_is_desc() {
    let sim = base()
        .span(t0(), t1(), 300)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let url = format!("{}/accounts/acc1/audit_logs?per_page=1000", sim.base_url());
    let default = get(&c, &url, "tok").await.events();
    let asc = get(&c, &format!("{url}&direction=asc"), "tok")
        .await
        .events();
    let desc = get(&c, &format!("{url}&direction=desc"), "tok")
        .await
        .events();
    assert_eq!(default.len(), 300);
    assert_eq!(default, desc);
    let mut rev = asc.clone();
    rev.reverse();
    assert_eq!(default, rev);
    assert!(v1_when(&default[0]) > v1_when(&default[299]));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn v1_hide_user_logs_and_parameter_validation() {
    let sim = base()
        .span(t0(), t1(), 400)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let url = format!("{}/accounts/acc1/audit_logs?per_page=1000", sim.base_url());
    let all = get(&c, &url, "tok").await.events();
    let hidden = get(&c, &format!("{url}&hide_user_logs=true"), "tok")
        .await
        .events();
    let users = all.iter().filter(|e| e["actor"]["type"] == "user").count();
    assert!(users > 100);
    assert_eq!(hidden.len(), all.len() - users);
    assert!(hidden.iter().all(|e| e["actor"]["type"] != "user"));
    // The undocumented actor type is served.
    assert!(all.iter().any(|e| e["actor"]["type"] == "system"));

    for bad in [
        "per_page=1001",
        "per_page=0",
        "page=0",
        "page=x",
        "direction=sideways",
        "since=yesterday",
        "before=2026-13-45T99:00:00Z",
        "hide_user_logs=maybe",
    ] {
        let r = get(
            &c,
            &format!("{}/accounts/acc1/audit_logs?{bad}", sim.base_url()),
            "tok",
        )
        .await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.error_code(), 1002, "{bad}");
    }
    let r = get(
        &c,
        &format!("{}/accounts/acc1/audit_logs?per_page=1000", sim.base_url()),
        "tok",
    )
    .await;
    assert_eq!(r.status, 200);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn v2_requires_since_and_before() {
    let sim = base()
        .span(t0(), t1(), 10)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let base_url = format!("{}/accounts/acc1/logs/audit", sim.base_url());
    let (s, b) = (q(t0()), q(t1()));
    for (query, ok) in [
        (String::new(), false),
        (format!("since={s}"), false),
        (format!("before={b}"), false),
        (format!("since={s}&before={b}&limit=1001"), false),
        (format!("since={s}&before={b}&cursor=nothex"), false),
        (format!("since={s}&before={b}"), true),
    ] {
        let r = get(&c, &format!("{base_url}?{query}"), "tok").await;
        if ok {
            assert_eq!(r.status, 200, "{query}");
            assert_eq!(r.events().len(), 10);
            assert_eq!(r.json()["result_info"]["count"], 10);
        } else {
            assert_eq!(r.status, 400, "{query}");
            assert_eq!(r.error_code(), 1002, "{query}");
        }
    }
    sim.shutdown().await.unwrap();
}

/// Pages through v2 and returns (ids in order, cursor keys used per page).
async fn v2_walk(
    c: &reqwest::Client,
    url: &str,
    style: CursorStyle,
    limit: usize,
) -> (Vec<Value>, Vec<&'static str>) {
    let mut cursor: Option<String> = None;
    let mut events = Vec::new();
    let mut kinds = Vec::new();
    loop {
        let full = match &cursor {
            Some(cur) => format!("{url}&limit={limit}&cursor={cur}"),
            None => format!("{url}&limit={limit}"),
        };
        let r = get(c, &full, "tok").await;
        assert_eq!(r.status, 200);
        let v = r.json();
        let page = v["result"].as_array().unwrap().clone();
        let info = &v["result_info"];
        assert_eq!(info["count"].as_u64().unwrap() as usize, page.len());
        let next = if let Some(after) = info.get("cursors") {
            kinds.push("after");
            after["after"].as_str().unwrap().to_owned()
        } else {
            kinds.push("cursor");
            info.get("cursor")
                .map(|c| c.as_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        events.extend(page);
        if next.is_empty() {
            break;
        }
        cursor = Some(next);
        assert!(kinds.len() < 1000, "cursor loop");
    }
    let _ = style;
    (events, kinds)
}

#[tokio::test]
async fn v2_cursor_paging_covers_every_id_once_in_each_style() {
    let since = t0() + TimeDelta::minutes(5);
    let before = t1() - TimeDelta::minutes(5);
    let c = client();
    for style in [
        CursorStyle::After,
        CursorStyle::Cursor,
        CursorStyle::Alternate,
    ] {
        let sim = base()
            .span(t0(), t1(), 1000)
            .bursts(0.05, 80)
            .cursor_style(style)
            .build()
            .unwrap()
            .spawn()
            .await
            .unwrap();
        let expected = sim.visible_ids_in("acc1", since, before);
        assert!(expected.len() > 700);
        for dir in ["asc", "desc", ""] {
            let url = format!(
                "{}/accounts/acc1/logs/audit?since={}&before={}&direction={dir}",
                sim.base_url(),
                q(since),
                q(before)
            );
            let url = url.trim_end_matches("&direction=").to_owned();
            let (events, kinds) = v2_walk(&c, &url, style, 37).await;
            let ids = ids_of(&events);
            let unique: HashSet<&String> = ids.iter().collect();
            assert_eq!(unique.len(), ids.len(), "{style} {dir}: duplicate id");
            assert_eq!(sorted(ids.clone()), expected, "{style} {dir}");
            let times: Vec<_> = events
                .iter()
                .map(|e| ts(e["action"]["time"].as_str().unwrap()))
                .collect();
            let ascending = dir == "asc";
            assert!(
                times.windows(2).all(|w| if ascending {
                    w[0] <= w[1]
                } else {
                    w[0] >= w[1]
                }),
                "{style} {dir}: order"
            );
            assert_eq!(kinds.len(), expected.len().div_ceil(37));
            match style {
                CursorStyle::After => assert!(kinds.iter().all(|k| *k == "after")),
                CursorStyle::Cursor => assert!(kinds.iter().all(|k| *k == "cursor")),
                CursorStyle::Alternate => {
                    for (i, k) in kinds.iter().enumerate() {
                        assert_eq!(*k, if i % 2 == 0 { "after" } else { "cursor" });
                    }
                }
            }
        }
        sim.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn v1_and_v2_serve_the_same_events() {
    let sim = base()
        .span(t0(), t1(), 500)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let v1 = get(
        &c,
        &format!(
            "{}/accounts/acc1/audit_logs?per_page=1000&direction=asc",
            sim.base_url()
        ),
        "tok",
    )
    .await
    .events();
    let v2 = get(
        &c,
        &format!(
            "{}/accounts/acc1/logs/audit?since={}&before={}&limit=1000&direction=asc",
            sim.base_url(),
            q(t0()),
            q(t1())
        ),
        "tok",
    )
    .await
    .events();
    assert_eq!(ids_of(&v1), ids_of(&v2));
    for (a, b) in v1.iter().zip(&v2) {
        assert_eq!(a["when"], b["action"]["time"]);
        assert_eq!(b["account"]["id"], "acc1");
        let result = if a["action"]["result"] == true {
            "success"
        } else {
            "failure"
        };
        assert_eq!(b["action"]["result"], result);
    }
    // Some fields vary as in production: IPv6 actors, "unknown" IPs, missing optional
    // fields and non-ASCII metadata.
    let ips: Vec<&str> = v1
        .iter()
        .filter_map(|e| e["actor"]["ip"].as_str())
        .collect();
    assert!(ips.iter().any(|ip| ip.contains(':')));
    assert!(ips.contains(&"unknown"));
    assert!(v1.iter().any(|e| e["actor"].get("ip").is_none()));
    assert!(v1.iter().any(|e| e.get("interface").is_none()));
    assert!(v1.iter().any(|e| !e.to_string().is_ascii()));
    let whens: Vec<&str> = v1.iter().map(|e| e["when"].as_str().unwrap()).collect();
    assert!(whens.iter().any(|w| !w.contains('.')));
    assert!(whens.iter().any(|w| w.contains('.')));
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn auth_failures_and_token_verify() {
    let sim = Simulator::builder()
        .seed(1)
        .account("acc1")
        .token("tok")
        .token_without_audit_permission("readonly-tok")
        .legacy_key("admin@example.com", "globalkey")
        .clock(cflogs_sim::SimClock::fixed(t1()))
        .span(t0(), t1(), 20)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let url = format!("{}/accounts/acc1/audit_logs", sim.base_url());

    let r = send(c.get(&url)).await;
    assert_eq!((r.status, r.error_code()), (403, 10000));
    let r = get(&c, &url, "wrong").await;
    assert_eq!((r.status, r.error_code()), (403, 10000));
    let r = send(c.get(&url).header("authorization", "Basic dG9rOg==")).await;
    assert_eq!((r.status, r.error_code()), (401, 10000));
    let r = send(c.get(&url).header("authorization", "Bearer")).await;
    assert_eq!((r.status, r.error_code()), (401, 10000));
    let r = get(&c, &url, "readonly-tok").await;
    assert_eq!((r.status, r.error_code()), (403, 9109));
    assert_eq!(
        r.json()["errors"][0]["message"],
        "Unauthorized to access requested resource"
    );
    // Unknown accounts.
    let r = get(
        &c,
        &format!(
            "{}/accounts/0123456789abcdef0123456789abcdef/audit_logs",
            sim.base_url()
        ),
        "tok",
    )
    .await;
    assert_eq!((r.status, r.error_code()), (403, 9109));
    let r = get(
        &c,
        &format!("{}/accounts/nope/logs/audit", sim.base_url()),
        "tok",
    )
    .await;
    assert_eq!((r.status, r.error_code()), (404, 7003));
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Could not route to /accounts/nope/logs/audit")
    );
    // Legacy auth.
    let legacy = |email: &str, key: &str| {
        c.get(&url)
            .header("x-auth-email", email)
            .header("x-auth-key", key)
    };
    let r = send(legacy("admin@example.com", "globalkey")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.events().len(), 20);
    let r = send(legacy("admin@example.com", "wrong")).await;
    assert_eq!((r.status, r.error_code()), (403, 10000));
    let r = send(c.get(&url).header("x-auth-email", "admin@example.com")).await;
    assert_eq!((r.status, r.error_code()), (403, 10000));
    // The good token works.
    assert_eq!(get(&c, &url, "tok").await.status, 200);

    // Token verification.
    let verify = format!("{}/user/tokens/verify", sim.base_url());
    for tok in ["tok", "readonly-tok"] {
        let r = get(&c, &verify, tok).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["result"]["status"], "active");
        assert_eq!(v["result"]["id"].as_str().unwrap().len(), 32);
    }
    let r = get(&c, &verify, "wrong").await;
    assert_eq!((r.status, r.error_code()), (403, 10000));

    // Unknown route under the API.
    let r = get(&c, &format!("{}/zones", sim.base_url()), "tok").await;
    assert_eq!((r.status, r.error_code()), (404, 7000));

    let st = sim.stats();
    assert_eq!(st.auth_failures, 7);
    assert_eq!(st.permission_failures, 3);
    assert_eq!(st.verify_requests, 3);
    assert_eq!(st.other_requests, 1);
    assert_eq!(st.status_count(200), 4);
    assert_eq!(st.requests_total, 15);
    sim.shutdown().await.unwrap();
}

#[tokio::test]
async fn control_endpoints_match_the_oracle() {
    let sim = base()
        .span(t0(), t1(), 300)
        .malformed_rate(0.05)
        .late_fraction(0.2)
        .build()
        .unwrap()
        .spawn()
        .await
        .unwrap();
    let c = client();
    let ctl = sim.control_url();

    let ids: Vec<String> = send(c.get(format!("{ctl}/visible?account=acc1")))
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, sim.visible_ids("acc1"));
    assert!(ids.len() > 200);

    let (s, b) = (t0() + TimeDelta::minutes(10), t0() + TimeDelta::minutes(20));
    let r = send(c.get(format!(
        "{ctl}/visible?account=acc1&since={}&before={}",
        q(s),
        q(b)
    )))
    .await;
    let in_range: Vec<String> = serde_json::from_value(r.json()).unwrap();
    assert_eq!(in_range, sim.visible_ids_in("acc1", s, b));
    assert!(in_range.len() < ids.len());

    let mal = send(c.get(format!("{ctl}/malformed?account=acc1")))
        .await
        .json();
    let oracle = sim.malformed("acc1");
    assert!(!oracle.is_empty());
    assert_eq!(mal.as_array().unwrap().len(), oracle.len());
    assert_eq!(mal[0]["v1"].as_str().unwrap(), oracle[0].v1);

    assert_eq!(
        send(c.get(format!("{ctl}/visible?account=zzz")))
            .await
            .status,
        404
    );
    assert_eq!(send(c.get(format!("{ctl}/visible"))).await.status, 400);

    // One API call, then stats over HTTP.
    get(
        &c,
        &format!("{}/accounts/acc1/audit_logs", sim.base_url()),
        "tok",
    )
    .await;
    let st = send(c.get(format!("{ctl}/stats"))).await.json();
    assert_eq!(st["requests_total"], 1);
    assert_eq!(st["by_status"]["200"], 1);
    assert_eq!(st["v1_requests"], 1);

    // Clock control.
    let r = send(c.post(format!("{ctl}/clock?advance_secs=60"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.clock().now(), t1() + TimeDelta::seconds(60));
    assert_eq!(r.json()["fixed"], true);
    let r = send(c.post(format!("{ctl}/clock?set={}", q(t0())))).await;
    assert_eq!(r.status, 200);
    assert_eq!(sim.clock().now(), t0());
    assert!(sim.visible_ids("acc1").is_empty());
    assert_eq!(
        send(c.get(format!("{ctl}/clock"))).await.json()["fixed"],
        true
    );
    assert_eq!(send(c.post(format!("{ctl}/clock"))).await.status, 400);
    // Control calls are not counted.
    assert_eq!(sim.stats().requests_total, 1);
    sim.shutdown().await.unwrap();
}
