//! Background work over every partition: retention (delete by age and size) and the log
//! cleaner (compaction). Both read the topics' configs from the metadata and act on the
//! partitions through `log::Partition`; the broker runs them on its timers.

pub mod compaction;
pub mod retention;
