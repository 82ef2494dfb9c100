//! The controller's work: when brokers die or come back, elect partition leaders from the
//! in-sync replicas with a new leader epoch, and drop dead brokers from ISRs, as Kafka's
//! ZooKeeper-mode controller did. Every write is fenced by the controller epoch: a
//! multi-op that checks `/controller_epoch` is still at the version this controller wrote,
//! so a deposed controller (paused, cut off) can change nothing.

use std::collections::BTreeSet;
use std::sync::Arc;

use zookeeper_client as zk;

use super::topics::{ClusterTopic, PartitionInfo, PartitionStateZnode};
use super::{Cluster, ClusterView};

/// What the controller decided for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Decision {
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
}

/// The new state of a partition given the live brokers and those shutting down, or None
/// if it needs none:
/// - a dead leader is replaced by the first live replica (in assignment order) that is in
///   the ISR, preferring one that is not shutting down, with the next leader epoch; with
///   none, by the first live replica when unclean election is allowed, else the partition
///   goes offline (leader -1) keeping its ISR, so a returning in-sync replica can lead;
/// - an offline partition whose in-sync replica came back gets it as leader;
/// - a leader shutting down (controlled shutdown) hands over to another in-sync replica if
///   there is one;
/// - dead brokers and brokers shutting down leave the ISR (except a leader that keeps
///   leading), so `acks=all` stops waiting for them.
pub(super) fn decide(
    p: &PartitionInfo,
    live: &BTreeSet<i32>,
    shutting: &BTreeSet<i32>,
    unclean: bool,
) -> Option<Decision> {
    let eligible = |r: &i32| live.contains(r) && !shutting.contains(r);
    let in_sync = |r: &i32| p.isr.contains(r);
    let leader_live = p.leader >= 0 && live.contains(&p.leader);
    let moving = leader_live && shutting.contains(&p.leader);
    let keep_isr = |leader: i32| -> Vec<i32> {
        let mut isr: Vec<i32> = p
            .isr
            .iter()
            .copied()
            .filter(|r| *r == leader || eligible(r))
            .collect();
        if leader >= 0 && !isr.contains(&leader) {
            isr.insert(0, leader);
        }
        isr
    };
    if leader_live {
        let successor = if moving {
            p.replicas
                .iter()
                .copied()
                .find(|r| eligible(r) && in_sync(r))
        } else {
            None
        };
        return match successor {
            Some(leader) => Some(Decision {
                leader,
                leader_epoch: p.leader_epoch + 1,
                isr: keep_isr(leader),
            }),
            None => {
                let isr = keep_isr(p.leader);
                (isr != p.isr).then_some(Decision {
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    isr,
                })
            }
        };
    }
    let chosen = p
        .replicas
        .iter()
        .copied()
        .find(|r| eligible(r) && in_sync(r))
        .or_else(|| {
            p.replicas
                .iter()
                .copied()
                .find(|r| live.contains(r) && in_sync(r))
        });
    if let Some(leader) = chosen {
        return Some(Decision {
            leader,
            leader_epoch: p.leader_epoch + 1,
            isr: keep_isr(leader),
        });
    }
    if unclean {
        if let Some(leader) = p.replicas.iter().copied().find(|r| live.contains(r)) {
            return Some(Decision {
                leader,
                leader_epoch: p.leader_epoch + 1,
                isr: vec![leader],
            });
        }
    }
    if p.leader == -1 {
        return None; // offline already
    }
    Some(Decision {
        leader: -1,
        leader_epoch: p.leader_epoch + 1,
        isr: p.isr.clone(),
    })
}

fn unclean_allowed(t: &ClusterTopic, default: bool) -> bool {
    t.configs
        .get("unclean.leader.election.enable")
        .map_or(default, |v| v == "true")
}

/// Brings every partition's state in line with the live brokers. Returns false if this
/// broker turned out not to be the controller any more (a fenced write).
pub(super) async fn reconcile(cluster: &Arc<Cluster>, view: &ClusterView) -> bool {
    let Some((epoch, epoch_version)) = cluster.my_controller_epoch() else {
        return false;
    };
    let Ok(client) = cluster.session() else {
        return false;
    };
    let live: BTreeSet<i32> = view.brokers.keys().copied().collect();
    for (name, t) in &view.topics {
        let unclean = unclean_allowed(t, cluster.unclean_default);
        for (index, p) in &t.partitions {
            let Some(d) = decide(p, &live, &view.shutting_down, unclean) else {
                continue;
            };
            match write_state(&client, name, *index, p, &d, epoch, epoch_version).await {
                Ok(Written::Done) => {
                    if d.leader != p.leader {
                        tracing::info!(topic = %name, partition = index, leader = d.leader, leader_epoch = d.leader_epoch, isr = ?d.isr, "elected a leader");
                    }
                }
                Ok(Written::Stale) => {} // the state moved meanwhile: the next view decides
                Ok(Written::Fenced) => {
                    tracing::warn!("no longer the controller: stopping elections");
                    return false;
                }
                Err(e) => {
                    tracing::warn!(topic = %name, partition = index, error = %e, "cannot write a partition's state");
                }
            }
        }
    }
    true
}

