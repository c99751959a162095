//! Programs that show how to embed `cflogs-core` in a Rust service; nothing to import.
//!
//! - `stdout_sink`: the audit-log source of `cflogs-cloudflare` (against the simulator, so it
//!   runs anywhere) into an [`AnalyticsSink`](../cflogs_core/trait.AnalyticsSink.html) of its
//!   own that prints every event as a line of JSON, with the Parquet archive in a local
//!   directory. `cargo run -p cflogs-examples --example stdout_sink`.
