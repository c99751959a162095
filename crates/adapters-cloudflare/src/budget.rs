//! The token's request budget as Cloudflare counts it: at most `limit` requests in any sliding
//! window of `window` (1200 in 5 minutes), spent as fast as the work needs.
//!
//! A token bucket or GCRA (what rate-limiting crates offer) either allows a small burst and
//! then paces every request evenly, which makes a backlog wait for budget it has, or allows a
//! large burst and then, refilling continuously, lets more than `limit` requests into some
//! window. A log of the last `limit` start times is exact: a request starts at once while
//! fewer than `limit` started in the last `window`, and otherwise when the oldest of them
//! leaves the window. Memory is `limit` instants.
//!
//! A request holds its slot from its admission until a window after its answer arrived: the
//! server counted it at some instant in between, so a later request reusing the slot can never
//! reach the server before the server let the earlier one go, whatever the latency of either
//! (a burst answered slowly and a window of fast requests after it, say). The slot is held
//! the latency longer than the server holds it, a few milliseconds of every 5 minutes; in
//! exchange, the `Ratelimit` reset header, in whole seconds, is not needed to pause.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Admits `now` into the log `starts` (sorted start times) if fewer than `limit` started in
/// `(now - window, now]`, and returns `Ok`; otherwise returns the earliest instant at which a
/// start would be admitted. Starts that left the window are dropped.
pub(crate) fn admit(
    starts: &mut VecDeque<Instant>,
    limit: usize,
    window: Duration,
    now: Instant,
) -> Result<(), Instant> {
    while let Some(first) = starts.front() {
        if *first + window <= now {
            starts.pop_front();
        } else {
            break;
        }
    }
    if starts.len() < limit {
        starts.push_back(now);
        Ok(())
    } else {
        // The window is full: the next start is when the oldest of the last `limit` leaves it.
        Err(starts[starts.len() - limit] + window)
    }
}

/// Moves the start `started` in the log `starts` to `answered`, the instant its answer arrived,
/// keeping the log sorted: the slot is then held until a window after the answer. A start not
/// in the log (it left the window already) is left alone.
pub(crate) fn hold_until_answered(
    starts: &mut VecDeque<Instant>,
    started: Instant,
    answered: Instant,
) {
    let at = starts.partition_point(|s| *s < started);
    if starts.get(at) == Some(&started) {
        starts.remove(at);
        let to = starts.partition_point(|s| *s <= answered);
        starts.insert(to, answered);
    }
}

/// Reconciles the log `starts` with what the server said in its answer to the request started at
/// `started` and answered at `at`: `remaining` more requests allowed in its window when it
/// counted that request, at some instant in `[started, at]`. Requests the server counted and the
/// log did not (another tool on the same token) are recorded as started at `at`, as recent as
/// they can be. Returns the starts recorded.
///
/// The log's own count is taken over `(started - window, at]`, every start the server can have
/// counted in its window: counting over `(at - window, at]` instead would miss own starts that
/// left the log's window while the answer was in flight, take them for another tool's and keep
/// their slots taken for a whole window more (a catch-up whose oldest burst leaves the window
/// lost a share of every window so). Starts the server already let go, or had not seen yet
/// (the latency's worth at either end), make this count high, so it never records more than
/// the other tools really sent, and may record up to that many fewer: the safety share
/// (`CLOUDFLARE_RATE_LIMIT_PER_5_MIN` below 1200) covers it when another tool is present.
pub(crate) fn reconcile(
    starts: &mut VecDeque<Instant>,
    limit: usize,
    window: Duration,
    Word {
        started,
        at,
        remaining,
    }: Word,
) -> usize {
    // The log is sorted: the starts up to `at`, and those of them the server may count.
    let position = starts.partition_point(|s| *s <= at);
    let counted = position - starts.partition_point(|s| *s + window <= started);
    let missing = limit.saturating_sub(counted).saturating_sub(remaining);
    for _ in 0..missing {
        starts.insert(position, at);
    }
    missing
}

/// What a response said of the server's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    /// When the request it answers started (was admitted by the budget).
    pub(crate) started: Instant,
    /// When the answer arrived.
    pub(crate) at: Instant,
    /// Requests left in the server's window.
    pub(crate) remaining: usize,
}

