//! Cluster mode, first stage, on a real ZooKeeper (Debian's `zookeeper` package, which
//! `./test.sh` installs): three broker processes register, one controller is elected, every
//! broker's Metadata and DescribeCluster list the live brokers with that controller, and
//! ZooKeeper holds Kafka's own layout. A controller killed with SIGKILL is replaced once its
//! session expires; the killed broker comes back under its id; a broker paused past its
//! session registers again when it resumes; one stopped with SIGTERM leaves at once; a
//! second broker with a live broker's id is refused; a ZooKeeper restart is ridden out.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::wire::*;
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::records::Compression;

const ZK_SERVER: &str = "/usr/share/zookeeper/bin/zkServer.sh";
const SESSION_TIMEOUT_MS: &str = "2000";

/// A test's temporary dir; kept (and its path printed) when `KLAMM_KEEP_TEST_DIRS` is set,
/// so a failing cluster test's broker logs (`broker-N.log`) can be read afterwards.
pub(crate) fn test_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("KLAMM_KEEP_TEST_DIRS").is_some();
    let dir = tempfile::Builder::new()
        .prefix("klamm-cluster-")
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        eprintln!("test dir kept: {}", dir.path().display());
    }
    dir
}

/// A broker's address on loopback.
pub(crate) fn addr(port: u16) -> std::net::SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

pub(crate) fn free_port() -> u16 {
    // The kernel may hand a just-released port out again, so two calls could return the
    // same one (one broker's two listeners then clash): never return a port twice.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh free port in 100 tries");
}

/// A process stopped by PID when the test ends, whatever happens.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts ZooKeeper with a config of the test's own on a free port; waits (bounded) until
/// it accepts connections.
pub(crate) fn start_zookeeper(dir: &Path) -> (Proc, u16) {
    assert!(
        Path::new(ZK_SERVER).exists(),
        "{ZK_SERVER} missing: install Debian's zookeeper package (./test.sh does)"
    );
    let port = free_port();
    let data = dir.join("zk-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        dir.join("zoo.cfg"),
        format!(
            "tickTime=500\nminSessionTimeout=1000\nmaxSessionTimeout=20000\ninitLimit=10\n\
             syncLimit=5\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n",
            data.display()
        ),
    )
    .unwrap();
    (spawn_zookeeper(dir, port), port)
}

/// Runs ZooKeeper on the config `start_zookeeper` wrote (again, after a restart).
fn spawn_zookeeper(dir: &Path, port: u16) -> Proc {
    let child = Command::new(ZK_SERVER)
        .args(["start-foreground", dir.join("zoo.cfg").to_str().unwrap()])
        .env("ZOOCFGDIR", dir)
        .env("ZOO_LOG_DIR", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("zkServer.sh starts");
    let zk = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "ZooKeeper did not listen within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    zk
}

/// Starts a broker of the cluster and waits (bounded) for its ready line; None if it exits
/// first, with what it logged.
fn start_broker(id: i32, port: u16, zk: u16, data: &Path) -> Result<Proc, String> {
    start_broker_with(id, port, zk, data, &[])
}

/// [`start_broker`] with extra flags.
pub(crate) fn start_broker_with(
    id: i32,
    port: u16,
    zk: u16,
    data: &Path,
    extra: &[&str],
) -> Result<Proc, String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klamm"))
        .args(extra)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            data.to_str().unwrap(),
            "--node-id",
            &id.to_string(),
            "--zookeeper-connect",
            &format!("127.0.0.1:{zk}/klamm-test"),
            "--zookeeper-session-timeout-ms",
            SESSION_TIMEOUT_MS,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("klamm starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Kept beside the data dir, for a failing test's reader.
    let log_path = data.with_extension("log");
    std::thread::spawn(move || {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .ok();
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if line.contains("klamm ready on ") {
                let _ = tx.send(Ok(()));
            }
            log.push_str(&line);
            log.push('\n');
        }
        let _ = tx.send(Err(log));
    });
    let proc = Proc(child);
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(())) => Ok(proc),
        Ok(Err(log)) => Err(log),
        Err(_) => panic!("broker {id}: no ready line and no exit within 30 s"),
    }
}

/// Starts brokers 1..=n on `ports` with `flags` (data dirs `broker-<id>` in `dir`) and
/// waits until every one sees them all; a broker that exits at start fails the test with
/// its log. Each slot is `take()`n to SIGKILL its broker.
pub(crate) async fn start_cluster(
    dir: &Path,
    zk_port: u16,
    ports: &[u16],
    flags: &[&str],
) -> Vec<Option<Proc>> {
    let mut brokers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let id = i as i32 + 1;
        let data = dir.join(format!("broker-{id}"));
        brokers.push(Some(
            start_broker_with(id, *port, zk_port, &data, flags)
                .unwrap_or_else(|log| panic!("broker {id} exited:\n{log}")),
        ));
    }
    let ids: Vec<i32> = (1..=ports.len() as i32).collect();
    converge(ports, &ids, Duration::from_secs(10)).await;
    brokers
}

/// (broker ids, controller id, cluster id) as one broker's Metadata answers.
async fn metadata_of(port: u16) -> (Vec<i32>, i32, String) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr).await;
    let resp = c
        .send(&MetadataRequest::default().with_topics(Some(vec![])), 12)
        .await;
    let mut ids: Vec<i32> = resp.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    for b in &resp.brokers {
        assert_eq!(b.host.as_str(), "127.0.0.1");
    }
    (
        ids,
        resp.controller_id.0,
        resp.cluster_id.map(|s| s.to_string()).unwrap_or_default(),
    )
}

/// (broker ids with their ports, controller id) as one broker's DescribeCluster answers.
async fn describe_cluster_of(port: u16) -> (Vec<(i32, i32)>, i32) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr).await;
    let resp = c.send(&DescribeClusterRequest::default(), 0).await;
    assert_eq!(resp.error_code, 0);
    let mut brokers: Vec<(i32, i32)> = resp
        .brokers
        .iter()
        .map(|b| (b.broker_id.0, b.port))
        .collect();
    brokers.sort();
    (brokers, resp.controller_id.0)
}

/// (leader, leader epoch, voters, observers sorted, nodes with their port) as one broker's
/// DescribeQuorum v2 answers for the metadata partition.
async fn describe_quorum_of(port: u16) -> (i32, i32, Vec<i32>, Vec<i32>, Vec<(i32, u16)>) {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr).await;
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(tn("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp = c.send(&req, 2).await;
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let ids = |r: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
        let mut v: Vec<i32> = r.iter().map(|s| s.replica_id.0).collect();
        v.sort();
        v
    };
    let nodes = resp
        .nodes
        .iter()
        .map(|n| (n.node_id.0, n.listeners[0].port))
        .collect();
    (
        p.leader_id.0,
        p.leader_epoch,
        ids(&p.current_voters),
        ids(&p.observers),
        nodes,
    )
}

