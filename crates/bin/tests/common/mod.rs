//! What the binary's tests share: the simulator they run against and how they start `cflogs`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use cflogs_core::Timestamp;
use cflogs_sim::{RunningSim, Simulator, SimulatorBuilder};

/// The simulated account.
pub const ACCOUNT: &str = "acc1";

/// A simulator serving `count` events of [`ACCOUNT`] over `[from, to)` to `token`; the test
/// adds its own faults before [`start`].
pub fn simulator(
    seed: u64,
    token: &str,
    from: Timestamp,
    to: Timestamp,
    count: u64,
) -> SimulatorBuilder {
    Simulator::builder()
        .seed(seed)
        .account(ACCOUNT)
        .token(token)
        .span(from, to, count)
}

/// Builds and starts `builder` on 127.0.0.1.
pub async fn start(builder: SimulatorBuilder) -> RunningSim {
    builder
        .build()
        .expect("simulator settings")
        .spawn()
        .await
        .expect("simulator on 127.0.0.1")
}

/// The settings that point `cflogs` at `sim` with `token`.
pub fn sim_env(sim: &RunningSim, token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CLOUDFLARE_API_TOKEN", token.to_owned()),
        ("CLOUDFLARE_ACCOUNT_ID", ACCOUNT.to_owned()),
        ("CLOUDFLARE_API_BASE_URL", sim.base_url()),
    ]
}

/// `cflogs args` in `dir` with only `env` (and PATH, HOME, TMPDIR) in its environment.
pub fn command(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cflogs"));
    cmd.current_dir(dir).args(args).env_clear();
    for key in ["PATH", "HOME", "TMPDIR"] {
        if let Ok(v) = std::env::var(key) {
            cmd.env(key, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
