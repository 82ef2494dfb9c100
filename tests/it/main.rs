//! The integration tests, one binary: each module is one area, and `common` holds what they
//! share. One binary instead of one per file links the broker (and RocksDB) once, not 24
//! times. `cargo test --release --test it security::` runs one area.

mod common;

mod acl;
mod bad_input;
mod cli;
mod cluster;
mod cluster_security;
mod cluster_share;
mod cluster_streams;
mod cluster_tokens;
mod compaction;
mod configs;
mod connections;
mod consumer_groups;
mod delegation_tokens;
mod docker;
mod embed;
mod faults;
mod fetch_sessions;
mod groups;
mod http;
mod idempotence;
mod offload;
mod offsets_expiry;
mod partition_admin;
mod process;
mod protocol;
mod quotas;
mod records;
mod retention;
mod rskafka_client;
mod security;
mod share_dlq;
mod share_fetch;
mod share_groups;
mod streams_groups;
mod transactions;
mod transactions_v2;