/// Waits (bounded) until every port's Metadata lists exactly `ids` with one controller
/// among them and one cluster id; returns the controller.
pub(crate) async fn converge(ports: &[u16], ids: &[i32], within: Duration) -> (i32, String) {
    let deadline = Instant::now() + within;
    loop {
        let mut seen = Vec::new();
        for p in ports {
            seen.push(metadata_of(*p).await);
        }
        let (first_ids, controller, cluster_id) = seen[0].clone();
        if seen.iter().all(|s| *s == seen[0]) && first_ids == ids && ids.contains(&controller) {
            return (controller, cluster_id);
        }
        assert!(
            Instant::now() < deadline,
            "no agreement on brokers {ids:?} within {within:?}: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn brokers_register_elect_one_controller_and_replace_a_dead_one() {
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let data_dir = |id: i32| dir.path().join(format!("broker-{id}"));
    let mut brokers: Vec<Option<Proc>> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let b = start_broker(i as i32 + 1, *port, zk_port, &data_dir(i as i32 + 1))
            .unwrap_or_else(|log| panic!("broker {} exited:\n{log}", i + 1));
        brokers.push(Some(b));
    }
    let (controller, cluster_id) = converge(&ports, &[1, 2, 3], Duration::from_secs(10)).await;
    assert_eq!(
        cluster_id.len(),
        22,
        "a Kafka-style cluster id: {cluster_id}"
    );
    for p in ports {
        let (described, c) = describe_cluster_of(p).await;
        assert_eq!(c, controller);
        assert_eq!(
            described,
            vec![
                (1, ports[0] as i32),
                (2, ports[1] as i32),
                (3, ports[2] as i32)
            ]
        );
    }

    // DescribeQuorum (kafka-metadata-quorum): the controller leads and is the voter, the
    // other brokers observe, every broker answers the same, at the controller's epoch.
    let mut epochs = Vec::new();
    for p in ports {
        let (leader, epoch, voters, observers, nodes) = describe_quorum_of(p).await;
        assert_eq!(leader, controller, "asked {p}");
        assert_eq!(voters, vec![controller], "asked {p}");
        let mut others: Vec<i32> = (1..=3).filter(|i| *i != controller).collect();
        others.sort();
        assert_eq!(observers, others, "asked {p}");
        assert_eq!(nodes, vec![(controller, ports[controller as usize - 1])]);
        epochs.push(epoch);
    }
    assert!(
        epochs[0] >= 1 && epochs.iter().all(|e| *e == epochs[0]),
        "{epochs:?}"
    );

    // A real client sees the same: kcat (librdkafka) lists every broker and the controller.
    let out = Command::new("kcat")
        .args([
            "-L",
            "-J",
            "-b",
            &format!("127.0.0.1:{}", ports[1]),
            "-m",
            "10",
        ])
        .output()
        .expect("kcat runs (./test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["controllerid"], controller as i64);
    let mut kcat_brokers: Vec<String> = listed["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| format!("{}={}", b["id"], b["name"].as_str().unwrap()))
        .collect();
    kcat_brokers.sort();
    assert_eq!(
        kcat_brokers,
        (1..=3)
            .map(|i| format!("{i}=127.0.0.1:{}", ports[i - 1]))
            .collect::<Vec<_>>()
    );

    // Kafka's own layout, readable by anyone who ran Kafka on ZooKeeper.
    let zk = zookeeper_client::Client::connect(&format!("127.0.0.1:{zk_port}"))
        .await
        .unwrap();
    let (reg, stat) = zk.get_data("/klamm-test/brokers/ids/1").await.unwrap();
    assert_ne!(
        stat.ephemeral_owner, 0,
        "broker registrations are ephemeral"
    );
    let reg: serde_json::Value = serde_json::from_slice(&reg).unwrap();
    assert_eq!(reg["host"], "127.0.0.1");
    assert_eq!(reg["port"], ports[0] as i64);
    assert_eq!(
        reg["endpoints"][0],
        format!("PLAINTEXT://127.0.0.1:{}", ports[0])
    );
    let (ctrl, _) = zk.get_data("/klamm-test/controller").await.unwrap();
    let ctrl: serde_json::Value = serde_json::from_slice(&ctrl).unwrap();
    assert_eq!(ctrl["brokerid"], controller as i64);
    let epoch = |zk: zookeeper_client::Client| async move {
        let (e, _) = zk.get_data("/klamm-test/controller_epoch").await.unwrap();
        String::from_utf8(e).unwrap()
    };
    assert_eq!(epoch(zk.clone()).await, "1");
    let (id_record, _) = zk.get_data("/klamm-test/cluster/id").await.unwrap();
    let id_record: serde_json::Value = serde_json::from_slice(&id_record).unwrap();
    assert_eq!(id_record["id"], cluster_id.as_str());

    // A broker with a live broker's id is refused, and the cluster is unchanged.
    let dup = start_broker(2, free_port(), zk_port, &dir.path().join("dup"));
    let log = match dup {
        Ok(_) => panic!("a second broker with node id 2 started"),
        Err(log) => log,
    };
    assert!(log.contains("node id 2 is already registered"), "{log}");
    assert_eq!(
        converge(&ports, &[1, 2, 3], Duration::from_secs(5)).await.0,
        controller
    );

    // SIGKILL the controller: once its session expires the others elect a new one.
    let killed = controller;
    brokers[(killed - 1) as usize].take(); // Drop kills with SIGKILL and reaps it.
    let alive: Vec<u16> = (1..=3)
        .filter(|id| *id != killed)
        .map(|id| ports[(id - 1) as usize])
        .collect();
    let alive_ids: Vec<i32> = (1..=3).filter(|id| *id != killed).collect();
    // Session timeout 2 s, plus ZooKeeper's tick granularity and the election.
    let (new_controller, same_id) = converge(&alive, &alive_ids, Duration::from_secs(15)).await;
    assert_ne!(new_controller, killed);
    assert_eq!(same_id, cluster_id);
    // The new controller has an epoch of its own.
    assert_eq!(epoch(zk.clone()).await, "2");

    // The killed broker comes back under its id, with its data dir: all three again, and the
    // controller stays where it is.
    let port = ports[(killed - 1) as usize];
    let back = start_broker(killed, port, zk_port, &data_dir(killed))
        .unwrap_or_else(|log| panic!("broker {killed} did not come back:\n{log}"));
    brokers[(killed - 1) as usize] = Some(back);
    let (after, same_id) = converge(&ports, &[1, 2, 3], Duration::from_secs(10)).await;
    assert_eq!(after, new_controller);
    assert_eq!(same_id, cluster_id);

    // SIGSTOP past the session timeout: ZooKeeper expires the paused broker's session and
    // the others see it gone; after SIGCONT it notices, opens a new session and registers
    // again.
    let paused = (1..=3).find(|id| *id != new_controller).unwrap();
    let pid = brokers[(paused - 1) as usize].as_ref().unwrap().0.id() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let others: Vec<u16> = (1..=3)
        .filter(|id| *id != paused)
        .map(|id| ports[(id - 1) as usize])
        .collect();
    let other_ids: Vec<i32> = (1..=3).filter(|id| *id != paused).collect();
    let during = converge(&others, &other_ids, Duration::from_secs(15)).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert_eq!(during.0, new_controller);
    let (after, _) = converge(&ports, &[1, 2, 3], Duration::from_secs(20)).await;
    assert_eq!(after, new_controller);

    // SIGTERM: the broker closes its session before it exits, so its registration is gone
    // at once, not a session timeout later.
    let leaving = (1..=3).find(|id| *id != new_controller).unwrap();
    let mut proc = brokers[(leaving - 1) as usize].take().unwrap();
    unsafe { libc::kill(proc.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while proc.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "broker {leaving} did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let gone = zk
        .check_stat(&format!("/klamm-test/brokers/ids/{leaving}"))
        .await
        .unwrap();
    assert!(
        gone.is_none(),
        "registration of a stopped broker still there"
    );
}

/// ZooKeeper killed and restarted: brokers keep answering from what they last knew while it
/// is away, reconnect when it is back, and the cluster still fails over afterwards.
#[tokio::test]
async fn brokers_ride_out_a_zookeeper_restart() {
    let dir = test_dir();
    let (zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port()];
    let mut brokers: Vec<Option<Proc>> = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data = dir.path().join(format!("broker-{}", i + 1));
        let b = start_broker(i as i32 + 1, *port, zk_port, &data)
            .unwrap_or_else(|log| panic!("broker {} exited:\n{log}", i + 1));
        brokers.push(Some(b));
    }
    let (controller, cluster_id) = converge(&ports, &[1, 2], Duration::from_secs(10)).await;

    drop(zk); // SIGKILL
              // Past the 2 s session timeout, the brokers still answer, with the view they had.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for p in ports {
            assert_eq!(
                metadata_of(p).await,
                (vec![1, 2], controller, cluster_id.clone())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let _zk = spawn_zookeeper(dir.path(), zk_port);
    assert_eq!(
        converge(&ports, &[1, 2], Duration::from_secs(20)).await.1,
        cluster_id
    );
    // The sessions work again: a killed controller is replaced.
    brokers[(controller - 1) as usize].take();
    let other = if controller == 1 { 2 } else { 1 };
    let alive = [ports[(other - 1) as usize]];
    let (after, _) = converge(&alive, &[other], Duration::from_secs(20)).await;
    assert_eq!(after, other);
}

/// Stage 1b, in progress: a topic created through one member is written in Kafka's layout
/// with its replicas spread over the live brokers, and every member's view learns it.
#[tokio::test]
async fn a_topic_created_through_one_member_is_seen_by_all() {
    use klamm::cluster::{BrokerEndpoint, Cluster, JoinConfig};
    use klamm::listeners::{Listener, SecurityProtocol};
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let join = |id: i32| JoinConfig {
        connect: format!("127.0.0.1:{zk_port}/t"),
        session_timeout: Duration::from_millis(2000),
        node_id: id,
        endpoints: vec![
            Listener {
                name: "PLAINTEXT".into(),
                protocol: SecurityProtocol::Plaintext,
                host: "127.0.0.1".into(),
                port: 10_000 + id as u16,
            },
            Listener {
                name: "EXTERNAL".into(),
                protocol: SecurityProtocol::SaslSsl,
                host: "::1".into(),
                port: 20_000 + id as u16,
            },
        ],
        local_cluster_id: None,
        new_cluster_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        unclean_leader_election: false,
    };
    let a = Cluster::join(join(1)).await.unwrap();
    let b = Cluster::join(join(2)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.view().brokers.len() < 2 {
        assert!(Instant::now() < deadline, "member 1 never saw member 2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each member registered its listeners in Kafka's layout, and the others read them back.
    let view = a.view();
    assert_eq!(
        view.endpoint(2, "EXTERNAL"),
        Some(&BrokerEndpoint {
            host: "::1".into(),
            port: 20_002
        })
    );
    assert_eq!(
        view.address(2, "PLAINTEXT").as_deref(),
        Some("127.0.0.1:10002")
    );
    assert_eq!(view.address(2, "EXTERNAL").as_deref(), Some("[::1]:20002"));
    let configs =
        std::collections::BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
    let assignment = a
        .create_topic("orders", "Qp8pCfbgRxW5R8nMhTRrzw", 4, 2, &configs)
        .await
        .unwrap();
    assert_eq!(assignment.len(), 4);
    for replicas in assignment.values() {
        let mut r = replicas.clone();
        r.sort();
        assert_eq!(r, vec![1, 2]);
    }
    // Leaders alternate over the two brokers.
    let leaders: Vec<i32> = assignment.values().map(|r| r[0]).collect();
    assert_eq!(leaders.iter().filter(|l| **l == 1).count(), 2);

    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        if let Some(t) = b.view().topics.get("orders").cloned() {
            break t;
        }
        assert!(Instant::now() < deadline, "member 2 never saw the topic");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen.topic_id, "Qp8pCfbgRxW5R8nMhTRrzw");
    for (p, info) in &seen.partitions {
        assert_eq!(info.replicas, assignment[p]);
        assert_eq!(info.leader, assignment[p][0]);
        assert_eq!(info.isr, assignment[p]);
        assert_eq!(info.leader_epoch, 0);
    }
    let again = a
        .create_topic("orders", "Qp8pCfbgRxW5R8nMhTRrzw", 1, 1, &configs)
        .await;
    assert!(matches!(
        again,
        Err(klamm::cluster::topics::CreateTopicError::Exists(_))
    ));

    let zk = zookeeper_client::Client::connect(&format!("127.0.0.1:{zk_port}"))
        .await
        .unwrap();
    let (cfg, _) = zk.get_data("/t/config/topics/orders").await.unwrap();
    let cfg: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    assert_eq!(cfg["config"]["cleanup.policy"], "compact");
    a.leave().await;
    b.leave().await;
}

/// The topic's partitions as one broker's Metadata lists them: (index, leader, replicas).
pub(crate) async fn partitions_of(
    port: u16,
    topic: &str,
) -> (i16, uuid::Uuid, Vec<(i32, i32, Vec<i32>)>) {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr).await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(tn(topic)))]))
        .with_allow_auto_topic_creation(false);
    let resp = c.send(&req, 12).await;
    let t = &resp.topics[0];
    let mut parts: Vec<(i32, i32, Vec<i32>)> = t
        .partitions
        .iter()
        .map(|p| {
            (
                p.partition_index,
                p.leader_id.0,
                p.replica_nodes.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    parts.sort();
    (t.error_code, t.topic_id, parts)
}

pub(crate) fn run_kcat(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat runs (./test.sh installs it)");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    // kcat's own timeouts (-m, message.timeout.ms) bound it; a hang fails the test's timeout.
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Stage 1: topics are placed over the brokers, every broker knows them, clients are routed
/// to each partition's leader and refused elsewhere, and groups find one coordinator.
#[tokio::test]
async fn topics_spread_over_the_brokers_and_clients_follow_the_leaders() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let mut brokers = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let data = dir.path().join(format!("broker-{}", i + 1));
        brokers.push(
            start_broker(i as i32 + 1, *port, zk_port, &data)
                .unwrap_or_else(|log| panic!("broker {} exited:\n{log}", i + 1)),
        );
    }
    converge(&ports, &[1, 2, 3], Duration::from_secs(10)).await;
    let addr = |i: usize| -> SocketAddr { format!("127.0.0.1:{}", ports[i]).parse().unwrap() };

    // Created through broker 1: 6 partitions of 2 replicas over 3 brokers.
    let mut c1 = Client::connect(addr(0)).await;
    let created = c1
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(tn("spread"))
                    .with_num_partitions(6)
                    .with_replication_factor(2)])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    let r = &created.topics[0];
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    assert_eq!((r.num_partitions, r.replication_factor), (6, 2));
    // More replicas than brokers: Kafka's error.
    let too_many = c1
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(tn("too-many"))
                    .with_num_partitions(1)
                    .with_replication_factor(4)])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    assert_eq!(
        too_many.topics[0].error_code, 38,
        "INVALID_REPLICATION_FACTOR"
    );

    // Every broker lists the same placement, with the same topic id; each broker leads
    // two partitions, and no partition has a broker twice.
    let deadline = Instant::now() + Duration::from_secs(10);
    let placement = loop {
        let seen = [
            partitions_of(ports[0], "spread").await,
            partitions_of(ports[1], "spread").await,
            partitions_of(ports[2], "spread").await,
        ];
        if seen
            .iter()
            .all(|s| s == &seen[0] && s.0 == 0 && s.2.len() == 6)
        {
            assert_eq!(seen[0].1, r.topic_id);
            break seen[0].2.clone();
        }
        assert!(Instant::now() < deadline, "brokers disagree: {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for id in 1..=3 {
        assert_eq!(
            placement.iter().filter(|p| p.1 == id).count(),
            2,
            "{placement:?}"
        );
    }
    for (_, leader, replicas) in &placement {
        assert_eq!(replicas.len(), 2);
        assert_eq!(replicas[0], *leader);
        assert_ne!(replicas[0], replicas[1]);
    }

    // A produce to a broker that does not lead the partition is refused, and nothing is
    // written there; the leader takes it.
    let (_, leader0, _) = placement[0];
    let other = (1..=3).find(|id| *id != leader0).unwrap();
    let mut wrong = Client::connect(addr(other as usize - 1)).await;
    let one = batch(&[record(0, 1_700_000_000_000)], Compression::None);
    assert_eq!(
        produce(&mut wrong, "spread", 0, one.clone(), 9).await.0,
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
    let mut right = Client::connect(addr(leader0 as usize - 1)).await;
    assert_eq!(produce(&mut right, "spread", 0, one, 9).await, (0, 0));
    let fetched = fetch(&mut wrong, "spread", 0, 0, 12).await;
    assert_eq!(fetched.error_code, 6, "a follower does not serve consumers");

    // A real client bootstrapped at one broker: librdkafka finds every leader, and another
    // client bootstrapped elsewhere reads every message back byte-exact.
    let input: String = (0..60)
        .map(|i| format!("key-{i}\tvalue-{i}-\u{e9}\n"))
        .collect();
    let bootstrap2 = format!("127.0.0.1:{}", ports[1]);
    run_kcat(
        &[
            "-b",
            &bootstrap2,
            "-P",
            "-t",
            "spread",
            "-K",
            "\t",
            "-X",
            "message.timeout.ms=20000",
        ],
        Some(&input),
    );
    let bootstrap3 = format!("127.0.0.1:{}", ports[2]);
    let out = run_kcat(
        &[
            "-b",
            &bootstrap3,
            "-C",
            "-t",
            "spread",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%p\t%k\t%s\n",
        ],
        None,
    );
    let mut got: Vec<String> = out
        .lines()
        .filter(|l| !l.starts_with("0\t\u{0}") && l.contains("key-"))
        .map(|l| l.split_once('\t').unwrap().1.to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = input.lines().map(str::to_string).collect();
    want.sort();
    assert_eq!(got, want);
    // Keys kept their partitions: every message of a key is in one partition, and the
    // partitions used are led by all three brokers.
    let used: std::collections::BTreeSet<i32> = out
        .lines()
        .filter(|l| l.contains("key-"))
        .map(|l| l.split('\t').next().unwrap().parse().unwrap())
        .collect();
    assert!(used.len() >= 3, "60 keys over 6 partitions: {used:?}");

    // One coordinator for a group, whichever broker is asked, and it is the leader of the
    // group's partition of __consumer_offsets (Kafka's placement).
    let mut coordinators = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(addr(i)).await;
        let resp = c
            .send(
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![
                        kafka_protocol::protocol::StrBytes::from_static_str("my-group"),
                    ]),
                4,
            )
            .await;
        let co = &resp.coordinators[0];
        if co.error_code != 0 {
            let log = std::fs::read_to_string(dir.path().join(format!("broker-{}.log", i + 1)));
            panic!(
                "FindCoordinator on broker {}: {co:?}\n{}",
                i + 1,
                log.unwrap_or_default()
            );
        }
        coordinators.push((co.node_id.0, co.port));
    }
    assert!(
        coordinators.iter().all(|c| *c == coordinators[0]),
        "{coordinators:?}"
    );
    let offsets = partitions_of(ports[0], "__consumer_offsets").await;
    assert_eq!(offsets.2.len(), 50);
    assert_eq!(
        offsets.2[36].1, coordinators[0].0,
        "\"my-group\" hashes to partition 36"
    );
    assert_eq!(offsets.2[36].2.len(), 3);
    // Another broker refuses the group: NOT_COORDINATOR.
    let not_coordinator = (1..=3).find(|id| *id != coordinators[0].0).unwrap();
    let mut c = Client::connect(addr(not_coordinator as usize - 1)).await;
    let hb = c
        .send(
            &HeartbeatRequest::default()
                .with_group_id(GroupId(
                    kafka_protocol::protocol::StrBytes::from_static_str("my-group"),
                ))
                .with_generation_id(1)
                .with_member_id(kafka_protocol::protocol::StrBytes::from_static_str("m")),
            4,
        )
        .await;
    assert_eq!(hb.error_code, 16, "NOT_COORDINATOR");

    // A consumer group over the cluster: kcat's balanced consumer reads all 61 messages
    // and commits; the coordinator has the offsets.
    let bootstrap1 = format!("127.0.0.1:{}", ports[0]);
    let consumed = run_kcat(
        &[
            "-b",
            &bootstrap1,
            "-G",
            "my-group",
            "-c",
            "61",
            "-q",
            "-f",
            "%s\n",
            "-X",
            "auto.offset.reset=earliest",
            "spread",
        ],
        None,
    );
    assert_eq!(consumed.lines().count(), 61);
    let mut co = Client::connect(format!("127.0.0.1:{}", coordinators[0].1).parse().unwrap()).await;
    let fetched = co
        .send(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(
                    kafka_protocol::protocol::StrBytes::from_static_str("my-group"),
                ))
                .with_topics(None),
            7,
        )
        .await;
    assert_eq!(fetched.error_code, 0);
    let committed: i64 = fetched
        .topics
        .iter()
        .filter(|t| t.name.0.as_str() == "spread")
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.committed_offset.max(0))
        .sum();
    assert_eq!(committed, 61);

    // Deleted through broker 3: gone from every broker.
    let mut c3 = Client::connect(addr(2)).await;
    let deleted = c3
        .send(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![tn("spread")])
                .with_timeout_ms(10_000),
            4,
        )
        .await;
    assert_eq!(deleted.responses[0].error_code, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in ports {
        while partitions_of(p, "spread").await.0 != 3 {
            assert!(
                Instant::now() < deadline,
                "broker on {p} still has the deleted topic"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Each partition's (leader, ISR) as one broker's Metadata lists them.
pub(crate) async fn isr_of(port: u16, topic: &str) -> Vec<(i32, Vec<i32>)> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut c = Client::connect(addr).await;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(tn(topic)))]))
        .with_allow_auto_topic_creation(false);
    let resp = c.send(&req, 12).await;
    let mut parts: Vec<(i32, i32, Vec<i32>)> = resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let mut isr: Vec<i32> = p.isr_nodes.iter().map(|b| b.0).collect();
            isr.sort();
            (p.partition_index, p.leader_id.0, isr)
        })
        .collect();
    parts.sort();
    parts.into_iter().map(|(_, l, isr)| (l, isr)).collect()
}

