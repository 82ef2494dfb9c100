//! Request handlers, one file per API family. Each takes the broker context, the request
//! identity, the version and the decoded request, and returns the response (or `None` when
//! the protocol says no response is sent).

pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod consumer_group;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod offsets;
pub mod partitions;
pub mod produce;
pub mod producer_id;
pub mod topics;
pub mod transactions;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// A `StrBytes` from anything string-like (response fields).
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A topic name for a response.
pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}
