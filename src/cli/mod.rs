//! `klamm topics|groups|produce|consume|users|acls`: quick checks from a shell, speaking the Kafka
//! protocol to `--bootstrap-server` as Kafka's own tools do, so they work against a real
//! Kafka too. Output follows Kafka's tools where they have one.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Buf, Bytes};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use kafka_protocol::ResponseError;

use crate::client::Client;

/// The CLI's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe and delete topics (like kafka-topics.sh).
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// List and describe consumer groups (like kafka-consumer-groups.sh).
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Produce stdin's lines, one message each (like kafka-console-producer.sh).
    Produce(ProduceArgs),
    /// Print messages of one partition (like kafka-console-consumer.sh).
    Consume(ConsumeArgs),
    /// Create, delete and list SASL/SCRAM users (like kafka-configs.sh --entity-type users).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Add, list and remove ACLs (like kafka-acls.sh).
    #[command(subcommand)]
    Acls(AclsCommand),
}

/// One ACL, or a pattern of them, as kafka-acls.sh takes it.
#[derive(Debug, Args, Clone)]
pub struct AclArgs {
    /// TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID (also `any` for list and remove).
    #[arg(long = "resource-type")]
    pub resource_type: Option<String>,
    /// The resource's name (`*` for every one; CLUSTER's is kafka-cluster).
    #[arg(long = "resource-name")]
    pub resource_name: Option<String>,
    /// LITERAL (default to add), PREFIXED; also ANY and MATCH for list and remove.
    #[arg(long = "resource-pattern-type")]
    pub pattern_type: Option<String>,
    /// `User:NAME` (or `User:*`).
    #[arg(long)]
    pub principal: Option<String>,
    /// The client address the ACL applies to (default `*`).
    #[arg(long)]
    pub host: Option<String>,
    /// READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS,
    /// ALTER_CONFIGS, IDEMPOTENT_WRITE, ALL.
    #[arg(long)]
    pub operation: Option<String>,
    /// ALLOW (default to add) or DENY.
    #[arg(long)]
    pub permission: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AclsCommand {
    /// Adds one ACL.
    Add {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        acl: AclArgs,
    },
    /// ACLs matching the options (all without any), one per line.
    List {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        acl: AclArgs,
    },
    /// Removes the ACLs matching the options and prints them.
    Remove {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        acl: AclArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Users and their SCRAM mechanisms, one per line.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Creates a user, or sets a new password, with SCRAM-SHA-256 and SCRAM-SHA-512
    /// credentials (PLAIN accepts the same password). The password is salted here; only
    /// the salted form goes to the broker.
    Create {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long, env = "KLAMM_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// Only this mechanism (SCRAM-SHA-256 or SCRAM-SHA-512).
        #[arg(long)]
        mechanism: Option<String>,
        #[arg(long, default_value_t = crate::security::scram::DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// Deletes a user's credentials (all of them unless --mechanism is given).
    Delete {
        #[command(flatten)]
        conn: Conn,
        name: String,
        #[arg(long)]
        mechanism: Option<String>,
    },
}

/// Where to connect, for every subcommand.
#[derive(Debug, Args, Clone)]
pub struct Conn {
    /// HOST:PORT of a broker.
    #[arg(
        long = "bootstrap-server",
        env = "KLAMM_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_server: String,
    /// How long to wait for each response.
    #[arg(long = "request-timeout-ms", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Authenticate with SASL/PLAIN as this user (a SASL_PLAINTEXT listener), e.g. a super
    /// user to manage ACLs when `--authorizer` is on.
    #[arg(long = "sasl-user", env = "KLAMM_SASL_USER")]
    pub sasl_user: Option<String>,
    #[arg(
        long = "sasl-password",
        env = "KLAMM_SASL_PASSWORD",
        hide_env_values = true,
        requires = "sasl_user"
    )]
    pub sasl_password: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Topic names, one per line.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    Create {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        topic: String,
        /// Default: the broker's num.partitions.
        #[arg(long)]
        partitions: Option<i32>,
        #[arg(long = "replication-factor")]
        replication_factor: Option<i16>,
        /// A topic config, `NAME=VALUE`; repeat for more.
        #[arg(long = "config")]
        config: Vec<String>,
    },
    /// Partitions, leaders and the configs set on the topic (all topics without --topic).
    Describe {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        topic: Option<String>,
    },
    Delete {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        topic: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupsCommand {
    /// Group ids, one per line.
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// State, members, and per partition the committed offset, log end and lag.
    Describe {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        group: String,
    },
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// Split each line into KEY SEP VALUE at the first SEP.
    #[arg(long = "key-separator")]
    key_separator: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    conn: Conn,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// Start at the log start offset instead of the end.
    #[arg(long = "from-beginning")]
    from_beginning: bool,
    /// Start at this offset.
    #[arg(long, conflicts_with = "from_beginning")]
    offset: Option<i64>,
    /// Stop after this many messages.
    #[arg(long = "max-messages")]
    max_messages: Option<u64>,
    /// Stop when no message arrives for this long.
    #[arg(long = "timeout-ms", default_value_t = 5_000)]
    timeout_ms: u64,
    /// Print KEY SEP VALUE.
    #[arg(long = "print-key")]
    print_key: bool,
    #[arg(long = "key-separator", default_value = "\t")]
    key_separator: String,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn check(code: i16, message: Option<&StrBytes>) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error {code}"));
    match message {
        Some(m) if !m.is_empty() => bail!("{name}: {m}"),
        _ => bail!("{name}"),
    }
}

async fn connect(conn: &Conn) -> anyhow::Result<Client> {
    let sasl = conn
        .sasl_user
        .as_ref()
        .map(|user| crate::client::SaslLogin {
            mechanism: crate::security::Mechanism::Plain,
            user: user.clone(),
            password: conn.sasl_password.clone().unwrap_or_default(),
        });
    Client::connect_with(
        &conn.bootstrap_server,
        Duration::from_millis(conn.request_timeout_ms),
        &crate::client::Security { tls: None, sasl },
    )
    .await
}

/// Runs a subcommand; output goes to stdout, errors are returned.
pub async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Topics(t) => topics(t).await,
        Command::Groups(g) => groups(g).await,
        Command::Produce(p) => produce(p).await,
        Command::Consume(c) => consume(c).await,
        Command::Users(u) => users(u).await,
        Command::Acls(a) => acls(a).await,
    }
}

fn mechanisms(named: Option<&str>) -> anyhow::Result<Vec<crate::security::scram::ScramMechanism>> {
    use crate::security::scram::ScramMechanism;
    match named {
        None => Ok(ScramMechanism::ALL.to_vec()),
        Some(n) => Ok(vec![ScramMechanism::from_name(&n.to_ascii_uppercase())
            .with_context(|| {
                format!("unknown mechanism {n} (SCRAM-SHA-256 or SCRAM-SHA-512)")
            })?]),
    }
}

async fn alter(c: &mut Client, req: AlterUserScramCredentialsRequest) -> anyhow::Result<()> {
    let resp = c.send(&req, 0).await?;
    for r in &resp.results {
        check(r.error_code, r.error_message.as_ref())
            .with_context(|| format!("user {}", r.user.as_str()))?;
    }
    Ok(())
}

async fn users(cmd: UsersCommand) -> anyhow::Result<()> {
    use crate::security::scram::ScramMechanism;
    use kafka_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    let mut out = std::io::stdout().lock();
    match cmd {
        UsersCommand::List { conn } => {
            let mut c = connect(&conn).await?;
            let resp = c
                .send(&DescribeUserScramCredentialsRequest::default(), 0)
                .await?;
            check(resp.error_code, resp.error_message.as_ref())?;
            let mut rows: Vec<(String, Vec<String>)> = resp
                .results
                .iter()
                .map(|r| {
                    let mechs = r
                        .credential_infos
                        .iter()
                        .map(|i| match ScramMechanism::from_kafka_type(i.mechanism) {
                            Some(m) => format!("{}(iterations={})", m.name(), i.iterations),
                            None => format!("mechanism {}", i.mechanism),
                        })
                        .collect();
                    (r.user.to_string(), mechs)
                })
                .collect();
            rows.sort();
            for (user, mechs) in rows {
                writeln!(out, "{user}\t{}", mechs.join(","))?;
            }
        }
        UsersCommand::Create {
            conn,
            name,
            password,
            mechanism,
            iterations,
        } => {
            let mut c = connect(&conn).await?;
            let mut upsertions = Vec::new();
            for m in mechanisms(mechanism.as_deref())? {
                let mut salt = vec![0u8; 32];
                getrandom::getrandom(&mut salt).map_err(|e| anyhow::anyhow!("random salt: {e}"))?;
                let salted = m.salted_password(password.as_bytes(), &salt, iterations);
                upsertions.push(
                    ScramCredentialUpsertion::default()
                        .with_name(sb(&name))
                        .with_mechanism(m.kafka_type())
                        .with_iterations(iterations as i32)
                        .with_salt(salt.into())
                        .with_salted_password(salted.into()),
                );
            }
            // Kafka takes one change per user per request.
            for u in upsertions {
                alter(
                    &mut c,
                    AlterUserScramCredentialsRequest::default().with_upsertions(vec![u]),
                )
                .await?;
            }
            writeln!(out, "created {name}")?;
        }
        UsersCommand::Delete {
            conn,
            name,
            mechanism,
        } => {
            let mut c = connect(&conn).await?;
            let wanted = match mechanism {
                Some(m) => mechanisms(Some(&m))?,
                None => {
                    let resp = c
                        .send(
                            &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                                describe_user_scram_credentials_request::UserName::default()
                                    .with_name(sb(&name)),
                            ])),
                            0,
                        )
                        .await?;
                    let r = resp.results.first().context("no result")?;
                    check(r.error_code, r.error_message.as_ref())?;
                    r.credential_infos
                        .iter()
                        .filter_map(|i| ScramMechanism::from_kafka_type(i.mechanism))
                        .collect()
                }
            };
            for m in wanted {
                alter(
                    &mut c,
                    AlterUserScramCredentialsRequest::default().with_deletions(vec![
                        ScramCredentialDeletion::default()
                            .with_name(sb(&name))
                            .with_mechanism(m.kafka_type()),
                    ]),
                )
                .await?;
            }
            writeln!(out, "deleted {name}")?;
        }
    }
    Ok(())
}

