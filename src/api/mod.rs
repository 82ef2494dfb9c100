//! Request handlers, one file per API family. Each takes the broker context, the request
//! identity, the version and the decoded request, and returns the response (or `None` when
//! the protocol says no response is sent).

pub mod acls;
pub mod api_versions;
pub mod authorize;
pub mod cluster;
pub mod configs;
pub mod consumer_group;
pub mod delegation_tokens;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod offsets;
pub mod partitions;
pub mod produce;
pub mod producer_id;
pub mod quotas;
pub mod sasl;
pub mod scram_credentials;
pub mod share_fetch;
pub mod share_group;
pub mod share_offsets;
pub mod share_state;
pub mod streams_group;
pub mod telemetry;
pub mod topics;
pub mod transactions;

use std::net::SocketAddr;

use kafka_protocol::messages::{RequestHeader, TopicName};
use kafka_protocol::protocol::StrBytes;

/// A `StrBytes` from anything string-like (response fields).
pub(crate) fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A topic name for a response.
pub(crate) fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// Identity of the request being served, for handlers and for log lines.
pub struct RequestContext {
    pub peer: SocketAddr,
    /// The name of the listener the request came in on: Metadata and FindCoordinator
    /// answer with the endpoints of that listener.
    pub listener: std::sync::Arc<str>,
    /// The authenticated principal (`User:NAME`, `User:ANONYMOUS` without authentication).
    pub principal: std::sync::Arc<str>,
    pub header: RequestHeader,
    /// The request's size (header and body), what Kafka's byte-rate quotas count.
    pub request_bytes: usize,
    /// How long a handler found the client must wait (a quota it is over): the response
    /// says so and the connection is muted for that long.
    throttle_ms: std::sync::atomic::AtomicU64,
    /// Set by handlers of inter-broker requests (a follower's Fetch, WriteTxnMarkers):
    /// Kafka's request quota does not count them.
    request_quota_exempt: std::sync::atomic::AtomicBool,
    /// Set by a handler that has no response to carry an error (acks=0 produce): Kafka
    /// closes the connection instead, so the client notices and refreshes its metadata.
    close_reason: std::sync::Mutex<Option<String>>,
    /// The listener's security protocol (None for requests made inside the broker).
    protocol: Option<crate::listeners::SecurityProtocol>,
    /// The client logged in with a delegation token (Kafka's `tokenAuthenticated`).
    token_authenticated: bool,
}

impl RequestContext {
    pub fn new(
        peer: SocketAddr,
        listener: std::sync::Arc<str>,
        principal: std::sync::Arc<str>,
        header: RequestHeader,
        request_bytes: usize,
    ) -> RequestContext {
        RequestContext {
            peer,
            listener,
            principal,
            header,
            request_bytes,
            throttle_ms: Default::default(),
            request_quota_exempt: Default::default(),
            close_reason: Default::default(),
            protocol: None,
            token_authenticated: false,
        }
    }

    /// The channel the request came on: its listener's protocol, and whether the client
    /// logged in with a delegation token. Token requests depend on both.
    pub fn with_channel(
        mut self,
        protocol: crate::listeners::SecurityProtocol,
        token_authenticated: bool,
    ) -> RequestContext {
        self.protocol = Some(protocol);
        self.token_authenticated = token_authenticated;
        self
    }

    pub fn protocol(&self) -> Option<crate::listeners::SecurityProtocol> {
        self.protocol
    }

    pub fn token_authenticated(&self) -> bool {
        self.token_authenticated
    }

    /// Asks that the client wait `ms` (the longest asked for wins), as a quota requires.
    pub fn throttle(&self, ms: u64) {
        self.throttle_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Marks the request as inter-broker traffic, which the request quota does not count.
    pub fn exempt_from_request_quota(&self) {
        self.request_quota_exempt
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn request_quota_exempt(&self) -> bool {
        self.request_quota_exempt
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The throttle time to put in the response, in ms.
    pub fn throttle_ms(&self) -> i32 {
        self.throttle_ms
            .load(std::sync::atomic::Ordering::Relaxed)
            .min(i32::MAX as u64) as i32
    }

    pub fn client_id(&self) -> &str {
        self.header.client_id.as_deref().unwrap_or("")
    }

    /// Asks the connection to close once this request is handled.
    pub fn close_connection(&self, reason: String) {
        *self.close_reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
    }

    /// The reason a handler asked to close the connection with, if any (taken once).
    pub fn take_close_reason(&self) -> Option<String> {
        self.close_reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}
