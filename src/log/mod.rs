//! The partition store: RocksDB layout, batch validation, and per-partition state.

pub mod batch;
pub mod partition;
pub mod producer_state;
pub mod recode;
pub mod records;

pub use partition::Partition;
