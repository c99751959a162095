//! The simulator handle, its oracle methods and the running server.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::clock::SimClock;
use crate::config::{SimConfig, SimError, SimulatorBuilder};
use crate::generate::{AccountInfo, gen_span, mix};
use crate::ratelimit::RateLimiter;
use crate::stats::Stats;
use crate::store::{AccountState, EventInfo, MalformedEvent};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// State shared by the handle, its clones and the server.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub accounts: BTreeMap<String, RwLock<AccountState>>,
    pub limiter: Option<Mutex<RateLimiter>>,
    pub fault_rng: Mutex<StdRng>,
    pub stats: Mutex<Stats>,
    pub seq: AtomicU64,
    /// API requests in progress.
    pub in_flight: AtomicU64,
}

/// A configured simulator: the event sets of its accounts, its fault settings and its
/// counters. Cheap to clone (clones share everything).
///
/// Build one with [`Simulator::builder`], then [`spawn`](Self::spawn) an HTTP server for
/// it. The oracle methods ([`visible_ids`](Self::visible_ids), [`malformed`](Self::malformed),
/// ...) answer from the same state the server serves, as of the simulator clock's "now".
#[derive(Debug, Clone)]
pub struct Simulator {
    pub(crate) shared: Arc<Shared>,
}

impl Simulator {
    /// A builder with default settings (see [`SimulatorBuilder`]).
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }

    pub(crate) fn from_config(cfg: SimConfig) -> Self {
        let live_start = cfg.live.map(|live| {
            let start = live
                .start
                .or_else(|| cfg.spans.iter().map(|s| s.to).max())
                .unwrap_or_else(|| cfg.clock.now());
            // First whole second at or after `start`.
            let sec = start.timestamp();
            if start.timestamp_subsec_nanos() == 0 {
                sec
            } else {
                sec + 1
            }
        });
        let accounts = cfg
            .accounts
            .iter()
            .map(|spec| {
                let info = AccountInfo::new(spec, cfg.seed);
                let mut events = Vec::new();
                for (i, span) in cfg.spans.iter().enumerate() {
                    events.extend(gen_span(
                        cfg.seed,
                        i as u64,
                        &info,
                        span.from,
                        span.to,
                        span.count,
                        &cfg.generation,
                    ));
                }
                (
                    spec.id.clone(),
                    RwLock::new(AccountState::new(info, events, live_start)),
                )
            })
            .collect();
        let limiter = cfg.rate_limit.map(|rl| Mutex::new(RateLimiter::new(rl)));
        let fault_rng = Mutex::new(StdRng::seed_from_u64(mix(cfg.seed, 0xfa17)));
        Self {
            shared: Arc::new(Shared {
                cfg,
                accounts,
                limiter,
                fault_rng,
                stats: Mutex::new(Stats::default()),
                seq: AtomicU64::new(0),
                in_flight: AtomicU64::new(0),
            }),
        }
    }

    pub(crate) fn cfg(&self) -> &SimConfig {
        &self.shared.cfg
    }

    /// Runs `f` on an account's state as of `now`, generating live events first.
    /// `None` for an unknown account.
    pub(crate) fn with_account<R>(
        &self,
        account: &str,
        now: DateTime<Utc>,
        f: impl FnOnce(&AccountState) -> R,
    ) -> Option<R> {
        let state = self.shared.accounts.get(account)?;
        if let Some(live) = &self.shared.cfg.live
            && read(state).needs_live(now)
        {
            write(state).generate_live(
                self.shared.cfg.seed,
                live,
                &self.shared.cfg.generation,
                now,
            );
        }
        let guard = read(state);
        Some(f(&guard))
    }

    /// The simulator clock (clone it to move time from a test).
    pub fn clock(&self) -> &SimClock {
        &self.shared.cfg.clock
    }

    /// The simulator clock's current instant.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock().now()
    }

    /// The configured account ids, sorted.
    pub fn accounts(&self) -> Vec<String> {
        self.shared.accounts.keys().cloned().collect()
    }

    /// Ids of the well-formed events of `account` visible now, sorted. These are exactly
    /// the ids a complete, correct ingestion must have seen. Empty for an unknown account.
    pub fn visible_ids(&self, account: &str) -> Vec<String> {
        let now = self.now();
        self.with_account(account, now, |s| s.visible_ids(now, None, None))
            .unwrap_or_default()
    }

    /// Like [`visible_ids`](Self::visible_ids), restricted to `since <= when < before`.
    pub fn visible_ids_in(
        &self,
        account: &str,
        since: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> Vec<String> {
        let now = self.now();
        self.with_account(account, now, |s| {
            s.visible_ids(now, Some(since), Some(before))
        })
        .unwrap_or_default()
    }

    /// The malformed events of `account` visible now, with their exact served bytes, in
    /// listing order. They are never part of [`visible_ids`](Self::visible_ids).
    pub fn malformed(&self, account: &str) -> Vec<MalformedEvent> {
        let now = self.now();
        self.with_account(account, now, |s| s.malformed(now))
            .unwrap_or_default()
    }

    /// Every event of `account` generated so far (visible or not, malformed or not), in
    /// `(when, id)` order: the ground truth behind the API.
    pub fn events(&self, account: &str) -> Vec<EventInfo> {
        let now = self.now();
        self.with_account(account, now, AccountState::all_events)
            .unwrap_or_default()
    }

    /// A snapshot of the request counters.
    pub fn stats(&self) -> Stats {
        lock(&self.shared.stats).clone()
    }

    /// The axum router serving this simulator (API under `/client/v4`, control under
    /// `/__sim`), for embedding into another server.
    pub fn router(&self) -> axum::Router {
        crate::server::router(self.clone())
    }

    /// Starts serving on `127.0.0.1` with an OS-assigned port.
    pub async fn spawn(self) -> Result<RunningSim, SimError> {
        self.spawn_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
    }

    /// Starts serving on `addr`.
    pub async fn spawn_on(self, addr: SocketAddr) -> Result<RunningSim, SimError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = self.router();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        tracing::debug!(%addr, "cflogs-sim listening");
        Ok(RunningSim {
            sim: self,
            addr,
            shutdown: Some(tx),
            task: Some(task),
        })
    }
}