/// How an ElectLeaders request for one partition ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elected {
    /// The new leader (and its epoch) is written.
    Done {
        leader: i32,
        leader_epoch: i32,
    },
    /// The partition already has the leader asked for (ELECTION_NOT_NEEDED).
    NotNeeded,
    /// No replica may lead as asked (PREFERRED_LEADER_NOT_AVAILABLE or
    /// ELIGIBLE_LEADERS_NOT_AVAILABLE).
    NotAvailable,
    UnknownPartition,
    /// This broker is not the controller (NOT_CONTROLLER: the client asks the right one).
    NotController,
}

/// ElectLeaders on the controller: `preferred` moves leadership to the first replica of
/// the assignment if it is live and in sync; otherwise (unclean) a partition without a live
/// leader gets the first live replica. Fenced like every controller write.
pub(super) async fn elect(
    cluster: &Arc<Cluster>,
    topic: &str,
    partition: i32,
    preferred: bool,
) -> Result<Elected, zk::Error> {
    let Some((epoch, epoch_version)) = cluster.my_controller_epoch() else {
        return Ok(Elected::NotController);
    };
    let view = cluster.view();
    let Some(p) = view
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(&partition))
    else {
        return Ok(Elected::UnknownPartition);
    };
    let live = |r: &i32| view.brokers.contains_key(r);
    let d = if preferred {
        let Some(&first) = p.replicas.first() else {
            return Ok(Elected::NotAvailable);
        };
        if p.leader == first {
            return Ok(Elected::NotNeeded);
        }
        if !live(&first) || !p.isr.contains(&first) || view.shutting_down.contains(&first) {
            return Ok(Elected::NotAvailable);
        }
        Decision {
            leader: first,
            leader_epoch: p.leader_epoch + 1,
            isr: p.isr.clone(),
        }
    } else {
        if p.leader >= 0 && live(&p.leader) {
            return Ok(Elected::NotNeeded);
        }
        let Some(leader) = p.replicas.iter().copied().find(|r| live(r)) else {
            return Ok(Elected::NotAvailable);
        };
        Decision {
            leader,
            leader_epoch: p.leader_epoch + 1,
            isr: vec![leader],
        }
    };
    let client = cluster.session()?;
    match write_state(&client, topic, partition, p, &d, epoch, epoch_version).await? {
        Written::Done => {
            tracing::info!(
                topic,
                partition,
                leader = d.leader,
                leader_epoch = d.leader_epoch,
                preferred,
                "elected a leader on request"
            );
            Ok(Elected::Done {
                leader: d.leader,
                leader_epoch: d.leader_epoch,
            })
        }
        // The state moved under us: the client may ask again.
        Written::Stale => Ok(Elected::NotAvailable),
        Written::Fenced => Ok(Elected::NotController),
    }
}

enum Written {
    Done,
    /// The state changed since the view was read.
    Stale,
    /// `/controller_epoch` moved on: another controller.
    Fenced,
}

