//! Streams groups as records of `__consumer_offsets`, in Kafka 4.4's own format.
//!
//! Kafka's group coordinator keeps a streams group as six record types: the group epoch
//! (key type 17), each member's identity and process (19), the target assignment's epoch
//! (20) and each member's target tasks (21), each member's current tasks with its epochs
//! (22), and the topology (23). Klamm writes the same records when a heartbeat changes any
//! of them, so the broker that takes a coordinator's partition over knows the members,
//! their epochs and tasks, and the stored topology: Kafka Streams threads carry on with
//! the epoch they have instead of dropping every task and rejoining. Values are version 0,
//! flexible (compact strings and arrays, tagged fields).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::super::consumer_journal::{
    compact_len, compact_string, open_record, put_compact, put_uvarint, skip_tags, uvarint,
    value_of,
};
use super::super::journal::{put_str, Reader};
use super::assignor::Task;
use super::group::Endpoint;
use super::reconcile::{Current, MemberState, TaskSets};
use super::topology::{CopartitionGroup, Subtopology, TopicInfo, Topology};

/// One record of a streams group, as written and as read back; `None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamsRecord {
    /// `StreamsGroupMetadata`: the group epoch and the hash that decided it. Its tombstone
    /// deletes the group.
    Metadata(Option<GroupMeta>),
    /// `StreamsGroupMemberMetadata`: who the member is.
    Member(String, Option<MemberMeta>),
    /// `StreamsGroupTargetAssignmentMetadata`: the epoch of the target assignment.
    TargetEpoch(Option<i32>),
    /// `StreamsGroupTargetAssignmentMember`: one member's target tasks.
    Target(String, Option<TaskSets>),
    /// `StreamsGroupCurrentMemberAssignment`: one member's epochs and tasks.
    Current(String, Option<Current>),
    /// `StreamsGroupTopology`: the topology the group runs.
    Topology(Option<Topology>),
}

/// `StreamsGroupMetadataValue`'s fields that Klamm uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupMeta {
    pub epoch: i32,
    /// Kafka's hash of the group's topics; Klamm keeps the fingerprint of what decides the
    /// assignment here, so a new coordinator does not bump the epoch for nothing.
    pub metadata_hash: i64,
}

/// A member's identity (`StreamsGroupMemberMetadataValue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMeta {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: BTreeMap<String, String>,
}

const METADATA: i16 = 17;
const MEMBER: i16 = 19;
const TARGET_EPOCH: i16 = 20;
const TARGET: i16 = 21;
const CURRENT: i16 = 22;
const TOPOLOGY: i16 = 23;

/// Whether a key version is one of the streams group record types.
pub fn is_streams_key(version: i16) -> bool {
    matches!(version, METADATA | MEMBER..=TOPOLOGY)
}

