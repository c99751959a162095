//! Test support shipped with the core (feature `testing`): in-memory adapters of every port,
//! a manual clock, fault-injecting wrappers, sample data, and one conformance suite per port.
//!
//! The in-memory adapters are stateful fakes, faithful to the port contracts, and are useful
//! beyond tests: a service can run a pipeline into memory to try a source. Real adapters prove
//! they keep the same contracts by running [`conformance`] against themselves.

pub mod conformance;
pub mod faults;
mod memory;
pub mod samples;

pub use memory::{
    ManualClock, MemoryAnalytics, MemoryArchive, MemoryBucket, MemoryCheckpointStore, MemorySource,
    StoredObject,
};