async fn metadata(c: &mut Client, topics: Option<Vec<String>>) -> anyhow::Result<MetadataResponse> {
    let req = MetadataRequest::default()
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(sb(t)))))
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    c.send(&req, 12).await
}

async fn topics(cmd: TopicsCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        TopicsCommand::List { conn } => {
            let md = metadata(&mut connect(&conn).await?, None).await?;
            let mut names: Vec<String> = md
                .topics
                .iter()
                .filter(|t| !t.is_internal)
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            names.sort();
            for n in names {
                writeln!(out, "{n}")?;
            }
        }
        TopicsCommand::Create {
            conn,
            topic,
            partitions,
            replication_factor,
            config,
        } => {
            let configs = config
                .iter()
                .map(|kv| {
                    let (k, v) = kv
                        .split_once('=')
                        .with_context(|| format!("--config {kv}: expected NAME=VALUE"))?;
                    Ok(CreatableTopicConfig::default()
                        .with_name(sb(k.trim()))
                        .with_value(Some(sb(v.trim()))))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(sb(&topic)))
                    .with_num_partitions(partitions.unwrap_or(-1))
                    .with_replication_factor(replication_factor.unwrap_or(-1))
                    .with_configs(configs)]);
            let r = connect(&conn).await?.send(&req, 5).await?;
            let t = r.topics.first().context("empty CreateTopics response")?;
            check(t.error_code, t.error_message.as_ref())?;
            writeln!(out, "Created topic {topic}.")?;
        }
        TopicsCommand::Describe { conn, topic } => {
            let mut c = connect(&conn).await?;
            let md = metadata(&mut c, topic.clone().map(|t| vec![t])).await?;
            let mut topics: Vec<_> = md.topics.into_iter().filter(|t| !t.is_internal).collect();
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            for t in topics {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                check(t.error_code, None).with_context(|| format!("topic {name}"))?;
                let req = DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(sb(&name))
                        .with_configuration_keys(None),
                ]);
                let cfg = c.send(&req, 4).await?;
                let set: Vec<String> = cfg
                    .results
                    .iter()
                    .flat_map(|r| r.configs.iter())
                    .filter(|e| e.config_source == 1)
                    .map(|e| {
                        format!(
                            "{}={}",
                            e.name,
                            e.value.as_ref().map(|v| v.to_string()).unwrap_or_default()
                        )
                    })
                    .collect();
                let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
                writeln!(
                    out,
                    "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}",
                    t.topic_id,
                    t.partitions.len(),
                    set.join(",")
                )?;
                let mut parts = t.partitions;
                parts.sort_by_key(|p| p.partition_index);
                for p in parts {
                    let ids = |v: &[BrokerId]| {
                        v.iter()
                            .map(|b| b.0.to_string())
                            .collect::<Vec<_>>()
                            .join(",")
                    };
                    writeln!(
                        out,
                        "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                        p.partition_index,
                        p.leader_id.0,
                        ids(&p.replica_nodes),
                        ids(&p.isr_nodes)
                    )?;
                }
            }
        }
        TopicsCommand::Delete { conn, topic } => {
            let req = DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(vec![TopicName(sb(&topic))]);
            let r = connect(&conn).await?.send(&req, 4).await?;
            let t = r.responses.first().context("empty DeleteTopics response")?;
            check(t.error_code, t.error_message.as_ref())?;
            writeln!(out, "Deleted topic {topic}.")?;
        }
    }
    Ok(())
}