/// Waits (bounded) until `cond` holds for the topic's (leader, ISR) list on `port`.
pub(crate) async fn wait_isr(
    port: u16,
    topic: &str,
    what: &str,
    cond: impl Fn(&[(i32, Vec<i32>)]) -> bool,
) -> Vec<(i32, Vec<i32>)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = isr_of(port, topic).await;
        if cond(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{what}: still {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stage 2: followers copy their leaders over Kafka's replication protocol. `acks=all`
/// waits for the in-sync replicas; a follower that stops leaves the ISR after
/// `replica.lag.time.max.ms` and comes back when it catches up; with fewer in-sync replicas
/// than `min.insync.replicas` an `acks=all` produce gets NOT_ENOUGH_REPLICAS; and in the end
/// every replica holds the leader's log byte for byte.
#[tokio::test]
async fn followers_replicate_and_acks_all_waits_for_the_isr() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let data = |id: i32| dir.path().join(format!("broker-{id}"));
    let mut brokers = start_cluster(
        dir.path(),
        zk_port,
        &ports,
        &["--replica-lag-time-max-ms", "1500"],
    )
    .await;
    let addr = |id: i32| -> SocketAddr {
        format!("127.0.0.1:{}", ports[id as usize - 1])
            .parse()
            .unwrap()
    };
    let mut c = Client::connect(addr(1)).await;
    let created = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(tn("r"))
                    .with_num_partitions(2)
                    .with_replication_factor(3)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(kafka_protocol::protocol::StrBytes::from_static_str(
                            "min.insync.replicas",
                        ))
                        .with_value(Some(
                            kafka_protocol::protocol::StrBytes::from_static_str("2"),
                        ))])])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let isr = wait_isr(ports[0], "r", "all in sync", |s| {
        s.len() == 2 && s.iter().all(|(_, isr)| isr == &vec![1, 2, 3])
    })
    .await;
    let leader0 = isr[0].0;
    let followers0: Vec<i32> = (1..=3).filter(|b| *b != leader0).collect();
    let bootstrap = format!("127.0.0.1:{}", ports[0]);

    // An idempotent producer with acks=all (kcat, librdkafka): every message acknowledged.
    let input: String = (0..300).map(|i| format!("k{i}\tfirst-{i}\n")).collect();
    run_kcat(
        &[
            "-b",
            &bootstrap,
            "-P",
            "-t",
            "r",
            "-K",
            "\t",
            "-X",
            "acks=all",
            "-X",
            "enable.idempotence=true",
            "-X",
            "message.timeout.ms=20000",
        ],
        Some(&input),
    );

    // One follower of partition 0 stops: acks=all still succeeds once it has left the ISR.
    let stopped = followers0[0];
    let pid = |b: &Option<Proc>| b.as_ref().unwrap().0.id() as i32;
    unsafe { libc::kill(pid(&brokers[stopped as usize - 1]), libc::SIGSTOP) };
    let leader_port = ports[leader0 as usize - 1];
    let mut to_leader = Client::connect(addr(leader0)).await;
    let (code, _) = produce(
        &mut to_leader,
        "r",
        0,
        batch(&[record(1, 1_700_000_000_000)], Compression::None),
        9,
    )
    .await;
    assert_eq!(
        code, 0,
        "acks=all with 2 of 3 in sync and min.insync.replicas=2"
    );
    let isr = wait_isr(leader_port, "r", "stopped follower out of the ISR", |s| {
        !s[0].1.contains(&stopped)
    })
    .await;
    assert_eq!(isr[0].1.len(), 2);

    // A second follower stops: the ISR shrinks to the leader alone, and acks=all is refused
    // with NOT_ENOUGH_REPLICAS, while acks=1 is still taken.
    let second = followers0[1];
    unsafe { libc::kill(pid(&brokers[second as usize - 1]), libc::SIGSTOP) };
    // Until the ISR shrinks, an acks=1 write moves the log end but not the high watermark.
    // A consumer fetching between the two (where a consumer of the previous leader stands
    // when this broker has just become leader) reads nothing and is told the high
    // watermark, as Kafka answers; OFFSET_OUT_OF_RANGE would make it reset its position.
    let ahead = to_leader
        .send(
            &produce_req(
                "r",
                uuid::Uuid::nil(),
                0,
                batch(&[record(4, 1_700_000_000_000)], Compression::None),
                1,
            ),
            9,
        )
        .await;
    let ahead = &ahead.responses[0].partition_responses[0];
    assert_eq!(ahead.error_code, 0);
    let past_hw = fetch(&mut to_leader, "r", 0, ahead.base_offset + 1, 12).await;
    assert_eq!(past_hw.error_code, 0, "a fetch within the log: {past_hw:?}");
    assert!(past_hw.records.as_ref().is_none_or(|r| r.is_empty()));
    assert!(past_hw.high_watermark <= ahead.base_offset + 1);
    wait_isr(leader_port, "r", "leader alone in the ISR", |s| {
        s[0].1 == vec![leader0]
    })
    .await;
    let (code, _) = produce(
        &mut to_leader,
        "r",
        0,
        batch(&[record(2, 1_700_000_000_000)], Compression::None),
        9,
    )
    .await;
    assert_eq!(code, 19, "NOT_ENOUGH_REPLICAS");
    let one = to_leader
        .send(
            &produce_req(
                "r",
                uuid::Uuid::nil(),
                0,
                batch(&[record(3, 1_700_000_000_000)], Compression::None),
                1,
            ),
            9,
        )
        .await;
    assert_eq!(one.responses[0].partition_responses[0].error_code, 0);

    // Both resume, catch up and rejoin the ISR.
    for b in [stopped, second] {
        unsafe { libc::kill(pid(&brokers[b as usize - 1]), libc::SIGCONT) };
    }
    wait_isr(leader_port, "r", "all back in sync", |s| {
        s.iter().all(|(_, isr)| isr == &vec![1, 2, 3])
    })
    .await;
    let more: String = (0..100).map(|i| format!("k{i}\tsecond-{i}\n")).collect();
    run_kcat(
        &[
            "-b",
            &bootstrap,
            "-P",
            "-t",
            "r",
            "-K",
            "\t",
            "-X",
            "acks=all",
            "-X",
            "enable.idempotence=true",
            "-X",
            "message.timeout.ms=20000",
        ],
        Some(&more),
    );
    wait_isr(leader_port, "r", "all in sync after the last writes", |s| {
        s.iter().all(|(_, isr)| isr == &vec![1, 2, 3])
    })
    .await;

    // Every replica's log is the leader's, byte for byte: stop the brokers (SIGTERM) and
    // read each data dir. A follower's high watermark trails its leader's by one fetch,
    // but after a clean stop every replica reopens at its whole log.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for b in brokers.iter_mut() {
        let mut p = b.take().unwrap();
        unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while p.0.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "a broker did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let logs: Vec<Vec<bytes::Bytes>> = (1..=3)
        .map(|id| {
            let store = klamm::storage::Store::open(&data(id), false).unwrap();
            let md = klamm::metadata::Metadata::load(store, 100_000, id, None).unwrap();
            let t = md.topic("r").expect("every replica has the topic");
            t.partitions
                .iter()
                .map(|p| p.read(0, 64 << 20, true, false).unwrap().records)
                .collect()
        })
        .collect();
    for (p, leader_log) in logs[0].iter().enumerate() {
        assert!(!leader_log.is_empty());
        assert_eq!(
            *leader_log, logs[1][p],
            "partition {p}: replicas 1 and 2 differ"
        );
        assert_eq!(
            *leader_log, logs[2][p],
            "partition {p}: replicas 1 and 3 differ"
        );
    }
    let records: usize = logs[0]
        .iter()
        .map(|l| decode_records(l.clone()).len())
        .sum();
    assert_eq!(
        records,
        300 + 1 + 1 + 1 + 100,
        "the refused produce is nowhere"
    );
}

