//! Domain types. Each validates at construction, so a value that exists is a valid one.

mod batch;
mod checkpoint;
mod cursor;
mod event;
mod ids;
mod manifest;
pub mod schema;
mod secret;
mod window;

pub use batch::{Batch, BatchLimits, FetchRequest, Fetched, Read, ReadRequest};
pub use checkpoint::{Checkpoint, CommitGuard, RecentId, fresh_lease};
pub use cursor::{Cursor, Position};
pub(crate) use cursor::{OverlapCursor, overlap_cursor, overlap_state};
pub use event::{Event, Quarantined};
pub use ids::{Dataset, Epoch, EventId, StreamId};
pub use manifest::{Digest, Manifest, ManifestObject};
pub use secret::Secret;
pub use window::{Timestamp, Window, rfc3339_nanos};