/// Partitions of a consumer-protocol assignment: topic -> partitions.
fn decode_assignment(mut b: Bytes) -> BTreeMap<String, Vec<i32>> {
    let mut out = BTreeMap::new();
    let mut read = || -> Option<()> {
        if b.remaining() < 6 {
            return None;
        }
        b.get_i16();
        let topics = b.get_i32();
        for _ in 0..topics.max(0) {
            if b.remaining() < 2 {
                return None;
            }
            let len = b.get_i16().max(0) as usize;
            if b.remaining() < len + 4 {
                return None;
            }
            let name = String::from_utf8_lossy(&b.split_to(len)).into_owned();
            let n = b.get_i32().max(0) as usize;
            if b.remaining() < n * 4 {
                return None;
            }
            let parts = (0..n).map(|_| b.get_i32()).collect();
            out.insert(name, parts);
        }
        Some(())
    };
    let _ = read();
    out
}

async fn groups(cmd: GroupsCommand) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        GroupsCommand::List { conn } => {
            let r = connect(&conn)
                .await?
                .send(&ListGroupsRequest::default(), 4)
                .await?;
            check(r.error_code, None)?;
            let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
            ids.sort();
            for id in ids {
                writeln!(out, "{id}")?;
            }
        }
        GroupsCommand::Describe { conn, group } => {
            let mut c = connect(&conn).await?;
            let d = c
                .send(
                    &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(&group))]),
                    5,
                )
                .await?;
            let g = d.groups.first().context("empty DescribeGroups response")?;
            check(g.error_code, None)?;
            // partition -> (consumer id, host, client id)
            let mut owners = BTreeMap::new();
            for m in &g.members {
                for (topic, parts) in decode_assignment(m.member_assignment.clone()) {
                    for p in parts {
                        owners.insert(
                            (topic.clone(), p),
                            (
                                m.member_id.to_string(),
                                m.client_host.to_string(),
                                m.client_id.to_string(),
                            ),
                        );
                    }
                }
            }
            let offsets = c
                .send(
                    &OffsetFetchRequest::default()
                        .with_group_id(GroupId(sb(&group)))
                        .with_topics(None),
                    7,
                )
                .await?;
            check(offsets.error_code, None)?;
            let mut rows: BTreeMap<(String, i32), i64> = BTreeMap::new();
            for t in &offsets.topics {
                for p in &t.partitions {
                    rows.insert(
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    );
                }
            }
            for k in owners.keys() {
                rows.entry(k.clone()).or_insert(-1);
            }
            writeln!(
                out,
                "Consumer group '{group}': state {}, protocol {}, {} member(s)",
                g.group_state,
                g.protocol_data,
                g.members.len()
            )?;
            writeln!(out)?;
            writeln!(out, "GROUP\tTOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID")?;
            for ((topic, p), committed) in rows {
                let end = log_end(&mut c, &topic, p).await.unwrap_or(-1);
                let (cur, lag) = if committed >= 0 && end >= 0 {
                    (committed.to_string(), (end - committed).to_string())
                } else {
                    ("-".to_string(), "-".to_string())
                };
                let (id, host, client) = owners.get(&(topic.clone(), p)).cloned().unwrap_or((
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ));
                writeln!(
                    out,
                    "{group}\t{topic}\t{p}\t{cur}\t{end}\t{lag}\t{id}\t{host}\t{client}"
                )?;
            }
        }
    }
    Ok(())
}

