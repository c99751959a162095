//! Deterministic generation of audit events and their v1 / v2 serializations.
//!
//! Each event is generated once from a seeded [`StdRng`] and serialized once per API
//! version; the bytes are kept and served verbatim, so a re-fetch returns identical bytes.

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::config::{AccountSpec, GenParams};
use crate::json::Obj;

/// How a malformed event is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    /// The event has no `id` field (v1 and v2).
    MissingId,
    /// The event has no time: no `when` (v1) / no `action.time` (v2).
    MissingTime,
    /// The time field holds `"yesterday"`.
    TimeNotADate,
    /// The time field holds the impossible `"2026-13-45T99:00:00Z"`.
    TimeOutOfRange,
}

/// One generated event with its served bytes.
#[derive(Debug, Clone)]
pub(crate) struct StoredEvent {
    /// Internal id; it is also the served id unless the event is `MissingId`.
    pub id: String,
    pub when: DateTime<Utc>,
    pub visible_at: DateTime<Utc>,
    /// v1 `actor.type`.
    pub actor_type: &'static str,
    pub malformed: Option<MalformedKind>,
    pub v1: String,
    pub v2: String,
}

impl StoredEvent {
    pub fn key(&self) -> (i64, String) {
        (self.when.timestamp_micros(), self.id.clone())
    }
}

/// Per-account constants used in events.
#[derive(Debug, Clone)]
pub(crate) struct AccountInfo {
    pub id: String,
    pub name: String,
    pub owner_id: String,
    /// Stable 64-bit hash of the id, mixed into every seed of the account.
    pub hash: u64,
}

impl AccountInfo {
    pub fn new(spec: &AccountSpec, seed: u64) -> Self {
        let hash = fnv1a(spec.id.as_bytes());
        let mut rng = StdRng::seed_from_u64(mix(seed, mix(hash, 0x0a11_ce00)));
        Self {
            id: spec.id.clone(),
            name: spec.name.clone(),
            owner_id: hex32(&mut rng),
            hash,
        }
    }
}

/// FNV-1a, a hash that is stable across Rust versions and platforms.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64-style mixing of two words into one seed.
pub(crate) fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn hex_n(rng: &mut StdRng, n: usize) -> String {
    let mut s = format!("{:032x}", rng.random::<u128>());
    s.truncate(n.min(32));
    s
}

pub(crate) fn hex32(rng: &mut StdRng) -> String {
    hex_n(rng, 32)
}

/// A 32-hex id that is a function of `parts` (and the account): the same actor, token, zone or
/// resource keeps its id across events, as in a real account.
fn stable_hex32(acc: &AccountInfo, parts: &[&str]) -> String {
    let mut h = acc.hash;
    for part in parts {
        h = mix(h, fnv1a(part.as_bytes()));
    }
    format!("{:016x}{:016x}", mix(h, 1), mix(h, 2))
}

/// How many distinct resources an account's events touch.
const RESOURCES_PER_ACCOUNT: u32 = 400;

fn uuid(rng: &mut StdRng) -> String {
    let mut b: [u8; 16] = rng.random::<u128>().to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = format!("{:032x}", u128::from_be_bytes(b));
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Formats a timestamp the way the audit APIs do: no fraction for whole seconds,
/// milliseconds when they suffice, else microseconds; always `Z`.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    let micros = t.timestamp_subsec_micros();
    let fmt = if micros == 0 {
        "%Y-%m-%dT%H:%M:%SZ"
    } else if micros.is_multiple_of(1000) {
        "%Y-%m-%dT%H:%M:%S%.3fZ"
    } else {
        "%Y-%m-%dT%H:%M:%S%.6fZ"
    };
    t.format(fmt).to_string()
}

fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `n` timestamps in `[from_us, to_us)` (micros), sorted, with bursts of equal values and a
/// mix of second / millisecond / microsecond precision.
fn gen_times(rng: &mut StdRng, from_us: i64, to_us: i64, n: u64, p: &GenParams) -> Vec<i64> {
    let mut out = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
    let mut remaining = n;
    while remaining > 0 {
        let mut t = rng.random_range(from_us..to_us);
        t = match rng.random_range(0..10u8) {
            0..=3 => t - t.rem_euclid(1_000_000),
            4..=5 => t - t.rem_euclid(1_000),
            _ => t,
        };
        t = t.max(from_us);
        let burst = p.burst_max >= 2 && rng.random_bool(p.burst_probability);
        let size = if burst {
            u64::from(rng.random_range(2..=p.burst_max)).min(remaining)
        } else {
            1
        };
        for _ in 0..size {
            out.push(t);
        }
        remaining -= size;
    }
    out.sort_unstable();
    out
}