/// The record's key and value (None for a tombstone).
pub fn encode(group: &str, r: &StreamsRecord) -> (Bytes, Option<Bytes>) {
    let (version, member) = match r {
        StreamsRecord::Metadata(_) => (METADATA, None),
        StreamsRecord::Member(m, _) => (MEMBER, Some(m)),
        StreamsRecord::TargetEpoch(_) => (TARGET_EPOCH, None),
        StreamsRecord::Target(m, _) => (TARGET, Some(m)),
        StreamsRecord::Current(m, _) => (CURRENT, Some(m)),
        StreamsRecord::Topology(_) => (TOPOLOGY, None),
    };
    let mut k = Vec::with_capacity(6 + group.len() + member.map_or(0, |m| m.len()));
    k.extend_from_slice(&version.to_be_bytes());
    put_str(&mut k, group);
    if let Some(m) = member {
        put_str(&mut k, m);
    }
    let mut v = Vec::with_capacity(64);
    v.extend_from_slice(&0i16.to_be_bytes());
    let value = match r {
        StreamsRecord::Metadata(m) => m.map(|m| {
            v.extend_from_slice(&m.epoch.to_be_bytes());
            v.extend_from_slice(&m.metadata_hash.to_be_bytes());
        }),
        StreamsRecord::TargetEpoch(e) => e.map(|e| v.extend_from_slice(&e.to_be_bytes())),
        StreamsRecord::Member(_, m) => m.as_ref().map(|m| put_member(&mut v, m)),
        StreamsRecord::Target(_, t) => t.as_ref().map(|t| {
            put_tasks(&mut v, &t.active, None);
            put_tasks(&mut v, &t.standby, None);
            put_tasks(&mut v, &t.warmup, None);
        }),
        StreamsRecord::Current(_, c) => c.as_ref().map(|c| {
            v.extend_from_slice(&c.epoch.to_be_bytes());
            v.extend_from_slice(&c.previous_epoch.to_be_bytes());
            v.push(c.state as u8);
            put_tasks(&mut v, &c.assigned.active, Some(&c.active_epochs));
            put_tasks(&mut v, &c.assigned.standby, None);
            put_tasks(&mut v, &c.assigned.warmup, None);
            put_tasks(&mut v, &c.pending_revocation.active, Some(&c.active_epochs));
            put_tasks(&mut v, &c.pending_revocation.standby, None);
            put_tasks(&mut v, &c.pending_revocation.warmup, None);
        }),
        StreamsRecord::Topology(t) => t.as_ref().map(|t| put_topology(&mut v, t)),
    };
    let value = value.map(|()| {
        put_uvarint(&mut v, 0); // no tagged fields
        Bytes::from(v)
    });
    (Bytes::from(k), value)
}

/// Reads a streams group record back (the key's version already read from `k`). None for
/// bytes it cannot parse; every length is checked against what is left before it is used.
pub(in crate::group) fn parse(
    version: i16,
    k: &mut Reader<'_>,
    value: Option<&[u8]>,
) -> Option<(String, StreamsRecord)> {
    let (group, member, mut v) =
        open_record(k, value, matches!(version, MEMBER | TARGET | CURRENT))?;
    let record = match (version, member, v.as_mut()) {
        (METADATA, _, v) => StreamsRecord::Metadata(value_of(v, |v| {
            Some(GroupMeta {
                epoch: v.i32()?,
                metadata_hash: v.i64()?,
            })
        })?),
        (TARGET_EPOCH, _, v) => StreamsRecord::TargetEpoch(value_of(v, |v| v.i32())?),
        (MEMBER, Some(m), v) => StreamsRecord::Member(m, value_of(v, member_meta)?),
        (TARGET, Some(m), v) => StreamsRecord::Target(
            m,
            value_of(v, |v| {
                Some(TaskSets {
                    active: tasks(v)?.0,
                    standby: tasks(v)?.0,
                    warmup: tasks(v)?.0,
                })
            })?,
        ),
        (CURRENT, Some(m), v) => StreamsRecord::Current(m, value_of(v, current)?),
        (TOPOLOGY, _, v) => StreamsRecord::Topology(value_of(v, topology)?),
        _ => return None,
    };
    Some((group, record))
}

fn put_array<T>(out: &mut Vec<u8>, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T)) {
    put_uvarint(out, items.len() as u64 + 1);
    for i in items {
        put(out, i);
    }
}

fn put_strings(out: &mut Vec<u8>, items: &[String]) {
    put_array(out, items, |o, s| put_compact(o, Some(s)));
}

/// `[]KeyValue` / `[]TopicConfig`: key, value, no tagged fields.
fn put_pairs(out: &mut Vec<u8>, pairs: &BTreeMap<String, String>) {
    put_uvarint(out, pairs.len() as u64 + 1);
    for (k, v) in pairs {
        put_compact(out, Some(k));
        put_compact(out, Some(v));
        put_uvarint(out, 0);
    }
}

fn put_member(v: &mut Vec<u8>, m: &MemberMeta) {
    put_compact(v, m.instance_id.as_deref());
    put_compact(v, m.rack_id.as_deref());
    put_compact(v, Some(&m.client_id));
    put_compact(v, Some(&m.client_host));
    v.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
    v.extend_from_slice(&m.topology_epoch.to_be_bytes());
    put_compact(v, Some(&m.process_id));
    match &m.user_endpoint {
        None => v.push(0xff), // a null struct is -1
        Some(e) => {
            v.push(1);
            put_compact(v, Some(&e.host));
            v.extend_from_slice(&e.port.to_be_bytes());
            put_uvarint(v, 0);
        }
    }
    put_pairs(v, &m.client_tags);
}