/// ListOffsets for one partition: -1 latest, -2 earliest.
async fn list_offset(c: &mut Client, topic: &str, partition: i32, at: i64) -> anyhow::Result<i64> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(at)])]);
    let r = c.send(&req, 7).await?;
    let p = r
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .context("empty ListOffsets response")?;
    check(p.error_code, None)?;
    Ok(p.offset)
}

async fn log_end(c: &mut Client, topic: &str, partition: i32) -> anyhow::Result<i64> {
    list_offset(c, topic, partition, -1).await
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let mut c = connect(&args.conn).await?;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    loop {
        let mut records = Vec::new();
        for line in lines.by_ref().take(1000) {
            let line = line?;
            let (key, value) = match &args.key_separator {
                Some(sep) => match line.split_once(sep.as_str()) {
                    Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                    None => (None, line),
                },
                None => (None, line),
            };
            records.push((key, Some(Bytes::from(value))));
        }
        if records.is_empty() {
            return Ok(());
        }
        let batch = crate::log::batch::plain_batch(records, now)
            .map_err(|e| anyhow::anyhow!("encoding the batch: {e:?}"))?;
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(sb(&args.topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(args.partition)
                    .with_records(Some(batch))])]);
        let r = c.send(&req, 9).await?;
        let p = r
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .context("empty Produce response")?;
        check(p.error_code, p.error_message.as_ref())?;
    }
}