/// A sliding-window request budget shared by every stream of one token. Waiters are served in
/// arrival order (a fair queue), so streams share the budget evenly. The server's own count
/// ([`observe`](Self::observe)) lowers what is left when others spend the same token.
#[derive(Debug)]
pub struct SlidingWindow {
    limit: usize,
    window: Duration,
    starts: tokio::sync::Mutex<VecDeque<Instant>>,
    /// The server's latest word, applied by the next admission.
    observed: std::sync::Mutex<Option<Word>>,
    /// Answers arrived since the last admission: (admitted, answered), applied by the next.
    answered: std::sync::Mutex<Vec<(Instant, Instant)>>,
    /// Starts recorded for requests others made on the token.
    foreign: std::sync::atomic::AtomicU64,
}

impl SlidingWindow {
    /// At most `limit` (at least 1) starts in any `window`.
    pub fn new(limit: u32, window: Duration) -> Self {
        let limit = limit.max(1) as usize;
        Self {
            limit,
            window,
            starts: tokio::sync::Mutex::new(VecDeque::with_capacity(limit)),
            observed: std::sync::Mutex::new(None),
            answered: std::sync::Mutex::new(Vec::new()),
            foreign: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records what the response to a request admitted at `started` (the instant
    /// [`acquire`](Self::acquire) returned) said: `remaining` requests left in the server's
    /// window. Arriving now.
    pub fn observe(&self, started: Instant, remaining: u64) {
        let remaining = usize::try_from(remaining).unwrap_or(usize::MAX);
        *self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Word {
            started,
            at: Instant::now(),
            remaining,
        });
    }

    /// Records that the answer to the request admitted at `started` arrived now: its slot is
    /// held until a window from now (see the module documentation). Call it for every answer,
    /// whatever its status, as soon as its headers arrive.
    pub fn answered(&self, started: Instant) {
        self.answered
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((started, Instant::now()));
    }

    /// Starts recorded so far for requests others made on the token (seen in the server's
    /// remaining count, not sent by this budget).
    pub fn foreign(&self) -> u64 {
        self.foreign.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn apply_observed(&self, starts: &mut VecDeque<Instant>) {
        let answered = std::mem::take(
            &mut *self
                .answered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (started, at) in answered {
            hold_until_answered(starts, started, at);
        }
        let observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(word) = observed {
            let added = reconcile(starts, self.limit, self.window, word);
            self.foreign
                .fetch_add(added as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Waits until a request may start and records its start; returns the start, which
    /// [`observe`](Self::observe) takes back with the server's answer.
    pub async fn acquire(&self) -> Instant {
        // Held while waiting: the next waiter (FIFO) gets its turn after this one started.
        let mut starts = self.starts.lock().await;
        loop {
            let now = Instant::now();
            self.apply_observed(&mut starts);
            match admit(&mut starts, self.limit, self.window, now) {
                Ok(()) => return now,
                Err(at) => tokio::time::sleep_until(at).await,
            }
        }
    }

    /// Requests that may start now without waiting (0 while others wait).
    pub fn remaining(&self) -> u64 {
        match self.starts.try_lock() {
            Ok(starts) => {
                let now = Instant::now();
                let recent = starts.iter().filter(|s| **s + self.window > now).count();
                self.limit.saturating_sub(recent) as u64
            }
            Err(_) => 0,
        }
    }

    /// The budget: requests per window.
    pub fn limit(&self) -> u64 {
        self.limit as u64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// How long `budget` made a request wait.
    async fn waited(budget: &SlidingWindow) -> Duration {
        let arrived = Instant::now();
        budget.acquire().await.duration_since(arrived)
    }

    /// Starts granted to requests arriving at `arrivals` (ms after an origin, sorted), one
    /// at a time in arrival order, as [`SlidingWindow::acquire`] grants them.
    fn granted(arrivals: &[u64], limit: usize, window: Duration) -> (Instant, Vec<Instant>) {
        let origin = Instant::now();
        let mut log = VecDeque::new();
        let mut out = Vec::new();
        let mut free = origin;
        for ms in arrivals {
            // FIFO: a request is considered once it arrived and the one before it started.
            let mut at = (origin + Duration::from_millis(*ms)).max(free);
            loop {
                match admit(&mut log, limit, window, at) {
                    Ok(()) => break,
                    Err(next) => {
                        assert!(next > at, "a refusal names a later instant");
                        at = next;
                    }
                }
            }
            out.push(at);
            free = at;
        }
        (origin, out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn no_window_ever_holds_more_than_the_limit_and_no_request_waits_for_nothing(
            limit in 1usize..40,
            window_ms in 1u64..5_000,
            mut arrivals in prop::collection::vec(0u64..20_000, 0..300),
        ) {
            arrivals.sort_unstable();
            let window = Duration::from_millis(window_ms);
            let (origin, starts) = granted(&arrivals, limit, window);
            // Any `limit + 1` consecutive starts span at least the window.
            for pair in starts.windows(limit + 1) {
                prop_assert!(pair[limit] - pair[0] >= window);
            }
            for (i, (start, ms)) in starts.iter().zip(&arrivals).enumerate() {
                let arrived = origin + Duration::from_millis(*ms);
                prop_assert!(*start >= arrived);
                if *start > arrived {
                    // It waited: for the one before it, or because the window was full.
                    let previous = i.checked_sub(1).map(|j| starts[j]);
                    let full = i >= limit && starts[i - limit] + window == *start;
                    prop_assert!(full || previous == Some(*start), "waited without cause");
                }
            }
        }
    }

    #[test]
    fn a_backlog_spends_the_whole_window_at_once_then_goes_at_the_sustainable_rate() {
        let window = Duration::from_secs(300);
        let arrivals = vec![0u64; 3_000];
        let (origin, starts) = granted(&arrivals, 1_200, window);
        assert!(
            starts[..1_200].iter().all(|s| *s == origin),
            "the first 1200 at once"
        );
        assert_eq!(starts[1_200], origin + window);
        assert_eq!(starts[2_400], origin + window * 2);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever the server says, after reconciling the log allows, over the instants the
        /// server may have counted (`(started - window, at]`), exactly the smaller of what it
        /// allowed and what the server allowed, by adding starts at the word only; starts after
        /// the word stay as they were.
        #[test]
        fn reconciling_never_allows_more_than_the_server_and_adds_only_what_it_must(
            limit in 1usize..50,
            own in prop::collection::vec(0u64..20_000, 0..60),
            at_ms in 0u64..20_000,
            latency_ms in 0u64..3_000,
            remaining in 0usize..60,
        ) {
            let window = Duration::from_millis(10_000);
            let origin = Instant::now() + Duration::from_millis(3_000);
            let mut own = own;
            own.sort_unstable();
            let mut log: VecDeque<Instant> =
                own.iter().map(|ms| origin + Duration::from_millis(*ms)).collect();
            let at = origin + Duration::from_millis(at_ms);
            let started = at - Duration::from_millis(latency_ms);
            let counted = |log: &VecDeque<Instant>| {
                log.iter().filter(|s| **s <= at && **s + window > started).count()
            };
            let later = |log: &VecDeque<Instant>| log.iter().filter(|s| **s > at).count();
            let (before, after) = (counted(&log), later(&log));
            let word = Word { started, at, remaining };
            let added = reconcile(&mut log, limit, window, word);
            prop_assert!(log.iter().zip(log.iter().skip(1)).all(|(a, b)| a <= b), "sorted");
            prop_assert_eq!(later(&log), after);
            prop_assert_eq!(counted(&log), before + added);
            let left = limit.saturating_sub(counted(&log));
            prop_assert_eq!(left, limit.saturating_sub(before).min(remaining));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn own_starts_leaving_the_window_while_an_answer_is_in_flight_are_not_taken_for_others() {
        // One request at a time, each counted by the server 25 ms after it started and
        // answered 25 ms later, as a sliding window of its own counts them. When the first
        // burst leaves the window, its starts leave the server's window while answers are in
        // flight: they must not be taken for another tool's requests.
        let (limit, window) = (5usize, Duration::from_secs(10));
        let budget = SlidingWindow::new(limit as u32, window);
        let mut server: VecDeque<Instant> = VecDeque::new();
        let mut starts = Vec::new();
        for _ in 0..30 {
            let started = budget.acquire().await;
            starts.push(started);
            tokio::time::advance(Duration::from_millis(25)).await;
            let arrival = Instant::now();
            server.retain(|a| *a + window > arrival);
            server.push_back(arrival);
            assert!(server.len() <= limit, "the server would answer 429");
            let remaining = (limit - server.len()) as u64;
            tokio::time::advance(Duration::from_millis(25)).await;
            budget.observe(started, remaining);
        }
        assert_eq!(budget.foreign(), 0);
        for pair in starts.windows(limit + 1) {
            assert_eq!(pair[limit] - pair[0], window, "every window spent whole");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_is_held_until_a_window_after_its_answer_so_no_latency_trips_the_server() {
        // A first burst answered slowly (the server counting each request up to 900 ms after
        // it was admitted), then fast requests: reusing a slot a window after its admission
        // would reach the server before it let the slow request go. Held a window after the
        // answer, no request ever finds the server's window full.
        let (limit, window) = (20usize, Duration::from_secs(10));
        let budget = std::sync::Arc::new(SlidingWindow::new(limit as u32, window));
        let server: std::sync::Arc<std::sync::Mutex<VecDeque<Instant>>> = Default::default();
        let mut tasks = Vec::new();
        for i in 0..120u64 {
            let (budget, server) = (budget.clone(), server.clone());
            tasks.push(tokio::spawn(async move {
                let started = budget.acquire().await;
                let latency = if i < limit as u64 {
                    900 - i * 40
                } else {
                    1 + i % 3
                };
                tokio::time::advance(Duration::from_millis(0)).await;
                tokio::time::sleep(Duration::from_millis(latency)).await;
                let arrival = Instant::now();
                let full = {
                    let mut hits = server.lock().unwrap();
                    hits.retain(|a| *a + window > arrival);
                    hits.push_back(arrival);
                    hits.len() > limit
                };
                tokio::time::sleep(Duration::from_millis(1)).await;
                budget.answered(started);
                (started, full)
            }));
        }
        let mut starts = Vec::new();
        for t in tasks {
            let (started, full) = t.await.unwrap();
            assert!(!full, "the server would answer 429");
            starts.push(started);
        }
        starts.sort();
        // And the budget is still spent: 120 requests in 6 windows and less than a second.
        let spent = *starts.last().unwrap() - starts[0];
        assert!(
            spent < window * 5 + Duration::from_secs(1),
            "took {spent:?} for 120 requests at 20 per 10 s"
        );
        // Holding to the admission instead (no `answered`) would have tripped it: the same
        // latencies against starts alone put a fast request into a window still full.
        let mut hits: VecDeque<Instant> = VecDeque::new();
        let origin = Instant::now();
        let mut tripped = false;
        for i in 0..40u64 {
            let started = origin + window * u32::try_from(i / limit as u64).unwrap();
            let latency = if i < limit as u64 {
                900 - i * 40
            } else {
                1 + i % 3
            };
            let arrival = started + Duration::from_millis(latency);
            hits.retain(|a| *a + window > arrival);
            hits.push_back(arrival);
            tripped |= hits.len() > limit;
        }
        assert!(
            tripped,
            "the scenario must be one that trips a start-based log"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn another_tool_on_the_token_lowers_what_is_left() {
        let budget = SlidingWindow::new(10, Duration::from_secs(10));
        let started = budget.acquire().await;
        // The server counted 7 of the token's requests; this budget sent 1.
        budget.observe(started, 3);
        for _ in 0..3 {
            assert_eq!(waited(&budget).await, Duration::ZERO);
        }
        assert_eq!(budget.foreign(), 6);
        assert_eq!(budget.remaining(), 0);
        // The next waits for the window: the others' requests are taken as made at the word.
        assert_eq!(waited(&budget).await, Duration::from_secs(10));
        // A word saying more is left than the log allows changes nothing.
        let started = budget.acquire().await;
        budget.observe(started, 9);
        assert_eq!(waited(&budget).await, Duration::ZERO);
        assert_eq!(budget.foreign(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_waits_only_when_the_window_is_full() {
        let budget = SlidingWindow::new(3, Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(waited(&budget).await, Duration::ZERO);
        }
        assert_eq!(budget.remaining(), 0);
        // The fourth starts when the first three leave the window, at 10 s.
        assert_eq!(waited(&budget).await, Duration::from_secs(10));
        assert_eq!(budget.remaining(), 2);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(budget.remaining(), 2);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(budget.remaining(), 3);
    }
}