/// A kcat producer (librdkafka, idempotent, acks=all) fed line by line from the test.
struct Feeder {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
}

impl Feeder {
    fn start(bootstrap: &str, topic: &str) -> Feeder {
        let mut child = Command::new("kcat")
            .args([
                "-b",
                bootstrap,
                "-P",
                "-t",
                topic,
                "-p",
                "0",
                "-X",
                "acks=all",
                "-X",
                "enable.idempotence=true",
                "-X",
                "message.timeout.ms=60000",
                "-X",
                "linger.ms=0",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kcat runs (./test.sh installs it)");
        let stdin = child.stdin.take();
        Feeder { child, stdin }
    }

    async fn send(&mut self, lines: std::ops::Range<usize>) {
        use std::io::Write;
        for i in lines {
            let input = self.stdin.as_mut().unwrap();
            writeln!(input, "seq-{i:06}").unwrap();
            input.flush().unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes stdin and waits (bounded) for kcat: every message must be acknowledged.
    async fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = self.child.stderr.take().unwrap().read_to_string(&mut err);
                assert!(status.success(), "kcat lost messages:\n{err}");
                return;
            }
            assert!(Instant::now() < deadline, "kcat did not finish in 90 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Stage 3: the leader of a partition is killed (SIGKILL) under an idempotent acks=all
/// producer: the controller elects an in-sync replica once the dead broker's session
/// expires, the producer carries on, and no acknowledged message is lost or duplicated.
/// The dead broker comes back as a follower and rejoins the ISR. The next leader is
/// stopped with SIGTERM: controlled shutdown hands its leadership over first. At the end
/// every replica holds the same log, byte for byte.
#[tokio::test]
async fn a_killed_leader_loses_no_acknowledged_message() {
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let data = |id: i32| dir.path().join(format!("broker-{id}"));
    let flags = ["--replica-lag-time-max-ms", "1500"];
    let mut brokers = start_cluster(dir.path(), zk_port, &ports, &flags).await;
    let addr: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
    let mut c = Client::connect(addr).await;
    let created = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(tn("k"))
                    .with_num_partitions(1)
                    .with_replication_factor(3)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(kafka_protocol::protocol::StrBytes::from_static_str(
                            "min.insync.replicas",
                        ))
                        .with_value(Some(
                            kafka_protocol::protocol::StrBytes::from_static_str("2"),
                        ))])])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    let all_in_sync = |s: &[(i32, Vec<i32>)]| s[0].1 == vec![1, 2, 3];
    let first = wait_isr(ports[0], "k", "all in sync", all_in_sync).await[0].0;
    let bootstrap = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");

    // SIGKILL the leader a third of the way through.
    let mut feeder = Feeder::start(&bootstrap, "k");
    feeder.send(0..150).await;
    brokers[first as usize - 1].take(); // SIGKILL
    feeder.send(150..400).await;
    feeder.finish().await;
    let survivor = ports[(first % 3) as usize];
    let after_kill = isr_of(survivor, "k").await;
    assert_ne!(after_kill[0].0, first, "a new leader");
    assert!(
        !after_kill[0].1.contains(&first),
        "the dead broker left the ISR"
    );
    let read_all = |port: u16| {
        let b = format!("127.0.0.1:{port}");
        run_kcat(
            &["-b", &b, "-C", "-t", "k", "-o", "beginning", "-e", "-q"],
            None,
        )
    };
    let want = |n: usize| -> Vec<String> { (0..n).map(|i| format!("seq-{i:06}")).collect() };
    assert_eq!(
        read_all(survivor).lines().collect::<Vec<_>>(),
        want(400),
        "every acknowledged message, once, in order"
    );

    // The killed broker returns: a follower now, it catches up and rejoins the ISR.
    brokers[first as usize - 1] = Some(
        start_broker_with(
            first,
            ports[first as usize - 1],
            zk_port,
            &data(first),
            &flags,
        )
        .unwrap_or_else(|log| panic!("broker {first} did not come back:\n{log}")),
    );
    wait_isr(
        survivor,
        "k",
        "the returned broker back in sync",
        all_in_sync,
    )
    .await;

    // SIGTERM the current leader under load: its leadership moves before it stops.
    let second = isr_of(survivor, "k").await[0].0;
    let mut feeder = Feeder::start(&bootstrap, "k");
    feeder.send(400..500).await;
    let mut leaving = brokers[second as usize - 1].take().unwrap();
    unsafe { libc::kill(leaving.0.id() as i32, libc::SIGTERM) };
    feeder.send(500..600).await;
    feeder.finish().await;
    let deadline = Instant::now() + Duration::from_secs(40);
    while leaving.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "broker {second} did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(data(second).with_extension("log")).unwrap_or_default();
    assert!(
        log.contains("controlled shutdown") && log.contains("moved=true"),
        "leadership handed over before stopping:\n{log}"
    );
    let third_port = ports[(1..=3).find(|b| *b != second).unwrap() as usize - 1];
    assert_ne!(isr_of(third_port, "k").await[0].0, second);
    assert_eq!(read_all(third_port).lines().collect::<Vec<_>>(), want(600));

    // Back to three, all in sync; then every replica's log is the same, byte for byte.
    brokers[second as usize - 1] = Some(
        start_broker_with(
            second,
            ports[second as usize - 1],
            zk_port,
            &data(second),
            &flags,
        )
        .unwrap_or_else(|log| panic!("broker {second} did not come back:\n{log}")),
    );
    wait_isr(third_port, "k", "all three in sync again", all_in_sync).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for b in brokers.iter_mut() {
        let mut p = b.take().unwrap();
        unsafe { libc::kill(p.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(40);
        while p.0.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "a broker did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let logs: Vec<bytes::Bytes> = (1..=3)
        .map(|id| {
            let store = klamm::storage::Store::open(&data(id), false).unwrap();
            let md = klamm::metadata::Metadata::load(store, 100_000, id, None).unwrap();
            let t = md.topic("k").expect("every replica has the topic");
            t.partitions[0]
                .read(0, 64 << 20, true, false)
                .unwrap()
                .records
        })
        .collect();
    assert_eq!(logs[0], logs[1], "replicas 1 and 2 differ");
    assert_eq!(logs[0], logs[2], "replicas 1 and 3 differ");
    let values: Vec<String> = decode_records(logs[0].clone())
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values, want(600));
}

/// ElectLeaders (preferred) on the controller gives leadership back to the first replica of
/// the assignment once it is in sync again; other brokers answer NOT_CONTROLLER, and a
/// partition already led by its preferred replica needs no election.
#[tokio::test]
async fn preferred_leader_election_restores_the_first_replica() {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let data = |id: i32| dir.path().join(format!("broker-{id}"));
    let mut brokers = start_cluster(dir.path(), zk_port, &ports, &[]).await;
    let addr = |id: i32| -> SocketAddr {
        format!("127.0.0.1:{}", ports[id as usize - 1])
            .parse()
            .unwrap()
    };
    let mut c = Client::connect(addr(2)).await;
    let created = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default()
                    .with_name(tn("p"))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_assignments(vec![CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])])])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    assert_eq!(
        created.topics[0].error_code, 0,
        "{:?}",
        created.topics[0].error_message
    );
    wait_isr(ports[1], "p", "all in sync", |s| s[0] == (1, vec![1, 2, 3])).await;

    // Broker 1 dies: 2 leads. It returns and catches up, but 2 keeps leading.
    brokers[0].take();
    wait_isr(ports[1], "p", "2 leads", |s| s[0].0 == 2).await;
    brokers[0] = Some(start_broker(1, ports[0], zk_port, &data(1)).unwrap());
    wait_isr(ports[1], "p", "1 back in sync", |s| {
        s[0] == (2, vec![1, 2, 3])
    })
    .await;

    let elect = || {
        ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(tn("p"))
                .with_partitions(vec![0])]))
            .with_timeout_ms(10_000)
    };
    let (_, controller, _) = metadata_of(ports[1]).await;
    let other = (1..=3).find(|b| *b != controller).unwrap();
    let refused = Client::connect(addr(other)).await.send(&elect(), 2).await;
    assert_eq!(refused.error_code, 41, "NOT_CONTROLLER");
    let done = Client::connect(addr(controller))
        .await
        .send(&elect(), 2)
        .await;
    assert_eq!(done.error_code, 0);
    assert_eq!(
        done.replica_election_results[0].partition_result[0].error_code,
        0
    );
    wait_isr(ports[2], "p", "1 leads again", |s| s[0].0 == 1).await;
    let again = Client::connect(addr(controller))
        .await
        .send(&elect(), 2)
        .await;
    assert_eq!(
        again.replica_election_results[0].partition_result[0].error_code, 84,
        "ELECTION_NOT_NEEDED"
    );
}

