//! Integration tests against a real PostgreSQL server (`CFLOGS_TEST_DATABASE_URL`), each on a
//! fresh database. One test binary, so the crate links once.

mod checkpoint;
mod common;
mod conformance;
mod connect;
mod sink;
