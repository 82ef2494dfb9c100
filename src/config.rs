//! Every knob of the broker, with Kafka's names and defaults where one exists.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Kafka's `socket.request.max.bytes` default: the largest request frame accepted.
pub const DEFAULT_SOCKET_REQUEST_MAX_BYTES: usize = 100 * 1024 * 1024;
/// Kafka's `message.max.bytes` default (1 MiB plus the 12-byte log overhead).
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_048_588;
/// Kafka's `fetch.max.bytes` default (55 MiB).
pub const DEFAULT_FETCH_MAX_BYTES: u32 = 55 * 1024 * 1024;

/// Command-line and environment configuration of one broker.
///
/// It exists so that `klamm` with no arguments is a working broker on 127.0.0.1:9092, while
/// every setting can come from a flag, a `KLAMM_*` variable, or (for embedding) a struct literal.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "klamm",
    version,
    about = "A Kafka-compatible broker with a RocksDB log",
    next_line_help = true
)]
pub struct BrokerConfig {
    /// Address to accept Kafka clients on.
    #[arg(
        long,
        env = "KLAMM_LISTEN",
        default_value = "127.0.0.1:9092",
        help_heading = "Listeners",
        value_name = "HOST:PORT"
    )]
    pub listen: SocketAddr,

    /// HOST:PORT that Metadata tells clients to connect to (default: the listen address,
    /// with the real port when listening on port 0).
    #[arg(
        long,
        env = "KLAMM_ADVERTISE",
        help_heading = "Listeners",
        value_name = "HOST:PORT"
    )]
    pub advertise: Option<String>,

    /// Kafka's `listeners`: `NAME://HOST:PORT,...` (an empty host is every interface), e.g.
    /// `PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093`. Replaces `--listen` when given.
    #[arg(
        long,
        alias = "listeners",
        env = "KLAMM_LISTENERS",
        help_heading = "Listeners",
        value_name = "LISTENERS"
    )]
    pub listeners: Option<String>,

    /// Kafka's `listener.security.protocol.map`: `NAME:PROTOCOL,...` for listener names
    /// other than the four protocols' own (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
    #[arg(
        long = "listener-security-protocol-map",
        alias = "listener.security.protocol.map",
        env = "KLAMM_LISTENER_SECURITY_PROTOCOL_MAP",
        help_heading = "Listeners",
        value_name = "MAP"
    )]
    pub listener_security_protocol_map: Option<String>,

    /// Kafka's `advertised.listeners`: what Metadata tells the clients of each listener to
    /// connect to (a listener not named here is advertised at its own address).
    #[arg(
        long = "advertised-listeners",
        alias = "advertised.listeners",
        env = "KLAMM_ADVERTISED_LISTENERS",
        help_heading = "Listeners",
        value_name = "LISTENERS"
    )]
    pub advertised_listeners: Option<String>,

    /// Kafka's `inter.broker.listener.name`: the listener brokers of a cluster dial each
    /// other on (default: the first listener).
    #[arg(
        long = "inter-broker-listener-name",
        alias = "inter.broker.listener.name",
        env = "KLAMM_INTER_BROKER_LISTENER_NAME",
        help_heading = "Listeners",
        value_name = "NAME"
    )]
    pub inter_broker_listener_name: Option<String>,

    /// Kafka's `sasl.mechanism.inter.broker.protocol`: how brokers log in to each other
    /// when the inter-broker listener is SASL_PLAINTEXT or SASL_SSL (PLAIN, SCRAM-SHA-256
    /// or SCRAM-SHA-512).
    #[arg(
        long = "inter-broker-sasl-mechanism",
        alias = "sasl.mechanism.inter.broker.protocol",
        env = "KLAMM_INTER_BROKER_SASL_MECHANISM",
        default_value = "PLAIN",
        help_heading = "Listeners",
        value_name = "MECHANISM"
    )]
    pub inter_broker_sasl_mechanism: String,

    /// The user brokers log in as on a SASL inter-broker listener (Kafka takes it from the
    /// listener's `sasl.jaas.config`); it must exist, e.g. from `--bootstrap-users`.
    #[arg(
        long = "inter-broker-sasl-user",
        env = "KLAMM_INTER_BROKER_SASL_USER",
        help_heading = "Listeners",
        value_name = "USER"
    )]
    pub inter_broker_sasl_user: Option<String>,

    /// That user's password.
    #[arg(
        long = "inter-broker-sasl-password",
        env = "KLAMM_INTER_BROKER_SASL_PASSWORD",
        help_heading = "Listeners",
        value_name = "PASSWORD",
        hide_env_values = true
    )]
    pub inter_broker_sasl_password: Option<String>,

    /// Kafka's `sasl.enabled.mechanisms` for SASL_PLAINTEXT and SASL_SSL listeners: any of
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER (unsecured JWS tokens, for
    /// development: anyone can mint one, so it is not on by default).
    #[arg(
        long = "sasl-enabled-mechanisms",
        alias = "sasl.enabled.mechanisms",
        env = "KLAMM_SASL_ENABLED_MECHANISMS",
        default_value = "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
        help_heading = "Security",
        value_name = "LIST"
    )]
    pub sasl_enabled_mechanisms: String,

    /// SASL users created at start if they do not exist yet, `NAME:PASSWORD,...`, each
    /// with SCRAM-SHA-256 and SCRAM-SHA-512 credentials (PLAIN accepts the same password).
    #[arg(
        long = "bootstrap-users",
        env = "KLAMM_BOOTSTRAP_USERS",
        help_heading = "Security",
        value_name = "USERS",
        hide_env_values = true
    )]
    pub bootstrap_users: Option<String>,

    /// Check every request against the ACLs (Kafka's `authorizer.class.name` set to its
    /// StandardAuthorizer). Off by default: everyone may do everything, as in Kafka.
    #[arg(
        long = "authorizer",
        env = "KLAMM_AUTHORIZER",
        help_heading = "Security"
    )]
    pub authorizer: bool,

    /// Kafka's `super.users`: principals the ACLs do not apply to, separated by `;`
    /// (`User:admin;User:ops`).
    #[arg(
        long = "super-users",
        alias = "super.users",
        env = "KLAMM_SUPER_USERS",
        help_heading = "Security",
        value_name = "PRINCIPALS"
    )]
    pub super_users: Option<String>,

    /// Kafka's `allow.everyone.if.no.acl.found`: a resource with no ACL at all is open to
    /// everyone instead of closed.
    #[arg(
        long = "allow-everyone-if-no-acl-found",
        alias = "allow.everyone.if.no.acl.found",
        env = "KLAMM_ALLOW_EVERYONE_IF_NO_ACL_FOUND",
        default_value_t = false,
        default_missing_value = "true",
        num_args = 0..=1,
        action = clap::ArgAction::Set,
        help_heading = "Security",
        value_name = "BOOL"
    )]
    pub allow_everyone_if_no_acl_found: bool,

    /// Kafka's `connection.failed.authentication.delay.ms`: how long a failed
    /// authentication's answer is held back before the connection closes, to slow
    /// password guessing.
    #[arg(
        long = "connection-failed-authentication-delay-ms",
        alias = "connection.failed.authentication.delay.ms",
        env = "KLAMM_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS",
        default_value_t = 100,
        value_parser = clap::value_parser!(u64).range(0..=60_000),
        help_heading = "Security",
        value_name = "MS"
    )]
    pub connection_failed_authentication_delay_ms: u64,

    /// Kafka's `connections.max.reauth.ms` (KIP-368): a SASL session's longest life. The
    /// client is told it in SaslAuthenticate and re-authenticates before it ends; a
    /// connection whose session ended is closed at its next request. 0: sessions last as
    /// long as their credential (a delegation token's or OAUTHBEARER token's expiry), or
    /// for ever.
    #[arg(
        long = "connections-max-reauth-ms",
        alias = "connections.max.reauth.ms",
        env = "KLAMM_CONNECTIONS_MAX_REAUTH_MS",
        default_value_t = 0,
        value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64),
        help_heading = "Security",
        value_name = "MS"
    )]
    pub connections_max_reauth_ms: u64,

    /// Kafka's `delegation.token.secret.key`: the key every token's HMAC (its password) is
    /// derived with. Delegation tokens (KIP-48) are off while it is unset or empty. In a
    /// cluster every broker must have the same one, or tokens made on one broker fail on
    /// the others.
    #[arg(
        long = "delegation-token-secret-key",
        alias = "delegation.token.secret.key",
        env = "KLAMM_DELEGATION_TOKEN_SECRET_KEY",
        help_heading = "Security",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub delegation_token_secret_key: Option<String>,

    /// Kafka's `delegation.token.max.lifetime.ms`: no renewal takes a token past its issue
    /// time plus this.
    #[arg(
        long = "delegation-token-max-lifetime-ms",
        alias = "delegation.token.max.lifetime.ms",
        env = "KLAMM_DELEGATION_TOKEN_MAX_LIFETIME_MS",
        default_value_t = 604_800_000,
        value_parser = clap::value_parser!(i64).range(1..),
        help_heading = "Security",
        value_name = "MS"
    )]
    pub delegation_token_max_lifetime_ms: i64,

    /// Kafka's `delegation.token.expiry.time.ms`: how long a token is valid after it is
    /// created or renewed, and the longest one renewal may give.
    #[arg(
        long = "delegation-token-expiry-time-ms",
        alias = "delegation.token.expiry.time.ms",
        env = "KLAMM_DELEGATION_TOKEN_EXPIRY_TIME_MS",
        default_value_t = 86_400_000,
        value_parser = clap::value_parser!(i64).range(1..),
        help_heading = "Security",
        value_name = "MS"
    )]
    pub delegation_token_expiry_time_ms: i64,

    /// Kafka's `delegation.token.expiry.check.interval.ms`: how often expired tokens are
    /// removed (by the controller, in a cluster).
    #[arg(
        long = "delegation-token-expiry-check-interval-ms",
        alias = "delegation.token.expiry.check.interval.ms",
        env = "KLAMM_DELEGATION_TOKEN_EXPIRY_CHECK_INTERVAL_MS",
        default_value_t = 3_600_000,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Security",
        value_name = "MS"
    )]
    pub delegation_token_expiry_check_interval_ms: u64,

    /// TLS certificate chain (PEM, the broker's certificate first) for SSL and SASL_SSL
    /// listeners.
    #[arg(
        long = "ssl-certificate",
        env = "KLAMM_SSL_CERTIFICATE",
        help_heading = "Security",
        value_name = "FILE"
    )]
    pub ssl_certificate: Option<PathBuf>,

    /// The private key of `--ssl-certificate` (unencrypted PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long = "ssl-key",
        env = "KLAMM_SSL_KEY",
        help_heading = "Security",
        value_name = "FILE"
    )]
    pub ssl_key: Option<PathBuf>,

    /// Kafka's `ssl.client.auth`: whether TLS clients must present a certificate signed by
    /// `--ssl-ca` (required), may (requested) or are not asked (none). A certificate
    /// client's principal is `User:` plus its subject (`User:CN=app,O=acme`).
    #[arg(
        long = "ssl-client-auth",
        alias = "ssl.client.auth",
        env = "KLAMM_SSL_CLIENT_AUTH",
        value_enum,
        default_value = "none",
        help_heading = "Security",
        value_name = "MODE"
    )]
    pub ssl_client_auth: crate::security::tls::ClientAuth,

    /// CA certificates (PEM) that client certificates must chain to.
    #[arg(
        long = "ssl-ca",
        env = "KLAMM_SSL_CA",
        help_heading = "Security",
        value_name = "FILE"
    )]
    pub ssl_ca: Option<PathBuf>,

    /// Directory of the RocksDB database.
    #[arg(
        long,
        env = "KLAMM_DATA_DIR",
        default_value = "./klamm-data",
        help_heading = "Storage",
        value_name = "PATH"
    )]
    pub data_dir: PathBuf,

    /// Use a temporary data directory that is removed on exit (for CI).
    #[arg(long, env = "KLAMM_EPHEMERAL", help_heading = "Storage")]
    pub ephemeral: bool,

    /// Sync the write-ahead log before acknowledging a produce request.
    #[arg(long, env = "KLAMM_FSYNC", help_heading = "Storage")]
    pub fsync: bool,

    /// Kafka's `auto.create.topics.enable`: create unknown topics on Metadata and Produce.
    #[arg(
        long = "auto-create-topics-enable",
        alias = "auto.create.topics.enable",
        env = "KLAMM_AUTO_CREATE_TOPICS_ENABLE",
        default_value_t = true,
        action = clap::ArgAction::Set,
        help_heading = "Topics", value_name = "BOOL"
    )]
    pub auto_create_topics_enable: bool,

    /// Kafka's `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    #[arg(
        long = "num-partitions",
        alias = "num.partitions",
        env = "KLAMM_NUM_PARTITIONS",
        default_value_t = 1,
        value_parser = clap::value_parser!(i32).range(1..=100_000),
        help_heading = "Topics", value_name = "N"
    )]
    pub num_partitions: i32,

    /// Kafka's `default.replication.factor`: replicas of auto-created topics and of
    /// CreateTopics with -1. Only a cluster (`--zookeeper-connect`) can have more than 1.
    #[arg(
        long = "default-replication-factor",
        alias = "default.replication.factor",
        env = "KLAMM_DEFAULT_REPLICATION_FACTOR",
        default_value_t = 1,
        value_parser = clap::value_parser!(i32).range(1..=32_767),
        help_heading = "Topics", value_name = "N"
    )]
    pub default_replication_factor: i32,

    /// Kafka's `min.insync.replicas` (broker default of the topic config): an `acks=all`
    /// produce needs at least this many in-sync replicas, else NOT_ENOUGH_REPLICAS.
    #[arg(
        long = "min-insync-replicas",
        alias = "min.insync.replicas",
        env = "KLAMM_MIN_INSYNC_REPLICAS",
        default_value_t = 1,
        value_parser = clap::value_parser!(i32).range(1..=32_767),
        help_heading = "Topics", value_name = "N"
    )]
    pub min_insync_replicas: i32,

    /// Kafka's `unclean.leader.election.enable`: in a cluster, whether a replica outside
    /// the ISR may lead when no in-sync replica is alive (losing what it lacks).
    #[arg(
        long = "unclean-leader-election-enable",
        alias = "unclean.leader.election.enable",
        env = "KLAMM_UNCLEAN_LEADER_ELECTION_ENABLE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_name = "BOOL",
        help_heading = "Cluster"
    )]
    pub unclean_leader_election_enable: bool,

    /// Kafka's `replica.lag.time.max.ms`: a follower that has not caught up with its
    /// leader for this long leaves the ISR (cluster mode).
    #[arg(
        long = "replica-lag-time-max-ms",
        alias = "replica.lag.time.max.ms",
        env = "KLAMM_REPLICA_LAG_TIME_MAX_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(100..=3_600_000),
        help_heading = "Cluster", value_name = "MS"
    )]
    pub replica_lag_time_max_ms: u64,

    /// Kafka's `replica.fetch.wait.max.ms`: how long a follower's fetch waits at its
    /// leader for new data (cluster mode).
    #[arg(
        long = "replica-fetch-wait-max-ms",
        alias = "replica.fetch.wait.max.ms",
        env = "KLAMM_REPLICA_FETCH_WAIT_MAX_MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(0..=60_000),
        help_heading = "Cluster", value_name = "MS"
    )]
    pub replica_fetch_wait_max_ms: u64,

    /// Kafka's `replica.fetch.max.bytes`: bytes a follower asks for per partition.
    #[arg(
        long = "replica-fetch-max-bytes",
        alias = "replica.fetch.max.bytes",
        env = "KLAMM_REPLICA_FETCH_MAX_BYTES",
        default_value_t = 1_048_576,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Cluster", value_name = "BYTES"
    )]
    pub replica_fetch_max_bytes: i32,

    /// Kafka's `offsets.topic.replication.factor`: replicas of `__consumer_offsets`, which
    /// places group coordinators in a cluster. As in Kafka, the topic is not created (and
    /// FindCoordinator answers COORDINATOR_NOT_AVAILABLE) while fewer brokers are live.
    #[arg(
        long = "offsets-topic-replication-factor",
        alias = "offsets.topic.replication.factor",
        env = "KLAMM_OFFSETS_TOPIC_REPLICATION_FACTOR",
        default_value_t = 3,
        value_parser = clap::value_parser!(i32).range(1..=32_767),
        help_heading = "Cluster", value_name = "N"
    )]
    pub offsets_topic_replication_factor: i32,

    /// Kafka's `offsets.topic.num.partitions`.
    #[arg(
        long = "offsets-topic-num-partitions",
        alias = "offsets.topic.num.partitions",
        env = "KLAMM_OFFSETS_TOPIC_NUM_PARTITIONS",
        default_value_t = 50,
        value_parser = clap::value_parser!(i32).range(1..=1_000),
        help_heading = "Cluster", value_name = "N"
    )]
    pub offsets_topic_num_partitions: i32,

    /// Kafka's `transaction.state.log.replication.factor`: replicas of
    /// `__transaction_state`, which places transaction coordinators in a cluster.
    #[arg(
        long = "transaction-state-log-replication-factor",
        alias = "transaction.state.log.replication.factor",
        env = "KLAMM_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        default_value_t = 3,
        value_parser = clap::value_parser!(i32).range(1..=32_767),
        help_heading = "Cluster", value_name = "N"
    )]
    pub transaction_state_log_replication_factor: i32,

    /// Kafka's `transaction.state.log.num.partitions`.
    #[arg(
        long = "transaction-state-log-num-partitions",
        alias = "transaction.state.log.num.partitions",
        env = "KLAMM_TRANSACTION_STATE_LOG_NUM_PARTITIONS",
        default_value_t = 50,
        value_parser = clap::value_parser!(i32).range(1..=1_000),
        help_heading = "Cluster", value_name = "N"
    )]
    pub transaction_state_log_num_partitions: i32,

    /// Kafka's `share.coordinator.state.topic.replication.factor`: replicas of
    /// `__share_group_state`, which keeps share groups' delivery state in a cluster.
    #[arg(
        long = "share-coordinator-state-topic-replication-factor",
        alias = "share.coordinator.state.topic.replication.factor",
        env = "KLAMM_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR",
        default_value_t = 3,
        value_parser = clap::value_parser!(i32).range(1..=32_767),
        help_heading = "Cluster", value_name = "N"
    )]
    pub share_coordinator_state_topic_replication_factor: i32,

    /// Kafka's `share.coordinator.state.topic.num.partitions`.
    #[arg(
        long = "share-coordinator-state-topic-num-partitions",
        alias = "share.coordinator.state.topic.num.partitions",
        env = "KLAMM_SHARE_COORDINATOR_STATE_TOPIC_NUM_PARTITIONS",
        default_value_t = 50,
        value_parser = clap::value_parser!(i32).range(1..=1_000),
        help_heading = "Cluster", value_name = "N"
    )]
    pub share_coordinator_state_topic_num_partitions: i32,

    /// The most partitions the broker holds over all topics (the name KIP-578 proposed);
    /// CreateTopics and CreatePartitions past it get POLICY_VIOLATION. Kafka has no such cap.
    #[arg(
        long = "max-partitions",
        alias = "max.partitions",
        env = "KLAMM_MAX_PARTITIONS",
        default_value_t = 100_000,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000),
        help_heading = "Topics", value_name = "N"
    )]
    pub max_partitions: u32,

    /// Kafka's `message.max.bytes`: the largest record batch accepted (topic default of
    /// `max.message.bytes`).
    #[arg(
        long = "message-max-bytes",
        alias = "message.max.bytes",
        env = "KLAMM_MESSAGE_MAX_BYTES",
        default_value_t = DEFAULT_MESSAGE_MAX_BYTES,
        help_heading = "Topics", value_name = "BYTES"
    )]
    pub message_max_bytes: usize,

    /// The most one record batch may inflate to when the broker looks inside it (validation,
    /// a topic's `compression.type`, the cleaner, ListOffsets by time); larger batches get
    /// INVALID_RECORD. Kafka has no such cap. A topic's `max.message.bytes`, when larger,
    /// raises it for that topic.
    #[arg(
        long = "max-uncompressed-batch-bytes",
        env = "KLAMM_MAX_UNCOMPRESSED_BATCH_BYTES",
        default_value_t = crate::log::records::DEFAULT_MAX_UNCOMPRESSED_BATCH_BYTES,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=(1u64 << 31)),
        help_heading = "Topics", value_name = "BYTES"
    )]
    pub max_uncompressed_batch_bytes: usize,

    /// Kafka's `socket.request.max.bytes`: larger request frames close the connection.
    #[arg(
        long = "socket-request-max-bytes",
        alias = "socket.request.max.bytes",
        env = "KLAMM_SOCKET_REQUEST_MAX_BYTES",
        default_value_t = DEFAULT_SOCKET_REQUEST_MAX_BYTES,
        help_heading = "Listeners", value_name = "BYTES"
    )]
    pub socket_request_max_bytes: usize,

    /// Kafka's `fetch.max.bytes`: the most record bytes one Fetch response carries, whatever
    /// the client asks for (at least one batch is still returned, as Kafka does).
    #[arg(
        long = "fetch-max-bytes",
        alias = "fetch.max.bytes",
        env = "KLAMM_FETCH_MAX_BYTES",
        default_value_t = DEFAULT_FETCH_MAX_BYTES,
        value_parser = clap::value_parser!(u32).range(1024..=i32::MAX as i64),
        help_heading = "Listeners", value_name = "BYTES"
    )]
    pub fetch_max_bytes: u32,
    /// Kafka's `max.incremental.fetch.session.cache.slots`: how many fetch sessions (KIP-227)
    /// the broker keeps, divided among 8 shards as Kafka divides them (so fewer than 8 means
    /// none); a full fetch that finds no room is answered with session id 0. 0 turns sessions
    /// off.
    #[arg(
        long = "max-incremental-fetch-session-cache-slots",
        alias = "max.incremental.fetch.session.cache.slots",
        env = "KLAMM_MAX_INCREMENTAL_FETCH_SESSION_CACHE_SLOTS",
        default_value_t = 1000,
        value_parser = clap::value_parser!(u32).range(0..=i32::MAX as i64),
        help_heading = "Listeners", value_name = "N"
    )]
    pub max_incremental_fetch_session_cache_slots: u32,
    /// KIP-227's `min.incremental.fetch.session.eviction.ms`: a fetch session idle this long
    /// may be evicted for a newcomer, and one created longer ago may be evicted by a larger
    /// newcomer. Kafka fixes it at 120000 (the KIP's name never became a broker config);
    /// Klamm lets tests shorten it.
    #[arg(
        long = "min-incremental-fetch-session-eviction-ms",
        alias = "min.incremental.fetch.session.eviction.ms",
        env = "KLAMM_MIN_INCREMENTAL_FETCH_SESSION_EVICTION_MS",
        default_value_t = 120_000,
        value_parser = clap::value_parser!(u64).range(0..=86_400_000),
        help_heading = "Listeners", value_name = "MS"
    )]
    pub min_incremental_fetch_session_eviction_ms: u64,

    /// Kafka's `max.connections`: further connections are refused until one closes.
    #[arg(
        long = "max-connections",
        alias = "max.connections",
        env = "KLAMM_MAX_CONNECTIONS",
        default_value_t = 10_000,
        help_heading = "Listeners",
        value_name = "N"
    )]
    pub max_connections: usize,

    /// Kafka's `connections.max.idle.ms`: a connection with no request for this long is
    /// closed (a half-sent frame does not count as activity).
    #[arg(
        long = "connections-max-idle-ms",
        alias = "connections.max.idle.ms",
        env = "KLAMM_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Listeners",
        value_name = "MS"
    )]
    pub connections_max_idle_ms: u64,

    /// Kafka's `socket.listen.backlog.size`: connections the kernel completes and queues
    /// before the broker accepts them. Kafka's default is 50; Klamm's is 1024 (what it always
    /// used), since a burst of connects past the backlog waits for SYN retransmits, seconds
    /// each. The kernel caps it at `net.core.somaxconn`.
    #[arg(
        long = "socket-listen-backlog-size",
        alias = "socket.listen.backlog.size",
        env = "KLAMM_SOCKET_LISTEN_BACKLOG_SIZE",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..=65535),
        help_heading = "Listeners",
        value_name = "N"
    )]
    pub socket_listen_backlog_size: u32,

    /// Kafka's `queued.max.request.bytes`: request bytes all connections together may hold
    /// before the broker stops reading from sockets until handled requests free them. Kafka's
    /// default is -1 (no bound); Klamm's is 512 MiB so that many clients sending large frames
    /// at once cannot grow its memory without limit. -1 turns the bound off.
    #[arg(
        long = "queued-max-request-bytes",
        alias = "queued.max.request.bytes",
        env = "KLAMM_QUEUED_MAX_REQUEST_BYTES",
        default_value_t = 512 << 20,
        allow_negative_numbers = true,
        value_parser = clap::value_parser!(i64).range(-1..),
        help_heading = "Listeners",
        value_name = "BYTES"
    )]
    pub queued_max_request_bytes: i64,

    /// Kafka's `offsets.retention.minutes`: committed offsets of a group with no members
    /// expire this long after it became empty (or after their commit, for a group that never
    /// had members), and offsets of topics a stable group no longer subscribes to this long
    /// after their commit. A group left with no members and no offsets is deleted.
    #[arg(
        long = "offsets-retention-minutes",
        alias = "offsets.retention.minutes",
        env = "KLAMM_OFFSETS_RETENTION_MINUTES",
        default_value_t = 7 * 24 * 60,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Groups",
        value_name = "MINUTES"
    )]
    pub offsets_retention_minutes: u64,

    /// Klamm's finer form of `--offsets-retention-minutes`, for tests that cannot wait a
    /// minute; wins over it when given.
    #[arg(
        long = "offsets-retention-ms",
        env = "KLAMM_OFFSETS_RETENTION_MS",
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub offsets_retention_ms: Option<u64>,

    /// Kafka's `offsets.retention.check.interval.ms`: how often expired offsets and empty
    /// groups are looked for.
    #[arg(
        long = "offsets-retention-check-interval-ms",
        alias = "offsets.retention.check.interval.ms",
        env = "KLAMM_OFFSETS_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 600_000,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub offsets_retention_check_interval_ms: u64,

    /// Kafka's `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty
    /// group waits for more members. Kafka defaults to 3000; 0 here so test suites do not
    /// wait three seconds per group (set 3000 for Kafka's behaviour).
    #[arg(
        long = "group-initial-rebalance-delay-ms",
        alias = "group.initial.rebalance.delay.ms",
        env = "KLAMM_GROUP_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 0,
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_initial_rebalance_delay_ms: u64,

    /// Kafka's `group.min.session.timeout.ms`.
    #[arg(
        long = "group-min-session-timeout-ms",
        alias = "group.min.session.timeout.ms",
        env = "KLAMM_GROUP_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 6000,
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_min_session_timeout_ms: i32,

    /// Kafka's `group.max.session.timeout.ms`.
    #[arg(
        long = "group-max-session-timeout-ms",
        alias = "group.max.session.timeout.ms",
        env = "KLAMM_GROUP_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 1_800_000,
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_max_session_timeout_ms: i32,

    /// Kafka's `group.consumer.heartbeat.interval.ms`: how often KIP-848 consumers
    /// heartbeat (they also heartbeat at once when they finished revoking partitions).
    #[arg(
        long = "group-consumer-heartbeat-interval-ms",
        alias = "group.consumer.heartbeat.interval.ms",
        env = "KLAMM_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5_000,
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_consumer_heartbeat_interval_ms: i32,

    /// Kafka's `producer.id.expiration.ms`: a partition forgets an idempotent producer whose
    /// last batch is older than this and that has no open transaction (checked with
    /// retention, every `log.retention.check.interval.ms`).
    #[arg(
        long = "producer-id-expiration-ms",
        alias = "producer.id.expiration.ms",
        env = "KLAMM_PRODUCER_ID_EXPIRATION_MS",
        default_value_t = 86_400_000,
        value_parser = clap::value_parser!(i64).range(1..),
        help_heading = "Transactions",
        value_name = "MS"
    )]
    pub producer_id_expiration_ms: i64,

    /// Kafka's `group.consumer.max.size`: members one KIP-848 group may hold; more get
    /// GROUP_MAX_SIZE_REACHED. Kafka's default is unbounded (2^31-1); Klamm's is 10,000,
    /// the same bound its classic groups have.
    #[arg(
        long = "group-consumer-max-size",
        alias = "group.consumer.max.size",
        env = "KLAMM_GROUP_CONSUMER_MAX_SIZE",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Groups",
        value_name = "N"
    )]
    pub group_consumer_max_size: u32,

    /// Kafka's `group.consumer.session.timeout.ms`: a KIP-848 member that does not
    /// heartbeat for this long is removed and its partitions reassigned.
    #[arg(
        long = "group-consumer-session-timeout-ms",
        alias = "group.consumer.session.timeout.ms",
        env = "KLAMM_GROUP_CONSUMER_SESSION_TIMEOUT_MS",
        default_value_t = 45_000,
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_consumer_session_timeout_ms: i32,

    /// Kafka's `group.share.session.timeout.ms`: a share group member that does not
    /// heartbeat for this long is fenced and its partitions go to the others.
    #[arg(
        long = "group-share-session-timeout-ms",
        alias = "group.share.session.timeout.ms",
        env = "KLAMM_GROUP_SHARE_SESSION_TIMEOUT_MS",
        default_value_t = 45_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_share_session_timeout_ms: i32,

    /// Kafka's `group.share.heartbeat.interval.ms`: how often share consumers heartbeat.
    #[arg(
        long = "group-share-heartbeat-interval-ms",
        alias = "group.share.heartbeat.interval.ms",
        env = "KLAMM_GROUP_SHARE_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_share_heartbeat_interval_ms: i32,

    /// Kafka's `group.share.max.size`: members one share group may hold (1 to 1000, as
    /// Kafka validates it); more get GROUP_MAX_SIZE_REACHED.
    #[arg(
        long = "group-share-max-size",
        alias = "group.share.max.size",
        env = "KLAMM_GROUP_SHARE_MAX_SIZE",
        default_value_t = 200,
        value_parser = clap::value_parser!(u32).range(1..=1000),
        help_heading = "Groups",
        value_name = "N"
    )]
    pub group_share_max_size: u32,

    /// Kafka's `group.share.max.share.sessions`: share sessions (one per share consumer
    /// fetching from this broker) held at once; a consumer past it gets
    /// SHARE_SESSION_LIMIT_REACHED after its fetch's max wait.
    #[arg(
        long = "group-share-max-share-sessions",
        alias = "group.share.max.share.sessions",
        env = "KLAMM_GROUP_SHARE_MAX_SHARE_SESSIONS",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Groups",
        value_name = "N"
    )]
    pub group_share_max_share_sessions: u32,

    /// Kafka's `group.share.min.record.lock.duration.ms`: the smallest
    /// `share.record.lock.duration.ms` a share group may set (1000 to 30000, as Kafka bounds it).
    #[arg(
        long = "group-share-min-record-lock-duration-ms",
        alias = "group.share.min.record.lock.duration.ms",
        env = "KLAMM_GROUP_SHARE_MIN_RECORD_LOCK_DURATION_MS",
        default_value_t = 15_000,
        value_parser = clap::value_parser!(i32).range(1000..=30_000),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_share_min_record_lock_duration_ms: i32,

    /// Kafka's `errors.deadletterqueue.auto.create.topics.enable`: a share group's dead-letter
    /// topic (`errors.deadletterqueue.topic.name`) that does not exist is created on its
    /// first record, with the broker's default partitions and replication and the topic
    /// configs `errors.deadletterqueue.group.enable=true` and `message.timestamp.type=CreateTime`.
    #[arg(
        long = "errors-deadletterqueue-auto-create-topics-enable",
        alias = "errors.deadletterqueue.auto.create.topics.enable",
        env = "KLAMM_ERRORS_DEADLETTERQUEUE_AUTO_CREATE_TOPICS_ENABLE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        help_heading = "Groups", value_name = "BOOL"
    )]
    pub errors_deadletterqueue_auto_create_topics_enable: bool,

    /// Kafka's `errors.deadletterqueue.topic.name.prefix`: a share group's dead-letter topic
    /// must start with it, else nothing is written there ("" turns the check off).
    #[arg(
        long = "errors-deadletterqueue-topic-name-prefix",
        alias = "errors.deadletterqueue.topic.name.prefix",
        env = "KLAMM_ERRORS_DEADLETTERQUEUE_TOPIC_NAME_PREFIX",
        default_value = "dlq.",
        help_heading = "Groups",
        value_name = "PREFIX"
    )]
    pub errors_deadletterqueue_topic_name_prefix: String,

    /// Kafka's `group.streams.session.timeout.ms`: a streams group member (a stream thread) that does not heartbeat for this long is fenced and its tasks go to the others.
    #[arg(
        long = "group-streams-session-timeout-ms",
        alias = "group.streams.session.timeout.ms",
        env = "KLAMM_GROUP_STREAMS_SESSION_TIMEOUT_MS",
        default_value_t = 45_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_session_timeout_ms: i32,

    /// Kafka's `group.streams.min.session.timeout.ms`: the smallest `streams.session.timeout.ms` a group may set.
    #[arg(
        long = "group-streams-min-session-timeout-ms",
        alias = "group.streams.min.session.timeout.ms",
        env = "KLAMM_GROUP_STREAMS_MIN_SESSION_TIMEOUT_MS",
        default_value_t = 45_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_min_session_timeout_ms: i32,

    /// Kafka's `group.streams.max.session.timeout.ms`: the largest `streams.session.timeout.ms` a group may set.
    #[arg(
        long = "group-streams-max-session-timeout-ms",
        alias = "group.streams.max.session.timeout.ms",
        env = "KLAMM_GROUP_STREAMS_MAX_SESSION_TIMEOUT_MS",
        default_value_t = 60_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_max_session_timeout_ms: i32,

    /// Kafka's `group.streams.heartbeat.interval.ms`: how often stream threads heartbeat.
    #[arg(
        long = "group-streams-heartbeat-interval-ms",
        alias = "group.streams.heartbeat.interval.ms",
        env = "KLAMM_GROUP_STREAMS_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_heartbeat_interval_ms: i32,

    /// Kafka's `group.streams.min.heartbeat.interval.ms`: the smallest `streams.heartbeat.interval.ms` a group may set.
    #[arg(
        long = "group-streams-min-heartbeat-interval-ms",
        alias = "group.streams.min.heartbeat.interval.ms",
        env = "KLAMM_GROUP_STREAMS_MIN_HEARTBEAT_INTERVAL_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_min_heartbeat_interval_ms: i32,

    /// Kafka's `group.streams.max.heartbeat.interval.ms`: the largest `streams.heartbeat.interval.ms` a group may set.
    #[arg(
        long = "group-streams-max-heartbeat-interval-ms",
        alias = "group.streams.max.heartbeat.interval.ms",
        env = "KLAMM_GROUP_STREAMS_MAX_HEARTBEAT_INTERVAL_MS",
        default_value_t = 15_000,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_max_heartbeat_interval_ms: i32,

    /// Kafka's `group.streams.initial.rebalance.delay.ms`: how long a new streams group waits for more members before its first assignment.
    #[arg(
        long = "group-streams-initial-rebalance-delay-ms",
        alias = "group.streams.initial.rebalance.delay.ms",
        env = "KLAMM_GROUP_STREAMS_INITIAL_REBALANCE_DELAY_MS",
        default_value_t = 3_000,
        value_parser = clap::value_parser!(i32).range(0..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_initial_rebalance_delay_ms: i32,

    /// Kafka's `group.streams.num.standby.replicas`: standby replicas of each stateful task, on other instances.
    #[arg(
        long = "group-streams-num-standby-replicas",
        alias = "group.streams.num.standby.replicas",
        env = "KLAMM_GROUP_STREAMS_NUM_STANDBY_REPLICAS",
        default_value_t = 0,
        value_parser = clap::value_parser!(i32).range(0..=2),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_num_standby_replicas: i32,

    /// Kafka's `group.streams.max.size`: members (stream threads) one streams group may hold; more get GROUP_MAX_SIZE_REACHED.
    #[arg(
        long = "group-streams-max-size",
        alias = "group.streams.max.size",
        env = "KLAMM_GROUP_STREAMS_MAX_SIZE",
        default_value_t = i32::MAX,
        value_parser = clap::value_parser!(i32).range(1..),
        help_heading = "Groups",
        value_name = "MS"
    )]
    pub group_streams_max_size: i32,

    /// Kafka's `log.retention.check.interval.ms`: how often batches past `retention.ms` or
    /// `retention.bytes` are deleted.
    #[arg(
        long = "log-retention-check-interval-ms",
        alias = "log.retention.check.interval.ms",
        env = "KLAMM_LOG_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000,
        help_heading = "Retention and compaction",
        value_name = "MS"
    )]
    pub log_retention_check_interval_ms: u64,

    /// Kafka's `log.cleaner.backoff.ms`: how often the log cleaner looks for compacted
    /// topics to clean.
    #[arg(
        long = "log-cleaner-backoff-ms",
        alias = "log.cleaner.backoff.ms",
        env = "KLAMM_LOG_CLEANER_BACKOFF_MS",
        default_value_t = 15_000,
        help_heading = "Retention and compaction",
        value_name = "MS"
    )]
    pub log_cleaner_backoff_ms: u64,

    /// Kafka's `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a
    /// producer may ask for (longer gets INVALID_TRANSACTION_TIMEOUT).
    #[arg(
        long = "transaction-max-timeout-ms",
        alias = "transaction.max.timeout.ms",
        env = "KLAMM_TRANSACTION_MAX_TIMEOUT_MS",
        default_value_t = 900_000,
        help_heading = "Transactions",
        value_name = "MS"
    )]
    pub transaction_max_timeout_ms: i32,

    /// Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often
    /// transactions open past their timeout are aborted (and their producer fenced).
    #[arg(
        long = "transaction-abort-timed-out-transaction-cleanup-interval-ms",
        alias = "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        env = "KLAMM_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS",
        default_value_t = 10_000,
        help_heading = "Transactions",
        value_name = "MS"
    )]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: u64,

    /// Kafka's `transactional.id.expiration.ms` (7 days): a transactional id with no
    /// transaction open and no request for this long is forgotten; its producer id is not
    /// reused, and a producer that comes back gets a new one.
    #[arg(
        long = "transactional-id-expiration-ms",
        alias = "transactional.id.expiration.ms",
        env = "KLAMM_TRANSACTIONAL_ID_EXPIRATION_MS",
        default_value_t = 604_800_000,
        value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64),
        help_heading = "Transactions",
        value_name = "MS"
    )]
    pub transactional_id_expiration_ms: u64,

    /// Kafka's `transaction.remove.expired.transaction.cleanup.interval.ms`: how often
    /// expired transactional ids are looked for.
    #[arg(
        long = "transaction-remove-expired-transaction-cleanup-interval-ms",
        alias = "transaction.remove.expired.transaction.cleanup.interval.ms",
        env = "KLAMM_TRANSACTION_REMOVE_EXPIRED_TRANSACTION_CLEANUP_INTERVAL_MS",
        default_value_t = 3_600_000,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Transactions",
        value_name = "MS"
    )]
    pub transaction_remove_expired_transaction_cleanup_interval_ms: u64,

    /// Admin HTTP port (`/health`, `/ready`, Prometheus `/metrics`); off unless given.
    #[arg(
        long,
        env = "KLAMM_HTTP",
        help_heading = "Admin",
        value_name = "HOST:PORT"
    )]
    pub http: Option<SocketAddr>,

    /// Log filter (error, warn, info, debug, trace, or a tracing filter expression).
    #[arg(
        long,
        env = "KLAMM_LOG_LEVEL",
        default_value = "info",
        help_heading = "Admin",
        value_name = "FILTER"
    )]
    pub log_level: String,

    /// `text` (human-readable) or `json` (one object per line, for log collectors).
    #[arg(long, env = "KLAMM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, help_heading = "Admin", value_name = "FORMAT")]
    pub log_format: LogFormat,

    /// This broker's node id, as reported in Metadata.
    #[arg(
        long = "node-id",
        alias = "node.id",
        env = "KLAMM_NODE_ID",
        default_value_t = 1,
        help_heading = "Listeners",
        value_name = "ID"
    )]
    pub node_id: i32,

    /// Kafka's `zookeeper.connect`: HOST:PORT[,HOST:PORT...][/chroot]. Makes this broker a
    /// member of the cluster whose metadata ZooKeeper holds; each broker needs its own
    /// `--node-id`. Without it Klamm is a single broker and needs no ZooKeeper.
    #[arg(
        long = "zookeeper-connect",
        alias = "zookeeper.connect",
        env = "KLAMM_ZOOKEEPER_CONNECT",
        help_heading = "Cluster",
        value_name = "HOSTS"
    )]
    pub zookeeper_connect: Option<String>,

    /// Kafka's `zookeeper.session.timeout.ms`: how long ZooKeeper waits for a silent broker
    /// before it removes the broker's registration (and its controllership).
    #[arg(
        long = "zookeeper-session-timeout-ms",
        alias = "zookeeper.session.timeout.ms",
        env = "KLAMM_ZOOKEEPER_SESSION_TIMEOUT_MS",
        default_value_t = 18_000,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000),
        help_heading = "Cluster",
        value_name = "MS"
    )]
    pub zookeeper_session_timeout_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::parse_from(["klamm"])
    }
}

impl BrokerConfig {
    /// A configuration for tests and embedding: a free loopback port and a temporary data dir.
    pub fn ephemeral() -> Self {
        BrokerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            ephemeral: true,
            ..BrokerConfig::default()
        }
    }

    /// `offsets.retention.minutes` in milliseconds, or `--offsets-retention-ms` when given.
    pub fn offsets_retention_ms(&self) -> u64 {
        self.offsets_retention_ms
            .unwrap_or(self.offsets_retention_minutes.saturating_mul(60_000))
    }
}

/// How the broker writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}
