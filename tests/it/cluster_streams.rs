//! Cluster mode, streams groups (KIP-1071): a group's topology, epochs and each member's
//! tasks are written to its partition of `__consumer_offsets` as Kafka's records before a
//! heartbeat is answered, so the broker that takes the partition over after the
//! coordinator's SIGKILL knows the group. Kafka Streams threads carry on with the epoch
//! they have; without the records they would get UNKNOWN_MEMBER_ID, drop every task and
//! rejoin.

use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use crate::cluster::{addr, coordinator_after, find_coordinator, TxnCluster};
use crate::common::wire::*;
use crate::common::*;

const GROUP: &str = "kept-streams";
const TOPIC: &str = "kip1071";

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

async fn heartbeat(
    port: u16,
    member: &str,
    epoch: i32,
    owned: &Tasks,
) -> StreamsGroupHeartbeatResponse {
    let mut c = Client::connect(addr(port)).await;
    c.send(
        &streams_heartbeat_req(GROUP, member, epoch, TOPIC, owned),
        1,
    )
    .await
}

/// Heartbeats at `port` until it answers something other than "loading" or "not the
/// coordinator yet" (bounded).
async fn settled_heartbeat(
    port: u16,
    member: &str,
    epoch: i32,
    owned: &Tasks,
) -> StreamsGroupHeartbeatResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = heartbeat(port, member, epoch, owned).await;
        if ![14, 15, 16].contains(&r.error_code) {
            return r;
        }
        assert!(Instant::now() < deadline, "the coordinator never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_streams_group_keeps_its_members_across_a_coordinator_failover() {
    let flags = [
        "--offsets-topic-num-partitions",
        "3",
        "--replica-lag-time-max-ms",
        "1500",
        "--group-streams-initial-rebalance-delay-ms",
        "0",
    ];
    let mut cl = TxnCluster::start(&flags, TOPIC).await;
    let ports = cl.ports;
    let (node, port) = find_coordinator(ports[0], 0, GROUP).await;
    let members = ["thread-one", "thread-two"];
    let mut epochs = [0i32; 2];
    let mut owned: [Tasks; 2] = Default::default();
    // Both threads join and heartbeat until the group is stable: the three tasks split
    // between them, both at the same epoch.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for i in 0..2 {
            let r = settled_heartbeat(port, members[i], epochs[i], &owned[i]).await;
            assert_eq!(r.error_code, 0, "{r:?}");
            epochs[i] = r.member_epoch;
            if let Some(a) = streams_active(&r) {
                owned[i] = a;
            }
        }
        let total: usize = owned.iter().map(|o| o.len()).sum();
        if total == 3 && !owned[0].is_empty() && !owned[1].is_empty() && epochs[0] == epochs[1] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never stable: {epochs:?} {owned:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    cl.kill(node);
    let survivor = ports[node as usize % 3];
    let next_port = coordinator_after(survivor, 0, GROUP, node).await;
    for i in 0..2 {
        let r = settled_heartbeat(next_port, members[i], epochs[i], &owned[i]).await;
        assert_eq!(
            r.error_code, 0,
            "the new coordinator must know member {}: {r:?}",
            members[i]
        );
        assert_eq!(
            r.member_epoch, epochs[i],
            "the member keeps its epoch: {r:?}"
        );
        assert_eq!(
            streams_active(&r).as_ref(),
            Some(&owned[i]),
            "the member keeps its tasks"
        );
    }
    let mut c = Client::connect(addr(next_port)).await;
    let described = c
        .send(
            &StreamsGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(GROUP))]),
            0,
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(g.error_code, 0, "{g:?}");
    assert_eq!(g.group_state.as_str(), "Stable", "{g:?}");
    assert_eq!(g.group_epoch, epochs[0]);
    assert_eq!(g.members.len(), 2);
    let topology = g.topology.as_ref().expect("the stored topology");
    let subtopologies = topology.subtopologies.as_ref().expect("configured");
    assert_eq!(subtopologies.len(), 1);
    assert_eq!(subtopologies[0].source_topics, vec![tn(TOPIC)]);
}
