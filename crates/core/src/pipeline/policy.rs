//! How a pipeline plans its windows and batches.

use std::time::Duration;

use crate::domain::{BatchLimits, Timestamp};
use crate::error::{Error, Result};

/// How a pipeline plans windows and batches. Build it with [`Policy::new`] and adjust the
/// public fields; [`Pipeline::new`](crate::Pipeline::new) validates it.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Where a stream with no checkpoint starts: its initial watermark (`INITIAL_CHECKPOINT`).
    pub start_at: Timestamp,
    /// How far a read reaches back for records that became visible late: the overlap of
    /// audit-log windows, the ledger span of a bucket; unused by settled windows (see
    /// [`crate::cursors`]). For audit logs an event visible more than `lookback + settle_delay -
    /// poll_interval` after its time can be missed (see the architecture page).
    pub lookback: Duration,
    /// How far behind now a window ends.
    pub settle_delay: Duration,
    /// The longest time range one read covers.
    pub max_span: Duration,
    /// Caps on one batch.
    pub limits: BatchLimits,
    /// The wait between cycles once caught up (`POLL_INTERVAL_SECONDS`).
    pub poll_interval: Duration,
    /// Staged objects younger than this are never swept.
    pub sweep_min_age: Duration,
    /// The sweeper runs on the first cycle and then every this many cycles.
    pub sweep_every_cycles: u64,
    /// First retry delay after a transient failure; it doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

impl Policy {
    /// The defaults for audit logs, starting at `start_at`: lookback 5 min, settle delay 1 min,
    /// windows of at most 1 h, default [`BatchLimits`], poll every 60 s, sweep staged objects
    /// older than 1 h every 60 cycles, retries from 1 s to 5 min.
    pub fn new(start_at: Timestamp) -> Self {
        Self {
            start_at,
            lookback: Duration::from_secs(300),
            settle_delay: Duration::from_secs(60),
            max_span: Duration::from_secs(3600),
            limits: BatchLimits::default(),
            poll_interval: Duration::from_secs(60),
            sweep_min_age: Duration::from_secs(3600),
            sweep_every_cycles: 60,
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
        }
    }

    /// Checks the policy.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `max_span` is not longer than `lookback`, `poll_interval`,
    /// `retry_initial` or `sweep_every_cycles` is zero, `retry_max < retry_initial`, or a duration is beyond 10
    /// years.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: &str| Err(Error::invalid("pipeline policy", reason.to_owned()));
        let ten_years = Duration::from_secs(10 * 366 * 86_400);
        if self.max_span <= self.lookback {
            // Otherwise a window could end before the watermark and never move it.
            return bad("max_span must be longer than lookback");
        }
        if self.poll_interval.is_zero() {
            return bad("poll_interval must be positive (POLL_INTERVAL_SECONDS >= 1)");
        }
        if self.retry_initial.is_zero() || self.retry_max < self.retry_initial {
            return bad("retry_initial must be positive and at most retry_max");
        }
        if self.sweep_every_cycles == 0 {
            return bad("sweep_every_cycles must be at least 1");
        }
        for d in [
            self.lookback,
            self.settle_delay,
            self.max_span,
            self.poll_interval,
            self.sweep_min_age,
            self.retry_max,
        ] {
            if d > ten_years {
                return bad("durations must be below 10 years");
            }
        }
        Ok(())
    }

    /// Delay before retry number `failures` (1-based): exponential from `retry_initial`, capped
    /// at `retry_max`, with full jitter (`jitter` in `[0, 1)`), never below a tenth of the step.
    pub fn retry_delay(&self, failures: u32, jitter: f64) -> Duration {
        backoff(self.retry_initial, self.retry_max, failures, jitter)
    }
}

/// Delay number `failures` (1-based) of an exponential backoff from `initial`, capped at `max`,
/// with full jitter (`jitter` in `[0, 1)`), never below a tenth of the step: the one backoff of
/// the pipeline's retries and the supervisor's restarts.
pub(crate) fn backoff(initial: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    let step = initial.saturating_mul(1u32 << doublings).min(max);
    step.mul_f64(jitter.clamp(0.1, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn defaults_validate_and_zeroes_do_not() {
        let p = Policy::new(Utc::now());
        p.validate().unwrap();
        let mut q = p.clone();
        q.poll_interval = Duration::ZERO;
        assert!(
            q.validate()
                .unwrap_err()
                .to_string()
                .contains("POLL_INTERVAL_SECONDS")
        );
        let mut q = p.clone();
        q.max_span = Duration::ZERO;
        assert!(q.validate().is_err());
        let mut q = p.clone();
        q.retry_max = Duration::from_millis(1);
        assert!(q.validate().is_err());
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        let p = Policy::new(Utc::now());
        assert_eq!(
            p.retry_delay(1, 0.99999),
            Duration::from_secs(1).mul_f64(0.99999)
        );
        assert_eq!(p.retry_delay(3, 0.5), Duration::from_secs(2));
        assert_eq!(p.retry_delay(40, 1.0), Duration::from_secs(300));
        assert_eq!(p.retry_delay(2, 0.0), Duration::from_millis(200));
    }
}
