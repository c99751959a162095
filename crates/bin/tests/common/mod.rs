//! What the binary's tests share: the simulator they run against and how they start `cflogs`.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use arrow_array::{Array, StringArray};
use cflogs_core::Timestamp;
use cflogs_sim::{RunningSim, Simulator, SimulatorBuilder};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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

/// The settings that point `cflogs` at the database `db_url` and a local archive directory.
pub fn storage_env(db_url: &str, archive: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db_url.to_owned()),
        (
            "CFLOGS_ARCHIVE_URL",
            format!("file://{}", archive.display()),
        ),
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

/// The ids in every Parquet object under `dir` (one entry per row), by column.
pub fn parquet_ids(dir: &Path, column: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            parquet_ids(&path, column, out);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            let file = std::fs::File::open(&path).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let ids = batch
                    .column_by_name(column)
                    .unwrap_or_else(|| panic!("no {column} in {}", path.display()));
                let ids = ids.as_any().downcast_ref::<StringArray>().unwrap();
                out.extend((0..ids.len()).map(|i| ids.value(i).to_owned()));
            }
        }
    }
}
