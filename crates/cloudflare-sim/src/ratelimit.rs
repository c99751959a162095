//! Sliding-window rate limiting per credential, with a block once the limit is exceeded.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};

use crate::config::RateLimitConfig;

/// Outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Allowed; `remaining` requests are left in the window, which frees its oldest slot
    /// in `reset_secs`.
    Allow { remaining: u32, reset_secs: u64 },
    /// This request exceeded the limit and started a block of `block_secs`.
    Exceeded { block_secs: u64 },
    /// The credential is blocked for `retry_after` more seconds.
    Blocked { retry_after: u64 },
}

#[derive(Debug, Default)]
struct PrincipalState {
    hits: VecDeque<DateTime<Utc>>,
    blocked_until: Option<DateTime<Utc>>,
}

/// Rate limiter state for every credential.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    cfg: RateLimitConfig,
    window: TimeDelta,
    block: TimeDelta,
    states: HashMap<String, PrincipalState>,
}

fn ceil_secs(d: TimeDelta) -> u64 {
    let us = d.num_microseconds().unwrap_or(i64::MAX).max(0);
    u64::try_from(us).unwrap_or(0).div_ceil(1_000_000)
}

impl RateLimiter {
    pub fn new(cfg: RateLimitConfig) -> Self {
        Self {
            cfg,
            window: TimeDelta::from_std(cfg.window).unwrap_or(TimeDelta::MAX),
            block: TimeDelta::from_std(cfg.block).unwrap_or(TimeDelta::MAX),
            states: HashMap::new(),
        }
    }

    pub fn config(&self) -> RateLimitConfig {
        self.cfg
    }

    /// Counts one request of `key` at `now` and decides its fate.
    ///
    /// Blocked requests are not added to the window. When a block starts the window is
    /// cleared, so the credential starts afresh once the block is over.
    pub fn check(&mut self, key: &str, now: DateTime<Utc>) -> Decision {
        let st = self.states.entry(key.to_owned()).or_default();
        if let Some(until) = st.blocked_until {
            if now < until {
                return Decision::Blocked {
                    retry_after: ceil_secs(until - now).max(1),
                };
            }
            st.blocked_until = None;
        }
        while st.hits.front().is_some_and(|h| *h + self.window <= now) {
            st.hits.pop_front();
        }
        if st.hits.len() >= self.cfg.limit as usize {
            st.hits.clear();
            let block_secs = ceil_secs(self.block);
            if self.block > TimeDelta::zero() {
                st.blocked_until = Some(now + self.block);
            }
            return Decision::Exceeded { block_secs };
        }
        st.hits.push_back(now);
        let remaining = self.cfg.limit - st.hits.len() as u32;
        let reset_secs = st
            .hits
            .front()
            .map_or(0, |oldest| ceil_secs(*oldest + self.window - now));
        Decision::Allow {
            remaining,
            reset_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn window_block_and_recovery() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            limit: 3,
            window: Duration::from_secs(10),
            block: Duration::from_secs(5),
        });
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(
            rl.check("a", t0),
            Decision::Allow {
                remaining: 2,
                reset_secs: 10
            }
        );
        assert_eq!(
            rl.check("a", t0 + TimeDelta::seconds(1)),
            Decision::Allow {
                remaining: 1,
                reset_secs: 9
            }
        );
        // Another credential is independent.
        assert!(matches!(
            rl.check("b", t0),
            Decision::Allow { remaining: 2, .. }
        ));
        assert!(matches!(
            rl.check("a", t0 + TimeDelta::seconds(2)),
            Decision::Allow { remaining: 0, .. }
        ));
        assert_eq!(
            rl.check("a", t0 + TimeDelta::seconds(3)),
            Decision::Exceeded { block_secs: 5 }
        );
        assert_eq!(
            rl.check("a", t0 + TimeDelta::milliseconds(3500)),
            Decision::Blocked { retry_after: 5 }
        );
        assert_eq!(
            rl.check("a", t0 + TimeDelta::milliseconds(7900)),
            Decision::Blocked { retry_after: 1 }
        );
        assert!(matches!(
            rl.check("a", t0 + TimeDelta::seconds(8)),
            Decision::Allow { remaining: 2, .. }
        ));
    }

    #[test]
    fn window_slides() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            limit: 2,
            window: Duration::from_secs(10),
            block: Duration::from_secs(5),
        });
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        rl.check("a", t0);
        rl.check("a", t0 + TimeDelta::seconds(5));
        // The first hit expires at t0+10.
        assert!(matches!(
            rl.check("a", t0 + TimeDelta::seconds(10)),
            Decision::Allow { remaining: 0, .. }
        ));
    }
}
