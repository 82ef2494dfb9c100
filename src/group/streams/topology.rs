//! A streams group's topology (KIP-1071) and how the broker configures it against the
//! cluster's topics, as Kafka 4.4's `InternalTopicManager` does: which source topics are
//! missing, how many partitions each repartition and changelog topic gets, whether
//! copartitioned topics agree, which internal topics the broker must create, and how many
//! tasks each subtopology has.
//!
//! Pure functions of the topology and the topics' partition counts, so the rules can be
//! tested without a broker; the group coordinator calls them at each heartbeat whose
//! topics changed.

use std::collections::{BTreeMap, BTreeSet};

/// A repartition or changelog topic as the client describes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TopicInfo {
    pub name: String,
    /// 0: the broker derives it.
    pub partitions: i32,
    /// -1 or 0: the broker's default.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Indexes into a subtopology's source topics and repartition source topics that must
/// have the same number of partitions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CopartitionGroup {
    pub source_topics: Vec<i16>,
    pub repartition_source_topics: Vec<i16>,
}

/// One subtopology: its tasks read partition p of every source and repartition source.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Subtopology {
    pub id: String,
    pub source_topics: Vec<String>,
    pub repartition_sink_topics: Vec<String>,
    pub state_changelog_topics: Vec<TopicInfo>,
    pub repartition_source_topics: Vec<TopicInfo>,
    pub copartition_groups: Vec<CopartitionGroup>,
}

/// A streams application's topology, in a canonical order so that two descriptions of
/// the same topology compare equal (Kafka refuses a rejoin with a different one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub epoch: i32,
    pub subtopologies: Vec<Subtopology>,
}

impl Topology {
    /// Sorts what has no meaningful order (subtopologies by id, topics by name); the
    /// copartition indexes refer to the lists as the client sent them, so they are
    /// rewritten to the sorted lists' positions.
    pub fn canonical(mut self) -> Topology {
        for s in &mut self.subtopologies {
            let sources = s.source_topics.clone();
            let repartition: Vec<String> = s
                .repartition_source_topics
                .iter()
                .map(|t| t.name.clone())
                .collect();
            s.source_topics.sort();
            s.source_topics.dedup();
            s.repartition_sink_topics.sort();
            s.repartition_sink_topics.dedup();
            s.state_changelog_topics.sort();
            s.repartition_source_topics.sort();
            let remap =
                |old: &[String], new: &dyn Fn(&str) -> Option<usize>, idx: &mut Vec<i16>| {
                    let mut out: Vec<i16> = idx
                        .iter()
                        .filter_map(|i| old.get(usize::try_from(*i).ok()?))
                        .filter_map(|name| new(name))
                        .filter_map(|i| i16::try_from(i).ok())
                        .collect();
                    out.sort();
                    out.dedup();
                    *idx = out;
                };
            let sorted_sources = s.source_topics.clone();
            let sorted_repartition: Vec<String> = s
                .repartition_source_topics
                .iter()
                .map(|t| t.name.clone())
                .collect();
            for g in &mut s.copartition_groups {
                remap(
                    &sources,
                    &|n| sorted_sources.iter().position(|x| x == n),
                    &mut g.source_topics,
                );
                remap(
                    &repartition,
                    &|n| sorted_repartition.iter().position(|x| x == n),
                    &mut g.repartition_source_topics,
                );
            }
            s.copartition_groups.sort();
        }
        self.subtopologies.sort();
        self
    }

    /// Every topic the topology names: sources, repartition topics and changelogs.
    pub fn topics(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for s in &self.subtopologies {
            out.extend(s.source_topics.iter().cloned());
            out.extend(s.repartition_sink_topics.iter().cloned());
            out.extend(s.repartition_source_topics.iter().map(|t| t.name.clone()));
            out.extend(s.state_changelog_topics.iter().map(|t| t.name.clone()));
        }
        out
    }
}

/// The status codes of a StreamsGroupHeartbeat response (Kafka's `StreamsGroupHeartbeatResponse.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum StatusCode {
    StaleTopology = 0,
    MissingSourceTopics = 1,
    IncorrectlyPartitionedTopics = 2,
    MissingInternalTopics = 3,
    ShutdownApplication = 4,
    AssignmentDelayed = 5,
    MissingClientTags = 6,
}