/// `[]TaskIds`: per subtopology its partitions, and for active tasks the epoch at which
/// each was assigned (tagged field 0, `AssignmentEpochs`).
fn put_tasks(out: &mut Vec<u8>, tasks: &BTreeSet<Task>, epochs: Option<&BTreeMap<Task, i32>>) {
    let mut by_subtopology: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (s, p) in tasks {
        by_subtopology.entry(s).or_default().push(*p);
    }
    put_uvarint(out, by_subtopology.len() as u64 + 1);
    for (s, ps) in by_subtopology {
        put_compact(out, Some(s));
        put_array(out, &ps, |o, p| o.extend_from_slice(&p.to_be_bytes()));
        match epochs {
            None => put_uvarint(out, 0),
            Some(epochs) => {
                let mut field = Vec::with_capacity(1 + 4 * ps.len());
                put_array(&mut field, &ps, |o, p| {
                    let e = epochs.get(&(s.to_string(), *p)).copied().unwrap_or(-1);
                    o.extend_from_slice(&e.to_be_bytes());
                });
                put_uvarint(out, 1); // one tagged field
                put_uvarint(out, 0); // tag 0
                put_uvarint(out, field.len() as u64);
                out.extend_from_slice(&field);
            }
        }
    }
}

fn put_topic_info(out: &mut Vec<u8>, t: &TopicInfo) {
    put_compact(out, Some(&t.name));
    out.extend_from_slice(&t.partitions.to_be_bytes());
    out.extend_from_slice(&t.replication_factor.to_be_bytes());
    put_pairs(out, &t.configs);
    put_uvarint(out, 0);
}

fn put_topology(v: &mut Vec<u8>, t: &Topology) {
    v.extend_from_slice(&t.epoch.to_be_bytes());
    put_array(v, &t.subtopologies, |v, s| {
        put_compact(v, Some(&s.id));
        put_strings(v, &s.source_topics);
        put_strings(v, &[]); // SourceTopicRegex: refused at the heartbeat
        put_array(v, &s.state_changelog_topics, put_topic_info);
        put_strings(v, &s.repartition_sink_topics);
        put_array(v, &s.repartition_source_topics, put_topic_info);
        put_array(v, &s.copartition_groups, |v, g| {
            let idx = |v: &mut Vec<u8>, xs: &[i16]| {
                put_array(v, xs, |o, i| o.extend_from_slice(&i.to_be_bytes()))
            };
            idx(v, &g.source_topics);
            idx(v, &[]);
            idx(v, &g.repartition_source_topics);
            put_uvarint(v, 0);
        });
        put_uvarint(v, 0);
    });
}

/// A compact array's items read by `item`; null reads as empty.
fn array<T>(
    v: &mut Reader<'_>,
    mut item: impl FnMut(&mut Reader<'_>) -> Option<T>,
) -> Option<Vec<T>> {
    let n = compact_len(v)?.unwrap_or(0);
    let mut out = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        out.push(item(v)?);
    }
    Some(out)
}

fn string(v: &mut Reader<'_>) -> Option<String> {
    compact_string(v)?
}

fn pairs(v: &mut Reader<'_>) -> Option<BTreeMap<String, String>> {
    let items = array(v, |v| {
        let kv = (string(v)?, string(v)?);
        skip_tags(v)?;
        Some(kv)
    })?;
    Some(items.into_iter().collect())
}