/// Span events of one account: `count` events over `[from, to)`.
pub(crate) fn gen_span(
    seed: u64,
    span_index: u64,
    account: &AccountInfo,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    count: u64,
    p: &GenParams,
) -> Vec<StoredEvent> {
    let mut rng = StdRng::seed_from_u64(mix(mix(seed, account.hash), 0x5a0a_0000 + span_index));
    let times = gen_times(
        &mut rng,
        from.timestamp_micros(),
        to.timestamp_micros(),
        count,
        p,
    );
    times
        .into_iter()
        .map(|t| gen_event(&mut rng, account, from_micros(t), p))
        .collect()
}

/// Live events of one account for the second starting at `sec` (unix seconds).
pub(crate) fn gen_live_second(
    seed: u64,
    account: &AccountInfo,
    sec: i64,
    rate: f64,
    p: &GenParams,
) -> Vec<StoredEvent> {
    let mut rng = StdRng::seed_from_u64(mix(mix(seed, account.hash), mix(0x11fe, sec as u64)));
    let whole = rate.floor();
    // `whole` is at most 100_000 (validated), so the conversion is exact.
    let mut n = whole as u64;
    let frac = rate - whole;
    if frac > 0.0 && rng.random_bool(frac.min(1.0)) {
        n += 1;
    }
    if n == 0 {
        return Vec::new();
    }
    let from_us = sec.saturating_mul(1_000_000);
    let times = gen_times(&mut rng, from_us, from_us + 1_000_000, n, p);
    times
        .into_iter()
        .map(|t| gen_event(&mut rng, account, from_micros(t), p))
        .collect()
}

struct ActionKind {
    v1: &'static str,
    v2: &'static str,
    product: &'static str,
    resource_type: &'static str,
    method: &'static str,
    path: &'static str,
    info: &'static str,
    zoned: bool,
}

const ACTIONS: &[ActionKind] = &[
    ActionKind {
        v1: "login",
        v2: "view",
        product: "dash",
        resource_type: "account.login",
        method: "POST",
        path: "/login",
        info: "User logged in",
        zoned: false,
    },
    ActionKind {
        v1: "token_create",
        v2: "create",
        product: "api_tokens",
        resource_type: "api_token",
        method: "POST",
        path: "/user/tokens",
        info: "API token created",
        zoned: false,
    },
    ActionKind {
        v1: "token_delete",
        v2: "delete",
        product: "api_tokens",
        resource_type: "api_token",
        method: "DELETE",
        path: "/user/tokens/{rid}",
        info: "API token deleted",
        zoned: false,
    },
    ActionKind {
        v1: "dns_record_update",
        v2: "update",
        product: "dns",
        resource_type: "dns.record",
        method: "PATCH",
        path: "/zones/{zone}/dns_records/{rid}",
        info: "DNS record updated",
        zoned: true,
    },
    ActionKind {
        v1: "dns_record_create",
        v2: "create",
        product: "dns",
        resource_type: "dns.record",
        method: "POST",
        path: "/zones/{zone}/dns_records",
        info: "DNS record created",
        zoned: true,
    },
    ActionKind {
        v1: "waf_rule_update",
        v2: "update",
        product: "waf",
        resource_type: "waf.rule",
        method: "PUT",
        path: "/zones/{zone}/firewall/rules/{rid}",
        info: "WAF rule updated",
        zoned: true,
    },
    ActionKind {
        v1: "change_setting",
        v2: "update",
        product: "zone_settings",
        resource_type: "zone.setting",
        method: "PATCH",
        path: "/zones/{zone}/settings/min_tls_version",
        info: "Zone setting changed",
        zoned: true,
    },
    ActionKind {
        v1: "member_invite",
        v2: "create",
        product: "members",
        resource_type: "account.member",
        method: "POST",
        path: "/accounts/{acc}/members",
        info: "Member invited",
        zoned: false,
    },
    ActionKind {
        v1: "purge_cache",
        v2: "create",
        product: "cache",
        resource_type: "zone",
        method: "POST",
        path: "/zones/{zone}/purge_cache",
        info: "Cache purged",
        zoned: true,
    },
    ActionKind {
        v1: "worker_deploy",
        v2: "update",
        product: "workers",
        resource_type: "workers.script",
        method: "PUT",
        path: "/accounts/{acc}/workers/scripts/edge-router",
        info: "Worker script deployed",
        zoned: false,
    },
];