/// FindCoordinator for a group (key type 0) or a transactional id (1) through `port`,
/// retried (bounded) while the coordinators' topic is created or its partition has no
/// leader: (node id, port).
pub(crate) async fn find_coordinator(port: u16, key_type: i8, key: &'static str) -> (i32, u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        let resp = c
            .send(
                &FindCoordinatorRequest::default()
                    .with_key_type(key_type)
                    .with_coordinator_keys(vec![
                        kafka_protocol::protocol::StrBytes::from_static_str(key),
                    ]),
                4,
            )
            .await;
        let co = &resp.coordinators[0];
        if co.error_code == 0 {
            return (co.node_id.0, co.port as u16);
        }
        assert_eq!(co.error_code, 15, "COORDINATOR_NOT_AVAILABLE only: {co:?}");
        assert!(
            Instant::now() < deadline,
            "no coordinator for {key}: {co:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// OffsetFetch v8 of every committed offset of `group` at `port`, retried (bounded) while
/// the coordinator loads (COORDINATOR_LOAD_IN_PROGRESS) or has just moved (NOT_COORDINATOR):
/// (topic, partition) -> (offset, leader epoch, metadata).
async fn committed_offsets(
    port: u16,
    group: &'static str,
) -> std::collections::BTreeMap<(String, i32), (i64, i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        let resp = c
            .send(
                &OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(
                            kafka_protocol::protocol::StrBytes::from_static_str(group),
                        ))
                        .with_topics(None),
                ]),
                8,
            )
            .await;
        let g = &resp.groups[0];
        if g.error_code == 0 {
            return g
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(move |p| {
                        (
                            (t.name.0.to_string(), p.partition_index),
                            (
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata
                                    .as_ref()
                                    .map(|m| m.to_string())
                                    .unwrap_or_default(),
                            ),
                        )
                    })
                })
                .collect();
        }
        assert!(
            [14, 16].contains(&g.error_code),
            "only COORDINATOR_LOAD_IN_PROGRESS or NOT_COORDINATOR while the group moves: {g:?}"
        );
        assert!(
            Instant::now() < deadline,
            "offsets of {group} never served at {port}: {g:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stage 4: committed offsets live in the group's replicated partition of
/// __consumer_offsets, so they survive the SIGKILL of the group's coordinator. A real
/// consumer (kcat's balanced consumer) commits, the coordinator dies, and the same group
/// resumes on another broker from its commit, neither re-reading nor skipping a message;
/// an OffsetCommit's metadata and leader epoch come back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_loss_of_the_coordinator() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let dir = test_dir();
    let (_zk, zk_port) = start_zookeeper(dir.path());
    let ports = [free_port(), free_port(), free_port()];
    let flags = [
        "--offsets-topic-num-partitions",
        "3",
        "--default-replication-factor",
        "3",
        "--replica-lag-time-max-ms",
        "1500",
        "--num-partitions",
        "2",
    ];
    let mut brokers = start_cluster(dir.path(), zk_port, &ports, &flags).await;
    let all = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let input: String = (0..20).map(|i| format!("msg-{i:02}\n")).collect();
    run_kcat(
        &[
            "-b", &all, "-P", "-t", "resume", "-p", "0", "-X", "acks=all",
        ],
        Some(&input),
    );

    // kcat's balanced consumer reads 8 messages and commits them as it closes.
    let consume = |bootstrap: &str, n: &str| {
        run_kcat(
            &[
                "-b",
                bootstrap,
                "-G",
                "resume-group",
                "-c",
                n,
                "-q",
                "-f",
                "%s\n",
                "-X",
                "auto.offset.reset=earliest",
                "resume",
            ],
            None,
        )
    };
    let first = consume(&all, "8");
    assert_eq!(
        first,
        input
            .lines()
            .take(8)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
    let (coordinator, co_port) = find_coordinator(ports[0], 0, "resume-group").await;

    // A standalone commit with metadata and a leader epoch, through the coordinator; any
    // other broker refuses it with NOT_COORDINATOR.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(
            kafka_protocol::protocol::StrBytes::from_static_str("resume-group"),
        ))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(tn("resume"))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(1)
                .with_committed_offset(15)
                .with_committed_leader_epoch(3)
                .with_committed_metadata(Some(
                    kafka_protocol::protocol::StrBytes::from_static_str("checkpoint-α"),
                ))])]);
    let other = ports[coordinator as usize % 3];
    let refused = Client::connect(format!("127.0.0.1:{other}").parse().unwrap())
        .await
        .send(&commit, 8)
        .await;
    assert_eq!(
        refused.topics[0].partitions[0].error_code, 16,
        "NOT_COORDINATOR"
    );
    let done = Client::connect(format!("127.0.0.1:{co_port}").parse().unwrap())
        .await
        .send(&commit, 8)
        .await;
    assert_eq!(done.topics[0].partitions[0].error_code, 0);
    let before = committed_offsets(co_port, "resume-group").await;
    assert_eq!(before[&("resume".to_string(), 0)].0, 8, "{before:?}");
    assert_eq!(
        before[&("resume".to_string(), 1)],
        (15, 3, "checkpoint-α".to_string())
    );

    // The coordinator dies; another broker takes the group's partition and loads it.
    brokers[coordinator as usize - 1].take(); // SIGKILL
    let survivor = ports[coordinator as usize % 3];
    let deadline = Instant::now() + Duration::from_secs(30);
    let (next, next_port) = loop {
        let found = find_coordinator(survivor, 0, "resume-group").await;
        if found.0 != coordinator {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the dead coordinator is never replaced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(next, coordinator);
    let after = committed_offsets(next_port, "resume-group").await;
    assert_eq!(after, before, "the new coordinator has every commit");

    // The group resumes where it committed: messages 8..19, none again, none skipped.
    let survivors = ports
        .iter()
        .enumerate()
        .filter(|(i, _)| *i as i32 + 1 != coordinator)
        .map(|(_, p)| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let rest = consume(&survivors, "12");
    assert_eq!(
        rest,
        input
            .lines()
            .skip(8)
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    );
}

fn txn_id(id: &'static str) -> TransactionalId {
    TransactionalId(kafka_protocol::protocol::StrBytes::from_static_str(id))
}

/// InitProducerId for a transactional id at `port`, retried (bounded) while the
/// coordinator loads, is missing, or completes an earlier transaction: (producer id, epoch).
async fn txn_init(port: u16, id: &'static str) -> (i64, i16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut co = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        let r = co
            .send(
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(txn_id(id)))
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
                4,
            )
            .await;
        if r.error_code == 0 {
            return (r.producer_id.0, r.producer_epoch);
        }
        // Retriable while the coordinator settles: loading, not available, not (yet) the
        // coordinator in its own view of the metadata, completing a transaction.
        assert!(
            [14, 15, 16, 51].contains(&r.error_code) && Instant::now() < deadline,
            "InitProducerId: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// AddPartitionsToTxn v3 of partitions 0..n of `topic`; every partition must be added.
async fn txn_add(port: u16, id: &'static str, pid: i64, epoch: i16, topic: &str, n: i32) {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    let mut co = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let added = co
        .send(
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(txn_id(id))
                .with_v3_and_below_producer_id(ProducerId(pid))
                .with_v3_and_below_producer_epoch(epoch)
                .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                    .with_name(tn(topic))
                    .with_partitions((0..n).collect())]),
            3,
        )
        .await;
    for t in &added.results_by_topic_v3_and_below {
        for p in &t.results_by_partition {
            assert_eq!(p.partition_error_code, 0, "{added:?}");
        }
    }
}

/// Two transactional records `<tag>-p<partition>-<i>` into each partition, each sent to
/// its leader (`leader_ports[partition]`), at sequence `seq`.
async fn txn_produce(
    leader_ports: &[u16],
    id: &'static str,
    (pid, epoch, seq): (i64, i16, i32),
    topic: &str,
    tag: &str,
) {
    for (p, port) in leader_ports.iter().enumerate() {
        let mut l = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        let batch = txn_batch(pid, epoch, seq, 2, &format!("{tag}-p{p}"));
        let req = produce_req(topic, uuid::Uuid::nil(), p as i32, batch, -1)
            .with_transactional_id(Some(txn_id(id)));
        let resp = l.send(&req, 9).await;
        assert_eq!(
            resp.responses[0].partition_responses[0].error_code, 0,
            "{tag}: partition {p} on its leader at {port}"
        );
    }
}

/// EndTxn v3 at `port`: its error code.
async fn txn_end(port: u16, id: &'static str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let mut co = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    co.send(
        &EndTxnRequest::default()
            .with_transactional_id(txn_id(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
        3,
    )
    .await
    .error_code
}

/// Waits (bounded) until every partition's leader, as `ask` reports them, has its last
/// stable offset at its high watermark: every marker is in. `port_of` maps node ids.
async fn wait_markers(ask: u16, topic: &str, port_of: impl Fn(i32) -> u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, parts) = partitions_of(ask, topic).await;
        let mut done = true;
        let mut last = None;
        for (p, leader, _) in &parts {
            if *leader < 0 {
                done = false;
                continue;
            }
            let part = read_committed_at(port_of(*leader), topic, *p).await;
            if part.last_stable_offset != part.high_watermark || part.error_code != 0 {
                done = false;
                last = Some((*p, *leader, part));
            }
        }
        if done {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: a marker is missing: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every value a read_committed consumer (kcat) reads from the whole topic, sorted.
fn read_committed_values(bootstrap: &str, topic: &str) -> Vec<String> {
    let out = run_kcat(
        &[
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%s\n",
            "-X",
            "isolation.level=read_committed",
        ],
        None,
    );
    let mut got: Vec<String> = out.lines().map(str::to_string).collect();
    got.sort();
    got
}

/// Creates `topic` with 3 partitions and 3 replicas through `c`, and waits until every
/// ISR is full as the broker on `port` sees it.
async fn create_replicated(c: &mut Client, port: u16, topic: &'static str) {
    let created = c
        .send(
            &CreateTopicsRequest::default()
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(tn(topic))
                    .with_num_partitions(3)
                    .with_replication_factor(3)])
                .with_timeout_ms(10_000),
            7,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0);
    wait_isr(port, topic, "all in sync", |s| {
        s.len() == 3 && s.iter().all(|(_, isr)| isr.len() == 3)
    })
    .await;
}

/// A read_committed Fetch v12 of one partition from offset 0 at `port`.
async fn read_committed_at(
    port: u16,
    topic: &str,
    partition: i32,
) -> fetch_response::PartitionData {
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let got = c
        .send(
            &fetch_req(topic, uuid::Uuid::nil(), partition, 0).with_isolation_level(1),
            12,
        )
        .await;
    got.responses[0].partitions[0].clone()
}

/// Three brokers on their own ZooKeeper, started with `flags`, and a topic of 3 partitions
/// and 3 replicas with every ISR full. Dropping it stops the brokers, then ZooKeeper.
pub(crate) struct TxnCluster {
    pub(crate) ports: [u16; 3],
    brokers: Vec<Option<Proc>>,
    _zk: Proc,
    _dir: tempfile::TempDir,
}

impl TxnCluster {
    pub(crate) async fn start(flags: &[&str], topic: &'static str) -> TxnCluster {
        let dir = test_dir();
        let (zk, zk_port) = start_zookeeper(dir.path());
        let ports = [free_port(), free_port(), free_port()];
        let brokers = start_cluster(dir.path(), zk_port, &ports, flags).await;
        let mut c = Client::connect(format!("127.0.0.1:{}", ports[0]).parse().unwrap()).await;
        create_replicated(&mut c, ports[0], topic).await;
        TxnCluster {
            ports,
            brokers,
            _zk: zk,
            _dir: dir,
        }
    }

    /// SIGKILLs broker `id`.
    pub(crate) fn kill(&mut self, id: i32) {
        self.brokers[id as usize - 1].take();
    }
}

/// The port of `key`'s coordinator once it is no longer the dead broker `dead`, as `ask`
/// sees it (bounded).
pub(crate) async fn coordinator_after(ask: u16, key_type: i8, key: &'static str, dead: i32) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (node, port) = find_coordinator(ask, key_type, key).await;
        if node != dead {
            return port;
        }
        assert!(
            Instant::now() < deadline,
            "the dead coordinator of {key} is never replaced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// EndTxn at `port`, retried (bounded) while a new coordinator settles (loading, not
/// available, not yet the coordinator in its own view).
async fn txn_end_settled(port: u16, id: &'static str, pid: i64, epoch: i16, commit: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let code = txn_end(port, id, pid, epoch, commit).await;
        if code == 0 {
            return;
        }
        assert!(
            [14, 15, 16].contains(&code) && Instant::now() < deadline,
            "EndTxn at {port}: {code}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stage 4: one transaction over partitions that three different brokers lead. The
/// transaction coordinator marks its own partition and sends WriteTxnMarkers to the other
/// leaders; a committed transaction becomes visible to read_committed readers (kcat) on
/// every partition, an aborted one never does, and both move the last stable offset to
/// the high watermark once the markers are in.
#[tokio::test]
async fn a_transaction_spans_partitions_led_by_three_brokers() {
    let cl = TxnCluster::start(&["--transaction-state-log-num-partitions", "3"], "tx").await;
    let ports = cl.ports;
    let port_of = |id: i32| ports[id as usize - 1];
    let (_, _, parts) = partitions_of(ports[0], "tx").await;
    let leaders: Vec<i32> = parts.iter().map(|p| p.1).collect();
    let mut distinct = leaders.clone();
    distinct.sort();
    assert_eq!(distinct, vec![1, 2, 3], "one partition led by each broker");

    // The coordinator of the transactional id, once __transaction_state exists.
    let id = "tx-cross";
    let (_, co_port) = find_coordinator(ports[1], 1, id).await;
    let (pid, epoch) = txn_init(co_port, id).await;
    let leader_ports: Vec<u16> = leaders.iter().map(|l| port_of(*l)).collect();

    // Two transactions: the first committed, the second aborted.
    let mut seq = 0;
    for (tag, commit) in [("committed", true), ("aborted", false)] {
        txn_add(co_port, id, pid, epoch, "tx", 3).await;
        txn_produce(&leader_ports, id, (pid, epoch, seq), "tx", tag).await;
        seq += 2;
        // Open: read_committed readers are held below the transaction.
        for (p, port) in leader_ports.iter().enumerate() {
            let part = read_committed_at(*port, "tx", p as i32).await;
            assert!(
                part.last_stable_offset < part.high_watermark,
                "{tag}: partition {p} open: {part:?}"
            );
        }
        assert_eq!(
            txn_end(co_port, id, pid, epoch, commit).await,
            0,
            "{tag}: EndTxn"
        );
        // Every leader gets its marker: the last stable offset reaches the high watermark.
        wait_markers(ports[0], "tx", port_of, tag).await;
    }

    // A read_committed consumer (kcat) sees the committed transaction on all three
    // partitions and nothing of the aborted one.
    let all = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let got = read_committed_values(&all, "tx");
    let mut want: Vec<String> = (0..3)
        .flat_map(|p| (0..2).map(move |i| format!("committed-p{p}-{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// Stage 4: the transaction coordinator's state is replicated on __transaction_state. Its
/// broker is SIGKILLed with a transaction open (partitions added, records written on all
/// three leaders); the producer then commits through the new coordinator, which loaded the
/// transaction from the log, and read_committed readers see every record.
#[tokio::test]
async fn an_open_transaction_survives_the_loss_of_its_coordinator() {
    let flags = [
        "--transaction-state-log-num-partitions",
        "3",
        "--replica-lag-time-max-ms",
        "1500",
    ];
    let mut cl = TxnCluster::start(&flags, "txk").await;
    let ports = cl.ports;
    let port_of = |id: i32| ports[id as usize - 1];
    let id = "tx-survive";
    let (coordinator, co_port) = find_coordinator(ports[0], 1, id).await;
    let (pid, epoch) = txn_init(co_port, id).await;
    txn_add(co_port, id, pid, epoch, "txk", 3).await;
    let (_, _, parts) = partitions_of(ports[0], "txk").await;
    let leader_ports: Vec<u16> = parts.iter().map(|p| port_of(p.1)).collect();
    txn_produce(&leader_ports, id, (pid, epoch, 0), "txk", "kept").await;

    cl.kill(coordinator); // the transaction open
    let survivor = ports[coordinator as usize % 3];
    let next_port = coordinator_after(survivor, 1, id, coordinator).await;
    // The new coordinator knows the transaction: the same producer commits it.
    txn_end_settled(next_port, id, pid, epoch, true).await;
    wait_markers(survivor, "txk", port_of, "after failover").await;
    // The dead coordinator's markers (its lower coordinator epoch) are fenced now: a
    // zombie cannot end the producer's later transactions.
    let (_, _, parts) = partitions_of(survivor, "txk").await;
    let (p, leader, _) = parts
        .iter()
        .find(|(_, l, _)| *l != coordinator && *l > 0)
        .expect("a partition led by a survivor");
    let mut l = Client::connect(format!("127.0.0.1:{}", port_of(*leader)).parse().unwrap()).await;
    let zombie = l
        .send(&marker_req((pid, epoch), false, 0, "txk", vec![*p]), 1)
        .await;
    assert_eq!(
        zombie.markers[0].topics[0].partitions[0].error_code, 52,
        "TRANSACTION_COORDINATOR_FENCED"
    );
    let survivors = ports
        .iter()
        .filter(|p| **p != port_of(coordinator))
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let got = read_committed_values(&survivors, "txk");
    let mut want: Vec<String> = (0..3)
        .flat_map(|p| (0..2).map(move |i| format!("kept-p{p}-{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// AddOffsetsToTxn v3 at the transaction's coordinator: its error code, retried (bounded)
/// while the previous transaction's markers complete (CONCURRENT_TRANSACTIONS), as
/// producers retry it.
async fn txn_add_offsets(port: u16, id: &'static str, pid: i64, epoch: i16, group: &str) -> i16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut co = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        let code = co
            .send(
                &AddOffsetsToTxnRequest::default()
                    .with_transactional_id(txn_id(id))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_group_id(GroupId(kafka_protocol::protocol::StrBytes::from_string(
                        group.to_string(),
                    ))),
                3,
            )
            .await
            .error_code;
        if code != 51 || Instant::now() > deadline {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// TxnOffsetCommit v3 (no member: Kafka then checks only the group and the producer) of
/// `offset` for partition 0 of `topic`, at the group's coordinator: its error code.
async fn txn_commit_offset(
    port: u16,
    id: &'static str,
    (pid, epoch): (i64, i16),
    group: &str,
    topic: &str,
    offset: i64,
) -> i16 {
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    let mut g = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let resp = g
        .send(
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(txn_id(id))
                .with_group_id(GroupId(kafka_protocol::protocol::StrBytes::from_string(
                    group.to_string(),
                )))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                    .with_name(tn(topic))
                    .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset)
                        .with_committed_leader_epoch(-1)])]),
            3,
        )
        .await;
    resp.topics[0].partitions[0].error_code
}

/// OffsetFetch v8 with require_stable of partition 0 of `topic` for `group` at `port`:
/// (group error, partition error, committed offset).
async fn stable_offset(port: u16, group: &str, topic: &str) -> (i16, i16, i64) {
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let resp = c
        .send(
            &OffsetFetchRequest::default()
                .with_require_stable(true)
                .with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(kafka_protocol::protocol::StrBytes::from_string(
                            group.to_string(),
                        )))
                        .with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopics::default()
                                .with_name(tn(topic))
                                .with_partition_indexes(vec![0]),
                        ])),
                ]),
            8,
        )
        .await;
    let g = &resp.groups[0];
    match g.topics.first().and_then(|t| t.partitions.first()) {
        Some(p) => (g.error_code, p.error_code, p.committed_offset),
        None => (g.error_code, -1, -1),
    }
}

/// Waits (bounded) until `group`'s offset of partition 0 of `topic` at `port` is stable
/// (no transaction holds one) and returns it; retriable coordinator errors are waited out.
async fn wait_stable_offset(port: u16, group: &str, topic: &str, what: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = stable_offset(port, group, topic).await;
        match got {
            (0, 0, offset) => return offset,
            // COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, UNSTABLE_OFFSET_COMMIT.
            (14 | 16, _, _) | (0, 88, _) => {}
            other => panic!("{what}: unexpected OffsetFetch answer {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the offset never became stable: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stage 4: sendOffsetsToTransaction when the group's coordinator and the transaction's
/// are different brokers, as Kafka does it: AddOffsetsToTxn puts the group's partition of
/// __consumer_offsets into the transaction, the group coordinator holds TxnOffsetCommit's
/// offsets as the producer's transactional records there (UNSTABLE_OFFSET_COMMIT to a
/// require_stable OffsetFetch), and the transaction's marker commits or drops them. Offsets
/// held for an open transaction survive the SIGKILL of the group's coordinator.
#[tokio::test]
async fn transactional_offsets_commit_at_another_brokers_group_coordinator() {
    let flags = [
        "--transaction-state-log-num-partitions",
        "3",
        "--offsets-topic-num-partitions",
        "3",
        "--replica-lag-time-max-ms",
        "1500",
    ];
    let mut cl = TxnCluster::start(&flags, "txo").await;
    let ports = cl.ports;

    // A transactional id and a group whose coordinators are different brokers.
    let id = "tx-offsets";
    let (txn_node, co_port) = find_coordinator(ports[0], 1, id).await;
    let mut picked = None;
    for g in ["g-a", "g-b", "g-c", "g-d", "g-e", "g-f", "g-g", "g-h"] {
        let (node, port) = find_coordinator(ports[0], 0, g).await;
        if node != txn_node {
            picked = Some((g, node, port));
            break;
        }
    }
    let (group, group_node, group_port) = picked.expect("a group coordinated elsewhere");
    let (pid, epoch) = txn_init(co_port, id).await;

    // Committed: the offset reaches the group's coordinator with the marker.
    assert_eq!(txn_add_offsets(co_port, id, pid, epoch, group).await, 0);
    assert_eq!(
        txn_commit_offset(group_port, id, (pid, epoch), group, "txo", 5).await,
        0
    );
    let (_, unstable, _) = stable_offset(group_port, group, "txo").await;
    assert_eq!(
        unstable, 88,
        "held for the open transaction: UNSTABLE_OFFSET_COMMIT"
    );
    assert_eq!(txn_end(co_port, id, pid, epoch, true).await, 0);
    assert_eq!(
        wait_stable_offset(group_port, group, "txo", "after the commit").await,
        5
    );

    // Aborted: the held offset is dropped, the committed one stays.
    assert_eq!(txn_add_offsets(co_port, id, pid, epoch, group).await, 0);
    assert_eq!(
        txn_commit_offset(group_port, id, (pid, epoch), group, "txo", 9).await,
        0
    );
    assert_eq!(stable_offset(group_port, group, "txo").await.1, 88);
    assert_eq!(txn_end(co_port, id, pid, epoch, false).await, 0);
    assert_eq!(
        wait_stable_offset(group_port, group, "txo", "after the abort").await,
        5
    );

    // Held for an open transaction when the group's coordinator dies: the next one loads
    // it from the log, still held, and the commit reaches it there.
    assert_eq!(txn_add_offsets(co_port, id, pid, epoch, group).await, 0);
    assert_eq!(
        txn_commit_offset(group_port, id, (pid, epoch), group, "txo", 12).await,
        0
    );
    cl.kill(group_node);
    let next_port = coordinator_after(co_port, 0, group, group_node).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match stable_offset(next_port, group, "txo").await {
            (0, 88, _) => break,
            (14 | 16, _, _) => {}
            other => {
                panic!("the new coordinator must hold the open transaction's offset: {other:?}")
            }
        }
        assert!(
            Instant::now() < deadline,
            "the new coordinator never loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    txn_end_settled(co_port, id, pid, epoch, true).await;
    assert_eq!(
        wait_stable_offset(next_port, group, "txo", "after the failover's commit").await,
        12
    );
}

/// Produce v12 (transaction version 2: the leader adds the partition to the transaction
/// on the coordinator) of two records into `partition`, at its leader `port`: retried
/// (bounded) while the previous transaction's markers complete (NOT_ENOUGH_REPLICAS).
async fn txn_produce_v2(
    port: u16,
    id: &'static str,
    (pid, epoch, seq): (i64, i16, i32),
    (topic, partition): (&str, i32),
    tag: &str,
) -> i16 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut l = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
        let batch = txn_batch(pid, epoch, seq, 2, &format!("{tag}-p{partition}"));
        let req = produce_req(topic, uuid::Uuid::nil(), partition, batch, -1)
            .with_transactional_id(Some(txn_id(id)));
        let code = l.send(&req, 12).await.responses[0].partition_responses[0].error_code;
        if code != kafka_protocol::ResponseError::NotEnoughReplicas.code()
            || Instant::now() > deadline
        {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stage 4 with transaction version 2 (KIP-890 part 2): no AddPartitionsToTxn or
/// AddOffsetsToTxn. Each leader adds its partition on the transaction's coordinator (another
/// broker for two of them) when the producer's Produce v12 arrives; the group's coordinator
/// adds the group's partition of __consumer_offsets for TxnOffsetCommit v5; EndTxn v5
/// bumps the epoch and the markers, sent to every leader at the new epoch (WriteTxnMarkers
/// v2), end the transaction everywhere. The old epoch is fenced on every leader.
#[tokio::test]
async fn a_transaction_version_2_producer_spans_three_leaders() {
    let flags = [
        "--transaction-state-log-num-partitions",
        "3",
        "--offsets-topic-num-partitions",
        "3",
    ];
    let cl = TxnCluster::start(&flags, "tx2").await;
    let ports = cl.ports;
    let port_of = |id: i32| ports[id as usize - 1];
    let (_, _, parts) = partitions_of(ports[0], "tx2").await;
    let leader_ports: Vec<u16> = parts.iter().map(|p| port_of(p.1)).collect();
    let id = "tx-v2";
    let (txn_node, co_port) = find_coordinator(ports[1], 1, id).await;
    let mut picked = None;
    for g in [
        "g2-a", "g2-b", "g2-c", "g2-d", "g2-e", "g2-f", "g2-g", "g2-h",
    ] {
        let (node, port) = find_coordinator(ports[0], 0, g).await;
        if node != txn_node {
            picked = Some((g, port));
            break;
        }
    }
    let (group, group_port) = picked.expect("a group coordinated elsewhere");
    let (pid, e0) = txn_init(co_port, id).await;

    let end_v5 = |epoch: i16, commit: bool| async move {
        let mut co = Client::connect(format!("127.0.0.1:{co_port}").parse().unwrap()).await;
        let r = co
            .send(
                &EndTxnRequest::default()
                    .with_transactional_id(txn_id(id))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_committed(commit),
                5,
            )
            .await;
        (r.error_code, r.producer_id.0, r.producer_epoch)
    };
    let commit_offset_v5 = |epoch: i16, offset: i64| async move {
        use kafka_protocol::messages::txn_offset_commit_request::{
            TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
        };
        let mut g = Client::connect(format!("127.0.0.1:{group_port}").parse().unwrap()).await;
        let resp = g
            .send(
                &TxnOffsetCommitRequest::default()
                    .with_transactional_id(txn_id(id))
                    .with_group_id(GroupId(
                        kafka_protocol::protocol::StrBytes::from_static_str(group),
                    ))
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch)
                    .with_generation_id_or_member_epoch(-1)
                    .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                        .with_name(tn("tx2"))
                        .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(-1)])]),
                5,
            )
            .await;
        resp.topics[0].partitions[0].error_code
    };

    // Committed at e0, aborted at e0 + 1: every end moves the epoch on by one.
    for (epoch, (tag, commit, offset)) in
        (e0..).zip([("committed", true, 7), ("aborted", false, 9)])
    {
        for (p, port) in leader_ports.iter().enumerate() {
            assert_eq!(
                txn_produce_v2(*port, id, (pid, epoch, 0), ("tx2", p as i32), tag).await,
                0,
                "{tag}: partition {p} added by its leader"
            );
        }
        assert_eq!(commit_offset_v5(epoch, offset).await, 0, "{tag}: offsets");
        assert_eq!(
            stable_offset(group_port, group, "tx2").await.1,
            88,
            "{tag}: held for the open transaction"
        );
        assert_eq!(end_v5(epoch, commit).await, (0, pid, epoch + 1), "{tag}");
        wait_markers(ports[0], "tx2", port_of, tag).await;
        assert_eq!(
            wait_stable_offset(group_port, group, "tx2", tag).await,
            7,
            "{tag}: the group's offset follows the transaction"
        );
        // The ended transaction's epoch is fenced on every leader.
        for (p, port) in leader_ports.iter().enumerate() {
            assert_eq!(
                txn_produce_v2(*port, id, (pid, epoch, 2), ("tx2", p as i32), "late").await,
                kafka_protocol::ResponseError::InvalidProducerEpoch.code(),
                "{tag}: a late batch on partition {p}"
            );
        }
    }

    let all = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let got = read_committed_values(&all, "tx2");
    let mut want: Vec<String> = (0..3)
        .flat_map(|p| (0..2).map(move |i| format!("committed-p{p}-{i}")))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// JoinGroup v5 then SyncGroup v3 of one classic member at `port`, which leads and assigns
/// itself `assignment`: (member id, generation).
async fn join_and_sync(port: u16, group: &'static str, assignment: &'static [u8]) -> (String, i32) {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    let gid = || GroupId(kafka_protocol::protocol::StrBytes::from_static_str(group));
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let mut member = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let joined = loop {
        let r = c
            .send(
                &JoinGroupRequest::default()
                    .with_group_id(gid())
                    .with_session_timeout_ms(30_000)
                    .with_rebalance_timeout_ms(30_000)
                    .with_member_id(kafka_protocol::protocol::StrBytes::from_string(
                        member.clone(),
                    ))
                    .with_protocol_type(kafka_protocol::protocol::StrBytes::from_static_str(
                        "consumer",
                    ))
                    .with_protocols(vec![JoinGroupRequestProtocol::default()
                        .with_name(kafka_protocol::protocol::StrBytes::from_static_str("range"))
                        .with_metadata(bytes::Bytes::from_static(b"subscription"))]),
                5,
            )
            .await;
        if r.error_code == 79 && member.is_empty() {
            member = r.member_id.to_string(); // MEMBER_ID_REQUIRED: join again with it
            continue;
        }
        if [14, 16].contains(&r.error_code) && Instant::now() < deadline {
            // The coordinator FindCoordinator named may not know yet that it leads the
            // new __consumer_offsets partition (or is still loading it).
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        assert_eq!(r.error_code, 0, "JoinGroup: {r:?}");
        break r;
    };
    let member = joined.member_id.to_string();
    let synced = c
        .send(
            &SyncGroupRequest::default()
                .with_group_id(gid())
                .with_generation_id(joined.generation_id)
                .with_member_id(joined.member_id.clone())
                .with_assignments(vec![SyncGroupRequestAssignment::default()
                    .with_member_id(joined.member_id.clone())
                    .with_assignment(bytes::Bytes::from_static(assignment))]),
            3,
        )
        .await;
    assert_eq!(synced.error_code, 0, "SyncGroup: {synced:?}");
    (member, joined.generation_id)
}

/// Stage 4: a classic group's metadata (members, generation, leader, assignments) is
/// written to its partition of __consumer_offsets when a rebalance completes, in Kafka's
/// GroupMetadataValue format, so the broker that takes the partition over after the
/// coordinator's SIGKILL knows the group: its member's heartbeat is accepted at the same
/// generation (not UNKNOWN_MEMBER_ID), and a SyncGroup returns the same assignment, with
/// no rebalance.
#[tokio::test]
async fn a_classic_group_keeps_its_members_across_a_coordinator_failover() {
    let flags = [
        "--offsets-topic-num-partitions",
        "3",
        "--replica-lag-time-max-ms",
        "1500",
    ];
    let mut cl = TxnCluster::start(&flags, "grp").await;
    let ports = cl.ports;
    let group = "kept-members";
    let (node, port) = find_coordinator(ports[0], 0, group).await;
    let (member, generation) = join_and_sync(port, group, b"assignment-bytes").await;

    cl.kill(node);
    let survivor = ports[node as usize % 3];
    let next_port = coordinator_after(survivor, 0, group, node).await;
    let gid = || GroupId(kafka_protocol::protocol::StrBytes::from_static_str(group));
    let member_id = || kafka_protocol::protocol::StrBytes::from_string(member.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Client::connect(format!("127.0.0.1:{next_port}").parse().unwrap()).await;
        let hb = c
            .send(
                &HeartbeatRequest::default()
                    .with_group_id(gid())
                    .with_generation_id(generation)
                    .with_member_id(member_id()),
                3,
            )
            .await;
        match hb.error_code {
            0 => break,
            14 | 16 => {} // loading, or the metadata has not moved everywhere yet
            e => panic!("the new coordinator must know the member: Heartbeat error {e}"),
        }
        assert!(
            Instant::now() < deadline,
            "the new coordinator never loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut c = Client::connect(format!("127.0.0.1:{next_port}").parse().unwrap()).await;
    let synced = c
        .send(
            &SyncGroupRequest::default()
                .with_group_id(gid())
                .with_generation_id(generation)
                .with_member_id(member_id()),
            3,
        )
        .await;
    assert_eq!(synced.error_code, 0, "{synced:?}");
    assert_eq!(&synced.assignment[..], b"assignment-bytes");
    let described = c
        .send(
            &DescribeGroupsRequest::default().with_groups(vec![gid()]),
            5,
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable", "{g:?}");
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_eq!(g.members.len(), 1);
    assert_eq!(g.members[0].member_id.as_str(), member);
    assert_eq!(&g.members[0].member_metadata[..], b"subscription");
}

/// CreatePartitions v1 of `topic` to `count` with `assignments` at `port`: (error, message).
async fn create_partitions_with(
    port: u16,
    topic: &str,
    count: i32,
    assignments: Vec<Vec<i32>>,
) -> (i16, String) {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let r = c
        .send(
            &CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(tn(topic))
                    .with_count(count)
                    .with_assignments(Some(
                        assignments
                            .into_iter()
                            .map(|ids| {
                                CreatePartitionsAssignment::default()
                                    .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                            })
                            .collect(),
                    ))])
                .with_timeout_ms(10_000),
            1,
        )
        .await;
    let t = &r.results[0];
    (
        t.error_code,
        t.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// CreatePartitions with explicit replicas in a cluster, as Kafka checks them: one
/// assignment per new partition, the topic's replication factor, registered brokers, none
/// twice (INVALID_REPLICA_ASSIGNMENT otherwise); a valid one places the new partition on
/// exactly those brokers, the first its preferred leader.
#[tokio::test]
async fn create_partitions_takes_a_manual_assignment() {
    let cl = TxnCluster::start(&[], "grown").await;
    let port = cl.ports[0]; // the broker that saw the topic's ISRs fill
    for (bad, why) in [
        (vec![vec![3, 1]], "replication factor 2 of 3"),
        (vec![vec![3, 1, 9]], "unknown broker"),
        (vec![vec![3, 1, 1]], "a broker twice"),
        (
            vec![vec![3, 1, 2], vec![1, 2, 3]],
            "two assignments for one new partition",
        ),
    ] {
        let (code, message) = create_partitions_with(port, "grown", 4, bad).await;
        assert_eq!(code, 39, "{why}: INVALID_REPLICA_ASSIGNMENT ({message})");
        assert!(!message.is_empty(), "{why}: a message");
    }
    assert_eq!(
        partitions_of(port, "grown").await.2.len(),
        3,
        "nothing added"
    );
    assert_eq!(
        create_partitions_with(port, "grown", 4, vec![vec![3, 1, 2]]).await,
        (0, String::new())
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, parts) = partitions_of(cl.ports[0], "grown").await;
        if let Some((_, leader, replicas)) = parts.get(3) {
            if *leader == 3 {
                assert_eq!(replicas, &vec![3, 1, 2]);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "partition 3 never led by broker 3: {parts:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// KIP-890 on a remote leader: before the first transactional batch of a producer's
/// transaction on a partition, its leader asks the coordinator (another broker) whether
/// the partition is in the open transaction. A batch for a partition never added is refused
/// (INVALID_TXN_STATE) and leaves no hanging transaction (the last stable offset stays at
/// the high watermark); once AddPartitionsToTxn added it, the same batch is taken.
#[tokio::test]
async fn a_remote_leader_verifies_transactional_batches_with_the_coordinator() {
    let cl = TxnCluster::start(&["--transaction-state-log-num-partitions", "3"], "txv").await;
    let ports = cl.ports;
    let port_of = |id: i32| ports[id as usize - 1];
    let id = "tx-verify";
    let (coordinator, co_port) = find_coordinator(ports[0], 1, id).await;
    let (pid, epoch) = txn_init(co_port, id).await;
    let (_, _, parts) = partitions_of(ports[0], "txv").await;
    let (p, leader, _) = parts
        .iter()
        .find(|(_, l, _)| *l != coordinator)
        .cloned()
        .expect("a partition led by another broker");
    let mut l = Client::connect(format!("127.0.0.1:{}", port_of(leader)).parse().unwrap()).await;
    let produce_once = |tag: &'static str| {
        produce_req(
            "txv",
            uuid::Uuid::nil(),
            p,
            txn_batch(pid, epoch, 0, 2, tag),
            -1,
        )
        .with_transactional_id(Some(txn_id(id)))
    };
    let refused = l.send(&produce_once("stray"), 9).await;
    assert_eq!(
        refused.responses[0].partition_responses[0].error_code, 48,
        "INVALID_TXN_STATE for a partition not in the transaction"
    );
    let part = read_committed_at(port_of(leader), "txv", p).await;
    assert_eq!(
        (part.high_watermark, part.last_stable_offset),
        (0, 0),
        "nothing appended, no transaction left open"
    );
    txn_add(co_port, id, pid, epoch, "txv", 3).await;
    let taken = l.send(&produce_once("kept"), 9).await;
    assert_eq!(taken.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(txn_end(co_port, id, pid, epoch, true).await, 0);
    wait_markers(ports[0], "txv", port_of, "after the commit").await;
}

/// ConsumerGroupHeartbeat v1 of `member` at `port`, owning `owned` (sent when Some).
async fn consumer_heartbeat(
    port: u16,
    group: &'static str,
    member: &str,
    epoch: i32,
    topic: &'static str,
    owned: Option<&std::collections::BTreeSet<(uuid::Uuid, i32)>>,
) -> ConsumerGroupHeartbeatResponse {
    let sb = kafka_protocol::protocol::StrBytes::from_string;
    let owned = owned.map(owned_partitions);
    let req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(sb(group.to_string())))
        .with_member_id(sb(member.to_string()))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(if epoch == 0 { 30_000 } else { -1 })
        .with_subscribed_topic_names((epoch == 0).then(|| vec![tn(topic)]))
        .with_topic_partitions(owned);
    let mut c = Client::connect(format!("127.0.0.1:{port}").parse().unwrap()).await;
    c.send(&req, 1).await
}

fn assigned(
    r: &ConsumerGroupHeartbeatResponse,
) -> Option<std::collections::BTreeSet<(uuid::Uuid, i32)>> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
            .collect()
    })
}

/// Stage 4, KIP-848: a consumer group's records (group epoch, member subscriptions,
/// target and current assignments, in Kafka's record types) are written to its partition
/// of __consumer_offsets and each heartbeat that changed them is answered once they are
/// replicated, so the broker that takes the partition over after the coordinator's
/// SIGKILL knows the members: a member's next heartbeat, with the epoch it has, is
/// accepted (not UNKNOWN_MEMBER_ID, which would make it drop its partitions and rejoin)
/// and keeps its epoch and its partitions.
#[tokio::test]
async fn a_consumer_group_keeps_its_members_across_a_coordinator_failover() {
    let flags = [
        "--offsets-topic-num-partitions",
        "3",
        "--replica-lag-time-max-ms",
        "1500",
    ];
    let topic = "kip848";
    let mut cl = TxnCluster::start(&flags, topic).await;
    let ports = cl.ports;
    let group = "kept-consumers";
    let (node, port) = find_coordinator(ports[0], 0, group).await;
    let members = ["m-one", "m-two"];
    let mut epochs = [0i32; 2];
    let mut owned: [std::collections::BTreeSet<(uuid::Uuid, i32)>; 2] = Default::default();
    // Both members join and heartbeat until the group is stable: three partitions split
    // between them, nothing left to revoke.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for i in 0..2 {
            let owned_now = owned[i].clone();
            let r = consumer_heartbeat(port, group, members[i], epochs[i], topic, Some(&owned_now))
                .await;
            if [14, 16].contains(&r.error_code) {
                continue; // the coordinator is still loading its new partition
            }
            assert_eq!(r.error_code, 0, "{r:?}");
            epochs[i] = r.member_epoch;
            if let Some(a) = assigned(&r) {
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
    let next_port = coordinator_after(survivor, 0, group, node).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..2 {
        let r = loop {
            let r = consumer_heartbeat(
                next_port,
                group,
                members[i],
                epochs[i],
                topic,
                Some(&owned[i]),
            )
            .await;
            if ![14, 16].contains(&r.error_code) {
                break r;
            }
            assert!(
                Instant::now() < deadline,
                "the new coordinator never loaded"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            r.error_code, 0,
            "the new coordinator must know member {}: {r:?}",
            members[i]
        );
        assert_eq!(
            r.member_epoch, epochs[i],
            "the member keeps its epoch: {r:?}"
        );
        if let Some(a) = assigned(&r) {
            assert_eq!(a, owned[i], "the member keeps its partitions");
        }
    }
    let mut c = Client::connect(format!("127.0.0.1:{next_port}").parse().unwrap()).await;
    let described = c
        .send(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(
                kafka_protocol::protocol::StrBytes::from_static_str(group),
            )]),
            0,
        )
        .await;
    let g = &described.groups[0];
    assert_eq!(g.error_code, 0, "{g:?}");
    assert_eq!(g.group_state.as_str(), "Stable", "{g:?}");
    assert_eq!(g.group_epoch, epochs[0]);
    assert_eq!(g.members.len(), 2);
}