fn member_meta(v: &mut Reader<'_>) -> Option<MemberMeta> {
    let instance_id = compact_string(v)?;
    let rack_id = compact_string(v)?;
    let client_id = string(v)?;
    let client_host = string(v)?;
    let rebalance_timeout_ms = v.i32()?;
    let topology_epoch = v.i32()?;
    let process_id = string(v)?;
    let user_endpoint = match *v.take(1)?.first()? as i8 {
        -1 => None,
        _ => {
            let host = string(v)?;
            let port = u16::from_be_bytes(v.take(2)?.try_into().ok()?);
            skip_tags(v)?;
            Some(Endpoint { host, port })
        }
    };
    Some(MemberMeta {
        instance_id,
        rack_id,
        client_id,
        client_host,
        rebalance_timeout_ms,
        topology_epoch,
        process_id,
        user_endpoint,
        client_tags: pairs(v)?,
    })
}

/// `[]TaskIds` and, from tagged field 0, each task's assignment epoch.
fn tasks(v: &mut Reader<'_>) -> Option<(BTreeSet<Task>, BTreeMap<Task, i32>)> {
    let mut out = BTreeSet::new();
    let mut epochs = BTreeMap::new();
    for _ in 0..compact_len(v)?.unwrap_or(0) {
        let s = string(v)?;
        let ps = array(v, |v| v.i32())?;
        for _ in 0..uvarint(v)? {
            let tag = uvarint(v)?;
            let size = usize::try_from(uvarint(v)?).ok()?;
            let mut field = Reader(v.take(size)?);
            if tag == 0 {
                let es = array(&mut field, |f| f.i32())?;
                for (p, e) in ps.iter().zip(es) {
                    if e >= 0 {
                        epochs.insert((s.clone(), *p), e);
                    }
                }
            }
        }
        out.extend(ps.into_iter().map(|p| (s.clone(), p)));
    }
    Some((out, epochs))
}

fn current(v: &mut Reader<'_>) -> Option<Current> {
    let epoch = v.i32()?;
    let previous_epoch = v.i32()?;
    let state = match *v.take(1)?.first()? {
        2 => MemberState::UnrevokedTasks,
        3 => MemberState::UnreleasedTasks,
        _ => MemberState::Stable,
    };
    let (active, active_epochs) = tasks(v)?;
    let assigned = TaskSets {
        active,
        standby: tasks(v)?.0,
        warmup: tasks(v)?.0,
    };
    let (pending_active, pending_epochs) = tasks(v)?;
    let mut active_epochs = active_epochs;
    active_epochs.extend(pending_epochs);
    let pending_revocation = TaskSets {
        active: pending_active,
        standby: tasks(v)?.0,
        warmup: tasks(v)?.0,
    };
    Some(Current {
        epoch,
        previous_epoch,
        state,
        assigned,
        pending_revocation,
        active_epochs,
    })
}

fn topic_info(v: &mut Reader<'_>) -> Option<TopicInfo> {
    let t = TopicInfo {
        name: string(v)?,
        partitions: v.i32()?,
        replication_factor: v.i16()?,
        configs: pairs(v)?,
    };
    skip_tags(v)?;
    Some(t)
}

