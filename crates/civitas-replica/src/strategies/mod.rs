//! Copy strategies: one file per way of filling a replica.

pub mod http_snapshot;
pub mod object_copy;