async fn consume(args: ConsumeArgs) -> anyhow::Result<()> {
    let mut c = connect(&args.conn).await?;
    let mut offset = match (args.offset, args.from_beginning) {
        (Some(o), _) => o,
        (None, true) => list_offset(&mut c, &args.topic, args.partition, -2).await?,
        (None, false) => list_offset(&mut c, &args.topic, args.partition, -1).await?,
    };
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    let idle = Duration::from_millis(args.timeout_ms);
    let mut last = Instant::now();
    while args.max_messages.is_none_or(|m| printed < m) && last.elapsed() < idle {
        let wait = idle
            .saturating_sub(last.elapsed())
            .min(Duration::from_millis(500));
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(wait.as_millis() as i32)
            .with_min_bytes(1)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(sb(&args.topic)))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(args.partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(4 << 20)])]);
        let r = c.send(&req, 12).await?;
        check(r.error_code, None)?;
        let p = r
            .responses
            .first()
            .and_then(|t| t.partitions.first())
            .context("empty Fetch response")?;
        check(p.error_code, None)?;
        let mut records = p.records.clone().unwrap_or_default();
        'batches: while records.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut records)?;
            for rec in set.records {
                if args.max_messages.is_some_and(|m| printed >= m) {
                    break 'batches;
                }
                if rec.offset < offset || rec.control {
                    continue;
                }
                offset = rec.offset + 1;
                last = Instant::now();
                if args.print_key {
                    out.write_all(rec.key.as_deref().unwrap_or(b"null"))?;
                    out.write_all(args.key_separator.as_bytes())?;
                }
                out.write_all(rec.value.as_deref().unwrap_or(b"null"))?;
                out.write_all(b"\n")?;
                printed += 1;
            }
        }
        out.flush()?;
    }
    Ok(())
}

fn parse_or<T>(
    what: &str,
    given: Option<&str>,
    default: T,
    parse: impl Fn(&str) -> Option<T>,
) -> anyhow::Result<T> {
    match given {
        None => Ok(default),
        Some(s) => parse(s).with_context(|| format!("unknown {what} {s:?}")),
    }
}

/// The filter the options describe (unset options match anything).
fn acl_filter(a: &AclArgs) -> anyhow::Result<crate::security::acl::AclFilter> {
    use crate::security::acl::*;
    Ok(AclFilter {
        resource_type: parse_or(
            "resource type",
            a.resource_type.as_deref(),
            ResourceType::Any,
            ResourceType::parse,
        )?,
        name: a.resource_name.clone(),
        pattern: parse_or(
            "pattern type",
            a.pattern_type.as_deref(),
            PatternType::Any,
            PatternType::parse,
        )?,
        principal: a.principal.clone(),
        host: a.host.clone(),
        operation: parse_or(
            "operation",
            a.operation.as_deref(),
            Operation::Any,
            Operation::parse,
        )?,
        permission: parse_or(
            "permission",
            a.permission.as_deref(),
            Permission::Any,
            Permission::parse,
        )?,
    })
}

fn acl_line(
    rt: i8,
    name: &str,
    pattern: i8,
    principal: &str,
    host: &str,
    op: i8,
    perm: i8,
) -> String {
    use crate::security::acl::*;
    format!(
        "{}:{}:{}\t{principal}\t{host}\t{}\t{}",
        ResourceType::from_code(rt).name(),
        PatternType::from_code(pattern).name(),
        name,
        Operation::from_code(op).name(),
        Permission::from_code(perm).name()
    )
}