fn topology(v: &mut Reader<'_>) -> Option<Topology> {
    let epoch = v.i32()?;
    let subtopologies = array(v, |v| {
        let id = string(v)?;
        let source_topics = array(v, string)?;
        array(v, string)?; // SourceTopicRegex
        let state_changelog_topics = array(v, topic_info)?;
        let repartition_sink_topics = array(v, string)?;
        let repartition_source_topics = array(v, topic_info)?;
        let copartition_groups = array(v, |v| {
            let source_topics = array(v, |v| v.i16())?;
            array(v, |v| v.i16())?;
            let repartition_source_topics = array(v, |v| v.i16())?;
            skip_tags(v)?;
            Some(CopartitionGroup {
                source_topics,
                repartition_source_topics,
            })
        })?;
        skip_tags(v)?;
        Some(Subtopology {
            id,
            source_topics,
            repartition_sink_topics,
            state_changelog_topics,
            repartition_source_topics,
            copartition_groups,
        })
    })?;
    Some(Topology {
        epoch,
        subtopologies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: StreamsRecord) {
        let (k, v) = encode("app", &r);
        let mut kr = Reader(&k);
        let version = kr.i16().unwrap();
        assert!(is_streams_key(version));
        assert_eq!(
            parse(version, &mut kr, v.as_deref()),
            Some(("app".to_string(), r))
        );
    }

    fn t(s: &str, p: i32) -> Task {
        (s.to_string(), p)
    }

    fn word_count() -> Topology {
        let info = |name: &str, partitions| TopicInfo {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: [("cleanup.policy".to_string(), "compact".to_string())].into(),
        };
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["in".into()],
                    repartition_sink_topics: vec!["app-words-repartition".into()],
                    ..Default::default()
                },
                Subtopology {
                    id: "1".into(),
                    repartition_source_topics: vec![info("app-words-repartition", 0)],
                    state_changelog_topics: vec![info("app-counts-changelog", 0)],
                    copartition_groups: vec![CopartitionGroup {
                        source_topics: vec![],
                        repartition_source_topics: vec![0],
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn records_round_trip_in_kafkas_format() {
        round_trip(StreamsRecord::Metadata(Some(GroupMeta {
            epoch: 5,
            metadata_hash: -3,
        })));
        round_trip(StreamsRecord::Metadata(None));
        round_trip(StreamsRecord::TargetEpoch(Some(5)));
        round_trip(StreamsRecord::Topology(Some(word_count())));
        round_trip(StreamsRecord::Topology(None));
        round_trip(StreamsRecord::Member(
            "m".into(),
            Some(MemberMeta {
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "app-StreamThread-1-consumer".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                topology_epoch: 0,
                process_id: "5f0c".into(),
                user_endpoint: Some(Endpoint {
                    host: "localhost".into(),
                    port: 8080,
                }),
                client_tags: [("zone".to_string(), "a".to_string())].into(),
            }),
        ));
        round_trip(StreamsRecord::Member("m".into(), None));
        let sets = TaskSets {
            active: [t("0", 0), t("0", 2), t("1", 1)].into(),
            standby: [t("1", 0)].into(),
            warmup: BTreeSet::new(),
        };
        round_trip(StreamsRecord::Target("m".into(), Some(sets.clone())));
        round_trip(StreamsRecord::Current(
            "m".into(),
            Some(Current {
                epoch: 7,
                previous_epoch: 6,
                state: MemberState::UnrevokedTasks,
                active_epochs: [(t("0", 0), 3), (t("0", 2), 7), (t("1", 1), 7)].into(),
                assigned: sets,
                pending_revocation: TaskSets {
                    active: [t("0", 1)].into(),
                    ..Default::default()
                },
            }),
        ));
        // Kafka's bytes for the group metadata: key type 17, "g"; value version 0, epoch,
        // hash, no tagged fields.
        let (k, v) = encode(
            "g",
            &StreamsRecord::Metadata(Some(GroupMeta {
                epoch: 5,
                metadata_hash: 1,
            })),
        );
        assert_eq!(&k[..], &[0, 17, 0, 1, b'g']);
        assert_eq!(
            &v.unwrap()[..],
            &[0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn corrupt_records_are_refused_without_allocating() {
        for r in [
            StreamsRecord::Topology(Some(word_count())),
            StreamsRecord::Current(
                "m".into(),
                Some(Current {
                    assigned: TaskSets {
                        active: [t("0", 0)].into(),
                        ..Default::default()
                    },
                    active_epochs: [(t("0", 0), 1)].into(),
                    ..Default::default()
                }),
            ),
        ] {
            let (k, v) = encode("g", &r);
            let v = v.unwrap();
            for cut in 0..v.len() {
                let mut kr = Reader(&k);
                let version = kr.i16().unwrap();
                assert_eq!(parse(version, &mut kr, Some(&v[..cut])), None, "cut {cut}");
            }
        }
        // An array length near u64::MAX is refused, not looped over.
        let (k, _) = encode("g", &StreamsRecord::Topology(None));
        let mut absurd = vec![0, 0, 0, 0, 0, 1];
        absurd.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let mut kr = Reader(&k);
        let version = kr.i16().unwrap();
        assert_eq!(parse(version, &mut kr, Some(&absurd)), None);
    }
}