async fn write_state(
    client: &zk::Client,
    topic: &str,
    partition: i32,
    seen: &PartitionInfo,
    d: &Decision,
    controller_epoch: i32,
    epoch_version: i32,
) -> Result<Written, zk::Error> {
    let path = format!("/brokers/topics/{topic}/partitions/{partition}/state");
    let (data, stat) = client.get_data(&path).await?;
    let current: Option<PartitionStateZnode> = serde_json::from_slice(&data).ok();
    // Decide only on what was decided from: if the znode moved past the view, wait for it.
    if current.as_ref().is_some_and(|c| {
        c.leader != seen.leader || c.leader_epoch != seen.leader_epoch || c.isr != seen.isr
    }) {
        return Ok(Written::Stale);
    }
    let state = PartitionStateZnode {
        controller_epoch,
        leader: d.leader,
        version: 1,
        leader_epoch: d.leader_epoch,
        isr: d.isr.clone(),
    };
    let json = serde_json::to_vec(&state).unwrap_or_default();
    let mut multi = client.new_multi_writer();
    multi.add_check_version("/controller_epoch", epoch_version)?;
    multi.add_set_data(&path, &json, Some(stat.version))?;
    match multi.commit().await {
        Ok(_) => Ok(Written::Done),
        Err(zk::MultiWriteError::OperationFailed {
            index: 0,
            source: zk::Error::BadVersion | zk::Error::NoNode,
        }) => Ok(Written::Fenced),
        Err(zk::MultiWriteError::OperationFailed {
            source: zk::Error::BadVersion | zk::Error::NoNode,
            ..
        }) => Ok(Written::Stale),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(replicas: &[i32], leader: i32, epoch: i32, isr: &[i32]) -> PartitionInfo {
        PartitionInfo {
            replicas: replicas.to_vec(),
            leader,
            leader_epoch: epoch,
            isr: isr.to_vec(),
        }
    }

    fn decide_(p: &PartitionInfo, live: &BTreeSet<i32>, unclean: bool) -> Option<Decision> {
        decide(p, live, &BTreeSet::new(), unclean)
    }

    #[test]
    fn controlled_shutdown_moves_leadership_to_an_in_sync_replica() {
        let set = |ids: &[i32]| ids.iter().copied().collect::<BTreeSet<i32>>();
        // Leader 1 shuts down: 2 leads in the next epoch, 1 leaves the ISR.
        assert_eq!(
            decide(
                &p(&[1, 2, 3], 1, 0, &[1, 2, 3]),
                &set(&[1, 2, 3]),
                &set(&[1]),
                false
            ),
            Some(Decision {
                leader: 2,
                leader_epoch: 1,
                isr: vec![2, 3]
            })
        );
        // A follower shuts down: it leaves the ISR.
        assert_eq!(
            decide(
                &p(&[1, 2, 3], 1, 0, &[1, 2, 3]),
                &set(&[1, 2, 3]),
                &set(&[3]),
                false
            ),
            Some(Decision {
                leader: 1,
                leader_epoch: 0,
                isr: vec![1, 2]
            })
        );
        // The only in-sync replica shuts down: it keeps leading until it is gone.
        assert_eq!(
            decide(&p(&[1, 2], 1, 0, &[1]), &set(&[1, 2]), &set(&[1]), false),
            None
        );
    }

    #[test]
    fn elects_as_kafka_does() {
        let live = |ids: &[i32]| ids.iter().copied().collect::<BTreeSet<i32>>();
        // All well: nothing to do.
        assert_eq!(
            decide_(&p(&[1, 2, 3], 1, 0, &[1, 2, 3]), &live(&[1, 2, 3]), false),
            None
        );
        // Leader 1 died: the first live in-sync replica in assignment order, next epoch.
        assert_eq!(
            decide_(&p(&[1, 2, 3], 1, 4, &[1, 3, 2]), &live(&[2, 3]), false),
            Some(Decision {
                leader: 2,
                leader_epoch: 5,
                isr: vec![3, 2]
            })
        );
        // A follower died: it leaves the ISR, same leader and epoch.
        assert_eq!(
            decide_(&p(&[1, 2, 3], 1, 4, &[1, 2, 3]), &live(&[1, 3]), false),
            Some(Decision {
                leader: 1,
                leader_epoch: 4,
                isr: vec![1, 3]
            })
        );
        // No live in-sync replica: offline, the ISR kept for the return of one of them.
        assert_eq!(
            decide_(&p(&[1, 2], 1, 4, &[1]), &live(&[2]), false),
            Some(Decision {
                leader: -1,
                leader_epoch: 5,
                isr: vec![1]
            })
        );
        // ... and nothing more while it stays so.
        assert_eq!(decide_(&p(&[1, 2], -1, 5, &[1]), &live(&[2]), false), None);
        // Unless unclean election is allowed: the out-of-sync replica leads.
        assert_eq!(
            decide_(&p(&[1, 2], -1, 5, &[1]), &live(&[2]), true),
            Some(Decision {
                leader: 2,
                leader_epoch: 6,
                isr: vec![2]
            })
        );
        // The in-sync replica returns: it leads again.
        assert_eq!(
            decide_(&p(&[1, 2], -1, 5, &[1]), &live(&[1, 2]), false),
            Some(Decision {
                leader: 1,
                leader_epoch: 6,
                isr: vec![1]
            })
        );
    }
}