/// An internal topic the broker must create for the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTopic {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default replication factor.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// The topology as configured against the cluster's topics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    /// Tasks per subtopology (its partition count); empty unless the topology is ready.
    pub tasks: BTreeMap<String, i32>,
    /// Subtopologies with state (changelog topics): only they get standby replicas.
    pub stateful: BTreeSet<String>,
    /// Partition counts of the repartition and changelog topics as derived.
    pub internal_partitions: BTreeMap<String, i32>,
    /// Internal topics that do not exist yet.
    pub to_create: Vec<InternalTopic>,
    /// Why the topology is not ready (None: ready, tasks may be assigned).
    pub status: Option<(StatusCode, String)>,
}

impl Configured {
    pub fn ready(&self) -> bool {
        self.status.is_none()
    }
}

/// A topology that can never work (Kafka's STREAMS_INVALID_TOPOLOGY), with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTopology(pub String);

/// Java's `Collection.toString` of names: `[a, b]`, as Kafka's messages print them.
fn java_list<'a>(names: impl IntoIterator<Item = &'a String>) -> String {
    format!(
        "[{}]",
        names.into_iter().cloned().collect::<Vec<_>>().join(", ")
    )
}

/// Configures `topology` against the partition counts of the cluster's topics
/// (`partitions_of` is None for a topic that does not exist).
pub fn configure(
    topology: &Topology,
    partitions_of: impl Fn(&str) -> Option<i32>,
) -> Result<Configured, InvalidTopology> {
    let mut out = Configured::default();
    // 1. Missing source topics: nothing can be configured.
    let missing: BTreeSet<&String> = topology
        .subtopologies
        .iter()
        .flat_map(|s| s.source_topics.iter())
        .filter(|t| partitions_of(t).is_none())
        .collect();
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(3).map(|s| s.as_str()).collect();
        let more = missing.len().saturating_sub(3);
        let mut detail = format!("Source topics {}", shown.join(", "));
        if more > 0 {
            detail.push_str(&format!(" and {more} additional topics"));
        }
        detail.push_str(" are missing.");
        out.status = Some((StatusCode::MissingSourceTopics, detail));
        return Ok(out);
    }

    // 2. Repartition topics: fixed counts, then what flows in from upstream, to a fixpoint.
    let mut counts: BTreeMap<String, i32> = BTreeMap::new();
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    for s in &topology.subtopologies {
        for t in &s.repartition_source_topics {
            if t.partitions > 0 {
                counts.insert(t.name.clone(), t.partitions);
            } else {
                unknown.insert(t.name.clone());
            }
        }
    }
    for name in &unknown {
        if !topology
            .subtopologies
            .iter()
            .any(|s| s.repartition_sink_topics.contains(name))
        {
            return Err(InvalidTopology(format!(
                "Failed to compute number of partitions for all repartition topics, because a repartition source topic is never used as a sink topic: {name}"
            )));
        }
    }
    while !unknown.is_empty() {
        let mut progress = false;
        for name in unknown.clone() {
            let mut max = 0;
            for upstream in topology
                .subtopologies
                .iter()
                .filter(|s| s.repartition_sink_topics.contains(&name))
            {
                for src in &upstream.source_topics {
                    max = max.max(partitions_of(src).unwrap_or(0));
                }
                for r in &upstream.repartition_source_topics {
                    max = max.max(counts.get(&r.name).copied().unwrap_or(0));
                }
            }
            if max > 0 {
                counts.insert(name.clone(), max);
                unknown.remove(&name);
                progress = true;
            }
        }
        if !progress {
            return Err(InvalidTopology(format!(
                "Failed to compute number of partitions for all repartition topics: {}. There may be loops in the topology that cannot be resolved.",
                java_list(&unknown)
            )));
        }
    }

    // 3. Copartitioned topics must agree; repartition topics take the external count.
    for s in &topology.subtopologies {
        for g in &s.copartition_groups {
            let externals: Vec<(&String, i32)> = g
                .source_topics
                .iter()
                .filter_map(|i| s.source_topics.get(usize::try_from(*i).ok()?))
                .map(|t| (t, partitions_of(t).unwrap_or(0)))
                .collect();
            let internals: Vec<&TopicInfo> = g
                .repartition_source_topics
                .iter()
                .filter_map(|i| s.repartition_source_topics.get(usize::try_from(*i).ok()?))
                .collect();
            if externals.is_empty() {
                let fixed: BTreeSet<i32> = internals
                    .iter()
                    .filter(|t| t.partitions > 0)
                    .map(|t| t.partitions)
                    .collect();
                if fixed.len() > 1 {
                    let detail = internals
                        .iter()
                        .map(|t| format!("{}={}", t.name, t.partitions))
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.status = Some((
                        StatusCode::IncorrectlyPartitionedTopics,
                        format!(
                            "Following topics do not have the same number of partitions: [{{{detail}}}]"
                        ),
                    ));
                    return Ok(out);
                }
                let max = internals
                    .iter()
                    .map(|t| counts.get(&t.name).copied().unwrap_or(0))
                    .max()
                    .unwrap_or(0);
                for t in &internals {
                    counts.insert(t.name.clone(), max);
                }
                continue;
            }
            let distinct: BTreeSet<i32> = externals.iter().map(|(_, n)| *n).collect();
            if distinct.len() > 1 {
                let detail = externals
                    .iter()
                    .map(|(t, n)| format!("{t}={n}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.status = Some((
                    StatusCode::IncorrectlyPartitionedTopics,
                    format!(
                        "Following topics do not have the same number of partitions: [{{{detail}}}]"
                    ),
                ));
                return Ok(out);
            }
            let (source, n) = externals[0];
            for t in &internals {
                if t.partitions > 0 && t.partitions != n {
                    out.status = Some((
                        StatusCode::IncorrectlyPartitionedTopics,
                        format!(
                            "Number of partitions [{}] of repartition topic [{}] doesn't match number of partitions [{n}] of the source topic [{source}].",
                            t.partitions, t.name
                        ),
                    ));
                    return Ok(out);
                }
                counts.insert(t.name.clone(), n);
            }
        }
    }

    // 4. Tasks per subtopology, and changelogs with as many partitions.
    let mut to_create = Vec::new();
    for s in &topology.subtopologies {
        let n = s
            .source_topics
            .iter()
            .map(|t| partitions_of(t).unwrap_or(0))
            .chain(
                s.repartition_source_topics
                    .iter()
                    .map(|t| counts.get(&t.name).copied().unwrap_or(0)),
            )
            .max()
            .unwrap_or(0);
        if n <= 0 {
            return Err(InvalidTopology(format!(
                "No source topics found for subtopology {}",
                s.id
            )));
        }
        out.tasks.insert(s.id.clone(), n);
        if !s.state_changelog_topics.is_empty() {
            out.stateful.insert(s.id.clone());
        }
        for t in &s.repartition_source_topics {
            to_create.push((t, counts.get(&t.name).copied().unwrap_or(n)));
        }
        for t in &s.state_changelog_topics {
            to_create.push((t, n));
        }
    }

    // 5. What exists must have the derived count; what does not is created.
    let mut missing_internal = Vec::new();
    for (t, n) in to_create {
        out.internal_partitions.insert(t.name.clone(), n);
        match partitions_of(&t.name) {
            Some(found) if found != n => {
                out.status = Some((
                    StatusCode::IncorrectlyPartitionedTopics,
                    format!(
                        "Existing topic {} has different number of partitions: expected {n}, found {found}.",
                        t.name
                    ),
                ));
                out.tasks.clear();
                return Ok(out);
            }
            Some(_) => {}
            None => {
                if !out
                    .to_create
                    .iter()
                    .any(|c: &InternalTopic| c.name == t.name)
                {
                    missing_internal.push(t.name.clone());
                    out.to_create.push(InternalTopic {
                        name: t.name.clone(),
                        partitions: n,
                        replication_factor: if t.replication_factor == 0 {
                            -1
                        } else {
                            t.replication_factor
                        },
                        configs: t.configs.clone(),
                    });
                }
            }
        }
    }
    if !out.to_create.is_empty() {
        missing_internal.sort();
        out.status = Some((
            StatusCode::MissingInternalTopics,
            format!(
                "Internal topics are missing: {}",
                java_list(&missing_internal)
            ),
        ));
        out.tasks.clear();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(name: &str, partitions: i32) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            partitions,
            replication_factor: -1,
            configs: BTreeMap::new(),
        }
    }

    /// Kafka Streams' word count: `in` → (repartition by word) → count store.
    fn word_count() -> Topology {
        Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "1".into(),
                    source_topics: vec![],
                    repartition_sink_topics: vec![],
                    state_changelog_topics: vec![info("app-counts-changelog", 0)],
                    repartition_source_topics: vec![info("app-words-repartition", 0)],
                    copartition_groups: vec![],
                },
                Subtopology {
                    id: "0".into(),
                    source_topics: vec!["in".into()],
                    repartition_sink_topics: vec!["app-words-repartition".into()],
                    state_changelog_topics: vec![],
                    repartition_source_topics: vec![],
                    copartition_groups: vec![],
                },
            ],
        }
        .canonical()
    }

    fn counts(pairs: &[(&str, i32)]) -> impl Fn(&str) -> Option<i32> {
        let m: BTreeMap<String, i32> = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        move |t| m.get(t).copied()
    }

    #[test]
    fn word_count_goes_from_missing_source_to_missing_internal_to_ready() {
        let t = word_count();
        assert_eq!(t.subtopologies[0].id, "0", "canonical order");
        let c = configure(&t, counts(&[])).unwrap();
        assert_eq!(
            c.status,
            Some((
                StatusCode::MissingSourceTopics,
                "Source topics in are missing.".into()
            ))
        );
        let c = configure(&t, counts(&[("in", 3)])).unwrap();
        assert_eq!(
            c.status.as_ref().unwrap().0,
            StatusCode::MissingInternalTopics
        );
        assert_eq!(
            c.status.as_ref().unwrap().1,
            "Internal topics are missing: [app-counts-changelog, app-words-repartition]"
        );
        let created: Vec<(&str, i32, i16)> = c
            .to_create
            .iter()
            .map(|t| (t.name.as_str(), t.partitions, t.replication_factor))
            .collect();
        assert_eq!(
            created,
            [
                ("app-words-repartition", 3, -1),
                ("app-counts-changelog", 3, -1)
            ]
        );
        assert!(c.tasks.is_empty());
        let c = configure(
            &t,
            counts(&[
                ("in", 3),
                ("app-words-repartition", 3),
                ("app-counts-changelog", 3),
            ]),
        )
        .unwrap();
        assert!(c.ready());
        assert_eq!(c.tasks, BTreeMap::from([("0".into(), 3), ("1".into(), 3)]));
        assert_eq!(c.stateful, BTreeSet::from(["1".to_string()]));
        // An existing internal topic of another size is INCORRECTLY_PARTITIONED.
        let c = configure(
            &t,
            counts(&[
                ("in", 3),
                ("app-words-repartition", 2),
                ("app-counts-changelog", 3),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.status.unwrap().0,
            StatusCode::IncorrectlyPartitionedTopics
        );
    }

    #[test]
    fn copartitioned_sources_must_agree_and_loops_are_invalid() {
        let join = Topology {
            epoch: 0,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec!["b".into(), "a".into()],
                repartition_sink_topics: vec![],
                state_changelog_topics: vec![],
                repartition_source_topics: vec![],
                copartition_groups: vec![CopartitionGroup {
                    source_topics: vec![0, 1],
                    repartition_source_topics: vec![],
                }],
            }],
        }
        .canonical();
        // Indexes follow the sorted sources.
        assert_eq!(join.subtopologies[0].source_topics, ["a", "b"]);
        let c = configure(&join, counts(&[("a", 2), ("b", 3)])).unwrap();
        assert_eq!(
            c.status.unwrap().0,
            StatusCode::IncorrectlyPartitionedTopics
        );
        assert!(configure(&join, counts(&[("a", 3), ("b", 3)]))
            .unwrap()
            .ready());

        let looped = Topology {
            epoch: 0,
            subtopologies: vec![
                Subtopology {
                    id: "0".into(),
                    source_topics: vec![],
                    repartition_sink_topics: vec!["r2".into()],
                    state_changelog_topics: vec![],
                    repartition_source_topics: vec![info("r1", 0)],
                    copartition_groups: vec![],
                },
                Subtopology {
                    id: "1".into(),
                    source_topics: vec![],
                    repartition_sink_topics: vec!["r1".into()],
                    state_changelog_topics: vec![],
                    repartition_source_topics: vec![info("r2", 0)],
                    copartition_groups: vec![],
                },
            ],
        };
        assert!(configure(&looped, counts(&[]))
            .unwrap_err()
            .0
            .contains("loops"));
        let orphan = Topology {
            epoch: 0,
            subtopologies: vec![Subtopology {
                id: "0".into(),
                source_topics: vec![],
                repartition_sink_topics: vec![],
                state_changelog_topics: vec![],
                repartition_source_topics: vec![info("r", 0)],
                copartition_groups: vec![],
            }],
        };
        assert!(configure(&orphan, counts(&[]))
            .unwrap_err()
            .0
            .contains("never used as a sink"));
    }
}
