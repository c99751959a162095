//! The simulator's notion of "now".
//!
//! Everything time-dependent in the simulator (which events are visible, which live events
//! exist yet, the rate-limit window and block) reads [`SimClock::now`]. A clock either follows
//! the system clock (optionally shifted by an offset) or is frozen at a settable instant that
//! only moves when told to. Clones share the same underlying clock, so a test can keep a clone
//! and move time while the server runs.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// System clock plus a signed offset.
    System { offset: TimeDelta },
    /// Frozen at this instant.
    Fixed(DateTime<Utc>),
}

/// A shared, controllable clock.
///
/// `SimClock::system()` follows the wall clock; `SimClock::fixed(t)` stands still at `t`
/// until [`set`](SimClock::set) or [`advance`](SimClock::advance) move it. All clones observe
/// and control the same clock.
#[derive(Clone, Debug)]
pub struct SimClock {
    mode: Arc<Mutex<Mode>>,
}

impl Default for SimClock {
    fn default() -> Self {
        Self::system()
    }
}

impl SimClock {
    /// A clock that follows the system clock.
    pub fn system() -> Self {
        Self::from_mode(Mode::System {
            offset: TimeDelta::zero(),
        })
    }

    /// A clock that follows the system clock shifted by `offset` (negative = in the past).
    pub fn system_with_offset(offset: TimeDelta) -> Self {
        Self::from_mode(Mode::System { offset })
    }

    /// A clock frozen at `at`; it only moves through [`set`](Self::set) and
    /// [`advance`](Self::advance).
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self::from_mode(Mode::Fixed(at))
    }

    fn from_mode(mode: Mode) -> Self {
        Self {
            mode: Arc::new(Mutex::new(mode)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Mode> {
        // The guarded value is plain data, so a poisoned lock is still consistent.
        self.mode.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current simulated instant.
    pub fn now(&self) -> DateTime<Utc> {
        match *self.lock() {
            Mode::System { offset } => Utc::now() + offset,
            Mode::Fixed(at) => at,
        }
    }

    /// Whether the clock is frozen (set with [`fixed`](Self::fixed) or [`set`](Self::set)).
    pub fn is_fixed(&self) -> bool {
        matches!(*self.lock(), Mode::Fixed(_))
    }

    /// Freezes the clock at `at` (switching a system clock to a frozen one).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = Mode::Fixed(at);
    }

    /// Moves the clock forward by `by`: a frozen clock moves to `now + by`, a system clock
    /// gets its offset increased by `by`.
    pub fn advance(&self, by: Duration) {
        let by = TimeDelta::from_std(by).unwrap_or(TimeDelta::MAX);
        let mut mode = self.lock();
        *mode = match *mode {
            Mode::System { offset } => Mode::System {
                offset: offset.checked_add(&by).unwrap_or(TimeDelta::MAX),
            },
            Mode::Fixed(at) => Mode::Fixed(at.checked_add_signed(by).unwrap_or(at)),
        };
    }

    /// Makes the clock follow the system clock shifted by `offset`.
    pub fn set_offset(&self, offset: TimeDelta) {
        *self.lock() = Mode::System { offset };
    }

    /// Makes the clock follow the system clock with no offset.
    pub fn use_system(&self) {
        self.set_offset(TimeDelta::zero());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_moves_only_when_told() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = SimClock::fixed(t0);
        let c2 = c.clone();
        assert_eq!(c.now(), t0);
        c2.advance(Duration::from_secs(90));
        assert_eq!(c.now(), t0 + TimeDelta::seconds(90));
        c.set(t0);
        assert_eq!(c2.now(), t0);
        assert!(c.is_fixed());
    }

    #[test]
    fn system_clock_offset() {
        let c = SimClock::system_with_offset(TimeDelta::days(-1));
        let diff = Utc::now() - c.now();
        assert!(diff >= TimeDelta::hours(23) && diff <= TimeDelta::hours(25));
        c.use_system();
        assert!((Utc::now() - c.now()).abs() < TimeDelta::minutes(1));
        assert!(!c.is_fixed());
    }
}