const ZONES: &[&str] = &[
    "example.com",
    "example.net",
    "shop.example.org",
    "bücher.example",
    "例え.テスト",
    "café-☕.example.com",
    "пример.example",
];

const EMAILS: &[&str] = &[
    "a@example.com",
    "ops@example.net",
    "jürgen@example.org",
    "security-team@example.com",
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
    "curl/8.5.0",
    "Terraform/1.9.8 terraform-provider-cloudflare/4.45.0",
    "cloudflare-go/v4",
];

fn gen_ip(rng: &mut StdRng) -> Option<String> {
    match rng.random_range(0..100u8) {
        0..=69 => {
            let net = pick(rng, &["192.0.2", "198.51.100", "203.0.113"]);
            Some(format!("{net}.{}", rng.random_range(1..255u8)))
        }
        70..=91 => Some(format!(
            "2001:db8:{:x}::{:x}",
            rng.random_range(0..0xffffu32),
            rng.random_range(1..0xffffu32)
        )),
        92..=94 => Some("unknown".to_owned()),
        _ => None,
    }
}

/// Generates one event at `when`: visibility delay, malformation and both serializations.
fn gen_event(
    rng: &mut StdRng,
    acc: &AccountInfo,
    when: DateTime<Utc>,
    p: &GenParams,
) -> StoredEvent {
    let id = uuid(rng);

    // Visibility delay.
    let max_late_us = i64::try_from(p.max_late.as_micros()).unwrap_or(i64::MAX);
    let visible_at = if max_late_us > 0 && rng.random_bool(p.late_fraction) {
        when + TimeDelta::microseconds(rng.random_range(1..=max_late_us))
    } else {
        when
    };

    // Malformation.
    let malformed = if rng.random_bool(p.malformed_rate) {
        Some(match rng.random_range(0..4u8) {
            0 => MalformedKind::MissingId,
            1 => MalformedKind::MissingTime,
            2 => MalformedKind::TimeNotADate,
            _ => MalformedKind::TimeOutOfRange,
        })
    } else {
        None
    };

    let action = pick(rng, ACTIONS);
    let ok = rng.random_bool(0.93);
    let actor_type: &'static str = match rng.random_range(0..100u8) {
        0..=64 => "user",
        65..=74 => "admin",
        75..=92 => "Cloudflare",
        _ => "system", // undocumented value
    };
    let v2_actor_type = match actor_type {
        "user" => "user",
        "admin" => "cloudflare_admin",
        "Cloudflare" => "account",
        _ => "system",
    };
    let human = matches!(actor_type, "user" | "admin");
    let email = if human {
        Some(*pick(rng, EMAILS))
    } else {
        None
    };
    let actor_id = stable_hex32(acc, &["actor", actor_type, email.unwrap_or("")]);
    let ip = if human {
        gen_ip(rng)
    } else if rng.random_bool(0.5) {
        Some("unknown".to_owned())
    } else {
        None
    };
    let interface = match rng.random_range(0..10u8) {
        0..=4 => Some("API"),
        5..=8 => Some("UI"),
        _ => None,
    };
    let context = match interface {
        Some("API") => {
            if rng.random_bool(0.8) {
                "api_token"
            } else {
                "api_key"
            }
        }
        Some(_) => "dash",
        None => "oauth",
    };
    let token = if context == "api_token" {
        Some((
            stable_hex32(acc, &["token", action.product]),
            format!("{} automation", action.product),
        ))
    } else {
        None
    };
    let zone = if action.zoned || rng.random_bool(0.2) {
        let name = *pick(rng, ZONES);
        Some((stable_hex32(acc, &["zone", name]), name))
    } else {
        None
    };
    let resource_id = if rng.random_bool(0.9) {
        let n = rng.random_range(0..RESOURCES_PER_ACCOUNT).to_string();
        Some(stable_hex32(acc, &["resource", action.product, &n]))
    } else {
        None
    };
    let (old_value, new_value) = if action.v2 == "update" && rng.random_bool(0.7) {
        let old = rng.random_range(0..3u8);
        let new = (old + 1) % 3;
        let vals = ["1.0", "1.2", "1.3"];
        (
            Some(format!("{{\"value\":\"{}\"}}", vals[usize::from(old)])),
            Some(format!("{{\"value\":\"{}\"}}", vals[usize::from(new)])),
        )
    } else {
        (None, None)
    };
    let ray = format!(
        "{}-{}",
        hex_n(rng, 16),
        pick(rng, &["SJC", "FRA", "NRT", "GRU"])
    );
    let user_agent = *pick(rng, USER_AGENTS);
    let status_code: u16 = if ok {
        if action.method == "POST" { 201 } else { 200 }
    } else {
        *pick(rng, &[400u16, 403, 409])
    };
    let uri = action
        .path
        .replace("{acc}", &acc.id)
        .replace("{rid}", resource_id.as_deref().unwrap_or("unknown"))
        .replace("{zone}", zone.as_ref().map_or("unknown", |z| z.0.as_str()));
    let uri = format!("/client/v4{uri}");

    let bad_time = match malformed {
        Some(MalformedKind::TimeNotADate) => Some("yesterday"),
        Some(MalformedKind::TimeOutOfRange) => Some("2026-13-45T99:00:00Z"),
        _ => None,
    };
    let time_text = match (malformed, bad_time) {
        (_, Some(bad)) => Some(bad.to_owned()),
        (Some(MalformedKind::MissingTime), None) => None,
        _ => Some(format_time(when)),
    };
    let served_id = (malformed != Some(MalformedKind::MissingId)).then_some(id.as_str());
    let note = rng.random_bool(0.3);
    let has_metadata = rng.random_bool(0.9);
    let zone_name = zone.as_ref().map(|z| z.1);
    let resource_id = resource_id.as_deref();

    // ---- v1 (keys in sorted order) ----
    let mut v1 = String::with_capacity(512);
    let mut o = Obj::new(&mut v1);
    o.obj("action", |a| {
        a.str("info", action.info)
            .bool("result", ok)
            .str("type", action.v1);
    });
    o.obj("actor", |a| {
        a.opt_str("email", email)
            .str("id", &actor_id)
            .opt_str("ip", ip.as_deref())
            .str("type", actor_type);
    });
    o.opt_str("id", served_id);
    o.opt_str("interface", interface);
    if has_metadata {
        o.obj("metadata", |m| {
            if note {
                m.str("note", "modifié par l'équipe — ✓");
            }
            m.opt_str("zone_name", zone_name);
        });
    }
    o.opt_str("newValue", new_value.as_deref());
    o.opt_str("oldValue", old_value.as_deref());
    o.obj("owner", |w| {
        w.str("id", &acc.owner_id);
    });
    o.obj("resource", |r| {
        r.opt_str("id", resource_id)
            .str("type", action.resource_type);
    });
    o.opt_str("when", time_text.as_deref());
    o.end();

    // ---- v2 (keys in sorted order) ----
    let mut v2 = String::with_capacity(1024);
    let mut o = Obj::new(&mut v2);
    o.obj("account", |a| {
        a.str("id", &acc.id).str("name", &acc.name);
    });
    o.obj("action", |a| {
        a.str("description", action.info)
            .str("result", if ok { "success" } else { "failure" })
            .opt_str("time", time_text.as_deref())
            .str("type", action.v2);
    });
    o.obj("actor", |a| {
        a.str("context", context)
            .opt_str("email", email)
            .str("id", &actor_id)
            .opt_str("ip_address", ip.as_deref());
        if let Some((tid, tname)) = &token {
            a.str("token_id", tid).str("token_name", tname);
        }
        a.str("type", v2_actor_type);
    });
    o.opt_str("id", served_id);
    o.obj("raw", |r| {
        r.str("cf_ray_id", &ray)
            .str("method", action.method)
            .num("status_code", u64::from(status_code))
            .str("uri", &uri)
            .str("user_agent", user_agent);
    });
    o.obj("resource", |r| {
        r.opt_str("id", resource_id)
            .str("product", action.product)
            .obj("request", |q| {
                q.opt_str("value", new_value.as_deref());
            })
            .obj("response", |q| {
                q.str_or_null("result_id", resource_id).bool("success", ok);
            })
            .obj("scope", |s| match &zone {
                Some((zid, _)) => {
                    s.str("id", zid).str("type", "zones");
                }
                None => {
                    s.str("id", &acc.id).str("type", "accounts");
                }
            })
            .str("type", action.resource_type);
    });
    if let Some((zid, zname)) = &zone {
        o.obj("zone", |z| {
            z.str("id", zid).str("name", zname);
        });
    }
    o.end();

    StoredEvent {
        id,
        when,
        visible_at,
        actor_type,
        malformed,
        v1,
        v2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use std::time::Duration;

    fn params() -> GenParams {
        GenParams {
            late_fraction: 0.1,
            max_late: Duration::from_secs(120),
            malformed_rate: 0.05,
            burst_probability: 0.05,
            burst_max: 50,
        }
    }

    fn acc() -> AccountInfo {
        AccountInfo::new(
            &AccountSpec {
                id: "acc1".into(),
                name: "Acc".into(),
            },
            7,
        )
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn formats_time_with_varying_precision() {
        assert_eq!(
            format_time(t("2026-11-20T10:00:00Z")),
            "2026-11-20T10:00:00Z"
        );
        assert_eq!(
            format_time(t("2026-11-20T10:00:00.120Z")),
            "2026-11-20T10:00:00.120Z"
        );
        assert_eq!(
            format_time(t("2026-11-20T10:00:00.123456Z")),
            "2026-11-20T10:00:00.123456Z"
        );
    }

    #[test]
    fn span_is_deterministic_sorted_and_in_range() {
        let (from, to) = (t("2026-11-20T00:00:00Z"), t("2026-11-20T01:00:00Z"));
        let a = gen_span(7, 0, &acc(), from, to, 2000, &params());
        let b = gen_span(7, 0, &acc(), from, to, 2000, &params());
        assert_eq!(a.len(), 2000);
        assert!(a.iter().zip(&b).all(|(x, y)| x.v1 == y.v1 && x.v2 == y.v2));
        assert!(a.windows(2).all(|w| w[0].when <= w[1].when));
        assert!(a.iter().all(|e| e.when >= from && e.when < to));
        assert!(a.iter().all(|e| e.visible_at >= e.when
            && e.visible_at <= e.when + TimeDelta::seconds(120)));
        let c = gen_span(8, 0, &acc(), from, to, 2000, &params());
        assert_ne!(a[0].id, c[0].id);
        // Bursts exist.
        assert!(a.windows(2).any(|w| w[0].when == w[1].when));
        // Each precision shows up.
        let texts: Vec<String> = a.iter().map(|e| format_time(e.when)).collect();
        assert!(texts.iter().any(|s| s.len() == 20));
        assert!(texts.iter().any(|s| s.len() == 24));
        assert!(texts.iter().any(|s| s.len() == 27));
    }

    #[test]
    fn malformed_events_are_broken_as_declared() {
        let (from, to) = (t("2026-11-20T00:00:00Z"), t("2026-11-20T01:00:00Z"));
        let evs = gen_span(3, 0, &acc(), from, to, 4000, &params());
        let mut kinds = std::collections::HashSet::new();
        for e in &evs {
            let v1: Value = serde_json::from_str(&e.v1).unwrap();
            let v2: Value = serde_json::from_str(&e.v2).unwrap();
            match e.malformed {
                None => {
                    assert_eq!(v1["id"], json!(e.id));
                    assert_eq!(v2["id"], json!(e.id));
                    assert_eq!(v1["when"], json!(format_time(e.when)));
                    assert_eq!(v2["action"]["time"], json!(format_time(e.when)));
                }
                Some(k) => {
                    kinds.insert(k);
                    match k {
                        MalformedKind::MissingId => {
                            assert!(v1.get("id").is_none() && v2.get("id").is_none());
                        }
                        MalformedKind::MissingTime => {
                            assert!(v1.get("when").is_none());
                            assert!(v2["action"].get("time").is_none());
                        }
                        MalformedKind::TimeNotADate => assert_eq!(v1["when"], "yesterday"),
                        MalformedKind::TimeOutOfRange => {
                            assert_eq!(v2["action"]["time"], "2026-13-45T99:00:00Z")
                        }
                    }
                }
            }
        }
        assert_eq!(kinds.len(), 4);
    }

    #[test]
    fn serialization_is_canonical_json() {
        // Keys sorted and compact: identical to serde_json's own rendering.
        let (from, to) = (t("2026-11-20T00:00:00Z"), t("2026-11-20T01:00:00Z"));
        for e in gen_span(5, 0, &acc(), from, to, 500, &params()) {
            for raw in [&e.v1, &e.v2] {
                let v: Value = serde_json::from_str(raw).unwrap();
                assert_eq!(&serde_json::to_string(&v).unwrap(), raw);
            }
        }
    }

    #[test]
    fn live_second_rate() {
        let total: usize = (0..200)
            .map(|s| gen_live_second(1, &acc(), 1_800_000_000 + s, 2.5, &params()).len())
            .sum();
        assert!((400..=600).contains(&total), "{total}");
        let a = gen_live_second(1, &acc(), 1_800_000_000, 3.0, &params());
        let b = gen_live_second(1, &acc(), 1_800_000_000, 3.0, &params());
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].v1, b[0].v1);
        assert!(a.iter().all(|e| e.when.timestamp() == 1_800_000_000));
    }
}