/// A simulator being served over HTTP. Dropping it stops the server in the background;
/// [`shutdown`](Self::shutdown) stops it and waits.
#[derive(Debug)]
pub struct RunningSim {
    sim: Simulator,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl RunningSim {
    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL to give to clients: `http://ADDR/client/v4`.
    pub fn base_url(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// The control base URL: `http://ADDR/__sim`.
    pub fn control_url(&self) -> String {
        format!("http://{}/__sim", self.addr)
    }

    /// The simulator being served.
    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// The simulator clock (see [`Simulator::clock`]).
    pub fn clock(&self) -> &SimClock {
        self.sim.clock()
    }

    /// See [`Simulator::visible_ids`].
    pub fn visible_ids(&self, account: &str) -> Vec<String> {
        self.sim.visible_ids(account)
    }

    /// See [`Simulator::visible_ids_in`].
    pub fn visible_ids_in(
        &self,
        account: &str,
        since: DateTime<Utc>,
        before: DateTime<Utc>,
    ) -> Vec<String> {
        self.sim.visible_ids_in(account, since, before)
    }

    /// See [`Simulator::malformed`].
    pub fn malformed(&self, account: &str) -> Vec<MalformedEvent> {
        self.sim.malformed(account)
    }

    /// See [`Simulator::events`].
    pub fn events(&self, account: &str) -> Vec<EventInfo> {
        self.sim.events(account)
    }

    /// See [`Simulator::stats`].
    pub fn stats(&self) -> Stats {
        self.sim.stats()
    }

    /// Stops accepting connections, lets in-flight requests finish (at most 5 s) and waits
    /// for the server task.
    pub async fn shutdown(mut self) -> Result<(), SimError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let Some(mut task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(Duration::from_secs(5), &mut task).await {
            Ok(Ok(res)) => res.map_err(SimError::Io),
            Ok(Err(join)) => Err(SimError::Task(join.to_string())),
            Err(_) => {
                task.abort();
                Ok(())
            }
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