async fn acls(cmd: AclsCommand) -> anyhow::Result<()> {
    use crate::security::acl::*;
    let mut out = std::io::stdout().lock();
    match cmd {
        AclsCommand::Add { conn, acl } => {
            let f = acl_filter(&acl)?;
            let need = |v: Option<&String>, flag: &str| {
                v.cloned().with_context(|| format!("acls add needs {flag}"))
            };
            let creation = create_acls_request::AclCreation::default()
                .with_resource_type(match f.resource_type {
                    ResourceType::Any => bail!("acls add needs --resource-type"),
                    rt => rt.code(),
                })
                .with_resource_name(sb(&match f.resource_type {
                    ResourceType::Cluster => {
                        acl.resource_name.clone().unwrap_or(CLUSTER_NAME.into())
                    }
                    _ => need(acl.resource_name.as_ref(), "--resource-name")?,
                }))
                .with_resource_pattern_type(match f.pattern {
                    PatternType::Any => PatternType::Literal.code(),
                    p => p.code(),
                })
                .with_principal(sb(&need(acl.principal.as_ref(), "--principal")?))
                .with_host(sb(acl.host.as_deref().unwrap_or(WILDCARD)))
                .with_operation(match f.operation {
                    Operation::Any => bail!("acls add needs --operation"),
                    op => op.code(),
                })
                .with_permission_type(match f.permission {
                    Permission::Any => Permission::Allow.code(),
                    p => p.code(),
                });
            let line = acl_line(
                creation.resource_type,
                &creation.resource_name,
                creation.resource_pattern_type,
                &creation.principal,
                &creation.host,
                creation.operation,
                creation.permission_type,
            );
            let mut c = connect(&conn).await?;
            let resp = c
                .send(
                    &CreateAclsRequest::default().with_creations(vec![creation]),
                    3,
                )
                .await?;
            let r = resp.results.first().context("no result")?;
            check(r.error_code, r.error_message.as_ref())?;
            writeln!(out, "added {line}")?;
        }
        AclsCommand::List { conn, acl } => {
            let f = acl_filter(&acl)?;
            let mut c = connect(&conn).await?;
            let resp = c
                .send(
                    &DescribeAclsRequest::default()
                        .with_resource_type_filter(f.resource_type.code())
                        .with_resource_name_filter(f.name.as_deref().map(sb))
                        .with_pattern_type_filter(f.pattern.code())
                        .with_principal_filter(f.principal.as_deref().map(sb))
                        .with_host_filter(f.host.as_deref().map(sb))
                        .with_operation(f.operation.code())
                        .with_permission_type(f.permission.code()),
                    3,
                )
                .await?;
            check(resp.error_code, resp.error_message.as_ref())?;
            for r in &resp.resources {
                for a in &r.acls {
                    writeln!(
                        out,
                        "{}",
                        acl_line(
                            r.resource_type,
                            &r.resource_name,
                            r.pattern_type,
                            &a.principal,
                            &a.host,
                            a.operation,
                            a.permission_type
                        )
                    )?;
                }
            }
        }
        AclsCommand::Remove { conn, acl } => {
            let f = acl_filter(&acl)?;
            let mut c = connect(&conn).await?;
            let resp = c
                .send(
                    &DeleteAclsRequest::default().with_filters(vec![
                        delete_acls_request::DeleteAclsFilter::default()
                            .with_resource_type_filter(f.resource_type.code())
                            .with_resource_name_filter(f.name.as_deref().map(sb))
                            .with_pattern_type_filter(f.pattern.code())
                            .with_principal_filter(f.principal.as_deref().map(sb))
                            .with_host_filter(f.host.as_deref().map(sb))
                            .with_operation(f.operation.code())
                            .with_permission_type(f.permission.code()),
                    ]),
                    3,
                )
                .await?;
            let r = resp.filter_results.first().context("no result")?;
            check(r.error_code, r.error_message.as_ref())?;
            for a in &r.matching_acls {
                writeln!(
                    out,
                    "removed {}",
                    acl_line(
                        a.resource_type,
                        &a.resource_name,
                        a.pattern_type,
                        &a.principal,
                        &a.host,
                        a.operation,
                        a.permission_type
                    )
                )?;
            }
        }
    }
    Ok(())
}
