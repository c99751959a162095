//! Upgrading a deployment written by an earlier release: `tests/fixtures/release-0.1.0` holds
//! the SQLite database and the local archive that cflogs 0.1.0 (commit 89baf37, before the
//! archive had a `stream=` partition) wrote by backfilling 2026-10-31T23:00Z–2026-11-01T03:00Z
//! of the simulator below; `make_the_release_fixture` (ignored) is how it was made. The test
//! migrates a copy, checks that checkpoints, rows and the chain are intact, and goes on.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use cflogs_core::Timestamp;
use cflogs_sim::{RunningSim, SimulatorBuilder};

const TOKEN: &str = "upgrade-token-not-a-secret";
const STREAM: &str = "audit-v1/account/acc1";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/release-0.1.0")
}

fn t(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The same simulated history every time: absolute times, one seed.
fn history() -> SimulatorBuilder {
    common::simulator(
        7,
        TOKEN,
        t("2026-11-01T00:00:00Z"),
        t("2026-11-01T06:00:00Z"),
        1_200,
    )
    .malformed_rate(0.01)
}

fn cflogs(dir: &Path, sim: &RunningSim, args: &[&str]) -> Output {
    let mut env = common::sim_env(sim, TOKEN);
    env.push(("CFLOGS_METRICS_ADDR", "off".to_owned()));
    common::command(dir, &env, args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the fixture; run only with the release the fixture stands for"]
async fn make_the_release_fixture() {
    let sim = common::start(history()).await;
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = cflogs(
        &dir,
        &sim,
        &[
            "backfill",
            "--since",
            "2026-10-31T23:00:00Z",
            "--until",
            "2026-11-01T03:00:00Z",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    sim.shutdown().await.unwrap();
}
