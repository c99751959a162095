//! Shared helpers for the integration tests: a plain HTTP client against the spawned
//! simulator on 127.0.0.1.

#![allow(dead_code)]

use std::time::Duration;

use cflogs_sim::{SimClock, Simulator, SimulatorBuilder};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

/// Start of the standard test span.
pub fn t0() -> DateTime<Utc> {
    ts("2026-11-20T00:00:00Z")
}

/// End of the standard test span (one hour after `t0`).
pub fn t1() -> DateTime<Utc> {
    t0() + TimeDelta::hours(1)
}

pub fn ts(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// A builder with one account `acc1`, token `tok`, a frozen clock at `t1()` and no rate
/// limit: tests add what they exercise.
pub fn base() -> SimulatorBuilder {
    Simulator::builder()
        .seed(7)
        .account("acc1")
        .token("tok")
        .clock(SimClock::fixed(t1()))
        .no_rate_limit()
}

pub fn client() -> reqwest::Client {
    // In a workspace build, reqwest's features are unified with the adapters', which use rustls
    // without a built-in provider: name one, or building a client panics.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A fully read response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "invalid JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The first error code of a Cloudflare error envelope.
    pub fn error_code(&self) -> i64 {
        let v = self.json();
        assert_eq!(v["success"], Value::Bool(false), "{v}");
        v["errors"][0]["code"].as_i64().unwrap()
    }

    /// `result` as a list of events.
    pub fn events(&self) -> Vec<Value> {
        let v = self.json();
        assert_eq!(v["success"], Value::Bool(true), "{v}");
        v["result"].as_array().unwrap().clone()
    }
}

pub async fn send(req: reqwest::RequestBuilder) -> Resp {
    let resp = req.send().await.expect("request failed");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body read failed").to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// GET `url` with a bearer token.
pub async fn get(c: &reqwest::Client, url: &str, token: &str) -> Resp {
    send(c.get(url).bearer_auth(token)).await
}

/// Percent-encodes a timestamp for a query string.
pub fn q(t: DateTime<Utc>) -> String {
    cflogs_sim::format_time(t)
        .replace('+', "%2B")
        .replace(':', "%3A")
}

pub fn ids_of(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().expect("event without id").to_owned())
        .collect()
}

pub fn v1_when(e: &Value) -> DateTime<Utc> {
    ts(e["when"].as_str().unwrap())
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
