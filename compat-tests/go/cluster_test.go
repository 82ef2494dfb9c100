package compat

// A three-broker Klamm cluster on a real ZooKeeper under franz-go clients, with brokers
// killed and restarted while an idempotent producer and a group consumer run
// (TestClusterFailoverFranz). Needs Debian's ZooKeeper (/usr/share/zookeeper/bin/zkServer.sh,
// and a JRE); skipped when that script is missing, and against COMPAT_BROKER=kafka (kafka.sh
// runs one KRaft broker, not a cluster).
//
// Faults, one at a time, each followed by a bounded wait for the failover (every live broker
// answers Metadata with the same live brokers, the same controller among them and the same
// live leader for every partition), for acknowledgements of records produced after the fault
// on every partition, then the restart and a bounded wait for the cluster to heal (all three
// brokers, every ISR = {1,2,3}, the topic's and __consumer_offsets' partitions) and for a
// commit acknowledged after it:
//   - SIGKILL the leader of partition 0, restart it (same node id, port, data dir);
//   - SIGKILL the controller (Metadata's controller id), restart it;
//   - SIGKILL the group's coordinator (FindCoordinator), restart it;
//   - a rolling restart with SIGTERM (controlled shutdown; each must exit cleanly).
//
// The group member's offsets fetched after each (re)join must not be below a commit
// acknowledged before. Then the producer is flushed, the group consumer reads to the high
// watermarks and commits them, kadm's FetchOffsets must not be below the last acknowledged
// commits, and checkFailover compares what was acknowledged with what a fresh consumer
// reads from offset 0 to the high watermark of every partition (see checkFailover). When
// the test fails (or with GO_COMPAT_KEEP_FAILOVER=1), broker, ZooKeeper and franz-go logs and
// the record lists are copied to a kept directory (/tmp/klamm-go-failover-*; its path is
// logged).
//
// TestClusterFailoverChecker checks checkFailover itself; TestClusterOffsetForLeaderEpoch-
// AfterLeaderChange is the reduction of a bug the failover test found (OffsetForLeaderEpoch
// capped at a new leader's lagging high watermark).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const (
	zkServerScript   = "/usr/share/zookeeper/bin/zkServer.sh"
	offsetsTopic     = "__consumer_offsets"
	failoverParts    = 3
	failoverBound    = 15 * time.Second // a SIGKILLed broker's session (2 s) expires, leaders move
	healBound        = 20 * time.Second // a restarted broker rejoins every ISR
	produceInterval  = 5 * time.Millisecond
	commitInterval   = 100 * time.Millisecond
	failoverMaxShown = 30 // problems listed in a failure message
)

// ---------------------------------------------------------------- ZooKeeper

type zooKeeper struct {
	port int
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startZooKeeper runs Debian's ZooKeeper, standalone, with a config and data dir in dir, on
// a free loopback port; waits (bounded) until the port accepts TCP; stops it by PID at
// cleanup. zkServer.sh start-foreground execs java, so the PID is the JVM's.
func startZooKeeper(t *testing.T, dir string) *zooKeeper {
	t.Helper()
	z := &zooKeeper{port: freePort(t), log: filepath.Join(dir, "zookeeper.log")}
	data := filepath.Join(dir, "zk-data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "zoo.cfg")
	conf := fmt.Sprintf("tickTime=500\nminSessionTimeout=1000\ndataDir=%s\nclientPort=%d\n"+
		"clientPortAddress=127.0.0.1\nadmin.enableServer=false\n", data, z.port)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(z.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(zkServerScript, "start-foreground", cfg)
	cmd.Env = append(os.Environ(), "ZOOCFGDIR="+dir, "ZOO_LOG_DIR="+dir)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start ZooKeeper: %v", err)
	}
	f.Close()
	z.cmd = cmd
	z.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(z.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-z.done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-z.done
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", z.port), time.Second)
		if err == nil {
			conn.Close()
			return z
		}
		select {
		case <-z.done:
			t.Fatalf("ZooKeeper exited before listening:\n%s", fileTail(z.log, 40))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ZooKeeper not listening on %d within 30 s:\n%s", z.port, fileTail(z.log, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clientLog is a franz-go logger (info level, UTC timestamps) writing to dir/name, closed
// at cleanup after the client (so it must be registered before the client's Close).
func clientLog(t *testing.T, dir, name string) kgo.Opt {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return kgo.WithLogger(kgo.BasicLogger(f, kgo.LogLevelInfo, func() string {
		return time.Now().UTC().Format("2006-01-02T15:04:05.000000Z ")
	}))
}

func fileTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "<no log>"
	}
	return tail(data, n)
}

// ---------------------------------------------------------------- the cluster

type klammCluster struct {
	t       *testing.T
	brokers []*Broker     // brokers[id-1]
	probes  []*kgo.Client // probes[id-1]: a client that sends requests to that broker only
}

// startKlammCluster starts brokers 1..3 on ZooKeeper (chroot /gofail), each with its own
// port and data dir in dir and the extra flags; each is stopped by PID at cleanup (SIGTERM,
// SIGKILL after 10 s).
func startKlammCluster(t *testing.T, dir string, zkPort int, extra ...string) *klammCluster {
	t.Helper()
	c := &klammCluster{t: t}
	for id := 1; id <= 3; id++ {
		port := freePort(t)
		b := &Broker{
			t:    t,
			name: fmt.Sprintf("broker-%d", id),
			dir:  filepath.Join(dir, fmt.Sprintf("b%d-data", id)),
			log:  filepath.Join(dir, fmt.Sprintf("b%d.log", id)),
			port: port,
			addr: fmt.Sprintf("127.0.0.1:%d", port),
			flags: []string{
				"--node-id", strconv.Itoa(id),
				"--zookeeper-connect", fmt.Sprintf("127.0.0.1:%d/gofail", zkPort),
				"--zookeeper-session-timeout-ms", "2000",
				"--replica-lag-time-max-ms", "2000",
				"--offsets-topic-num-partitions", "3",
			},
		}
		b.flags = append(b.flags, extra...)
		c.brokers = append(c.brokers, b)
		t.Cleanup(func() {
			if err := b.Stop(syscall.SIGTERM); err != nil {
				t.Errorf("broker %d stop: %v", id, err)
			}
		})
	}
	for _, b := range c.brokers {
		b.Start()
	}
	for _, b := range c.brokers {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.addr), kgo.DialTimeout(time.Second))
		if err != nil {
			t.Fatalf("kgo.NewClient: %v", err)
		}
		t.Cleanup(cl.Close)
		c.probes = append(c.probes, cl)
	}
	return c
}

func (c *klammCluster) addrs() []string {
	var out []string
	for _, b := range c.brokers {
		out = append(out, b.addr)
	}
	return out
}

type partView struct {
	leader int32
	epoch  int32   // leader epoch
	isr    []int32 // sorted
}

type brokerView struct {
	brokers    []int32 // sorted
	controller int32
	parts      map[string][]partView // by partition index
}

// view asks broker id (directly) for Metadata of topics.
func (c *klammCluster) view(id int, topics []string) (*brokerView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, tp := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(tp)
		req.Topics = append(req.Topics, rt)
	}
	if len(topics) == 0 {
		req.Topics = []kmsg.MetadataRequestTopic{} // none, not all
	}
	r, err := c.probes[id-1].SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		return nil, err
	}
	resp := r.(*kmsg.MetadataResponse)
	v := &brokerView{controller: resp.ControllerID, parts: map[string][]partView{}}
	for _, b := range resp.Brokers {
		v.brokers = append(v.brokers, b.NodeID)
	}
	slices.Sort(v.brokers)
	for _, tp := range resp.Topics {
		name := ""
		if tp.Topic != nil {
			name = *tp.Topic
		}
		if tp.ErrorCode != 0 {
			return nil, fmt.Errorf("topic %s: %v", name, kerr.ErrorForCode(tp.ErrorCode))
		}
		ps := make([]partView, len(tp.Partitions))
		for _, p := range tp.Partitions {
			if int(p.Partition) >= len(ps) || p.Partition < 0 {
				return nil, fmt.Errorf("topic %s: partition %d of %d", name, p.Partition, len(ps))
			}
			isr := slices.Clone(p.ISR)
			slices.Sort(isr)
			leader := p.Leader
			if p.ErrorCode != 0 {
				leader = -1
			}
			ps[p.Partition] = partView{leader: leader, epoch: p.LeaderEpoch, isr: isr}
		}
		v.parts[name] = ps
	}
	return v, nil
}

// check asks every broker in live for Metadata of topics and returns nil if all of them
// list exactly the brokers live, name the same controller (one of them), and give every
// partition the same leader (one of them); with fullISR also every ISR = {1,2,3}.
// The error says what disagrees.
func (c *klammCluster) check(live []int, topics []string, fullISR bool) error {
	want := make([]int32, 0, len(live))
	for _, id := range live {
		want = append(want, int32(id))
	}
	slices.Sort(want)
	var first *brokerView
	firstID := 0
	for _, id := range live {
		v, err := c.view(id, topics)
		if err != nil {
			return fmt.Errorf("broker %d: %v", id, err)
		}
		if !slices.Equal(v.brokers, want) {
			return fmt.Errorf("broker %d lists brokers %v, want %v", id, v.brokers, want)
		}
		if !slices.Contains(want, v.controller) {
			return fmt.Errorf("broker %d names controller %d, not a live broker", id, v.controller)
		}
		for _, tp := range topics {
			ps := v.parts[tp]
			if len(ps) == 0 {
				return fmt.Errorf("broker %d: no partitions of %s", id, tp)
			}
			for p, pv := range ps {
				if !slices.Contains(want, pv.leader) {
					return fmt.Errorf("broker %d: %s/%d leader %d, not a live broker", id, tp, p, pv.leader)
				}
				if fullISR && !slices.Equal(pv.isr, []int32{1, 2, 3}) {
					return fmt.Errorf("broker %d: %s/%d ISR %v", id, tp, p, pv.isr)
				}
			}
		}
		if first == nil {
			first, firstID = v, id
			continue
		}
		if v.controller != first.controller {
			return fmt.Errorf("controller: broker %d says %d, broker %d says %d", firstID, first.controller, id, v.controller)
		}
		for _, tp := range topics {
			a, b := first.parts[tp], v.parts[tp]
			if len(a) != len(b) {
				return fmt.Errorf("%s: broker %d has %d partitions, broker %d %d", tp, firstID, len(a), id, len(b))
			}
			for p := range a {
				if a[p].leader != b[p].leader {
					return fmt.Errorf("%s/%d leader: broker %d says %d, broker %d says %d", tp, p, firstID, a[p].leader, id, b[p].leader)
				}
			}
		}
	}
	return nil
}

// waitFor polls cond every 100 ms until it returns nil; past timeout the test fails with
// cond's last error. Returns how long it took.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- producer

type ackRec struct {
	seq  int64
	part int32
	off  int64
}

// failoverProducer sends "p-<seq>" (key <seq>) to partition seq % 3 every produceInterval
// with franz-go's idempotent acks=all producer and records every acknowledgement.
type failoverProducer struct {
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	next     int64 // records handed to the client: seqs 0..next-1
	acks     []ackRec
	ackAt    []time.Time // when each of acks arrived
	failed   map[int64]string
	maxAcked [failoverParts]int64 // per partition, the highest acknowledged seq (-1: none)
	lastAck  time.Time
	maxGap   time.Duration // longest wait between two acknowledgements
}

func startFailoverProducer(t *testing.T, c *klammCluster, dir, topic string) *failoverProducer {
	t.Helper()
	cl, err := kgo.NewClient(
		clientLog(t, dir, "producer-client.log"),
		kgo.SeedBrokers(c.addrs()...),
		kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(250*time.Millisecond),
		kgo.RecordDeliveryTimeout(60*time.Second),
		kgo.DialTimeout(time.Second),
	)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	p := &failoverProducer{cl: cl, stop: make(chan struct{}), done: make(chan struct{}), failed: map[int64]string{}}
	for i := range p.maxAcked {
		p.maxAcked[i] = -1
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		p.halt()
		cancel() // unblocks a Produce waiting for buffer space
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("producer loop did not stop")
		}
		cl.Close()
	})
	go func() {
		defer close(p.done)
		tick := time.NewTicker(produceInterval)
		defer tick.Stop()
		for seq := int64(0); ; seq++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			r := &kgo.Record{
				Partition: int32(seq % failoverParts),
				Key:       []byte(strconv.FormatInt(seq, 10)),
				Value:     []byte(fmt.Sprintf("p-%d", seq)),
			}
			p.mu.Lock()
			p.next = seq + 1
			p.mu.Unlock()
			cl.Produce(ctx, r, func(r *kgo.Record, err error) { p.onAck(seq, r, err) })
		}
	}()
	return p
}

func (p *failoverProducer) onAck(seq int64, r *kgo.Record, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failed[seq] = err.Error()
		return
	}
	now := time.Now()
	if !p.lastAck.IsZero() && now.Sub(p.lastAck) > p.maxGap {
		p.maxGap = now.Sub(p.lastAck)
	}
	p.lastAck = now
	p.acks = append(p.acks, ackRec{seq: seq, part: r.Partition, off: r.Offset})
	p.ackAt = append(p.ackAt, now)
	if r.Partition >= 0 && r.Partition < failoverParts && seq > p.maxAcked[r.Partition] {
		p.maxAcked[r.Partition] = seq
	}
}

func (p *failoverProducer) halt() { p.once.Do(func() { close(p.stop) }) }

func (p *failoverProducer) produced() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

// ackedSince is nil once every partition has an acknowledgement of a seq >= seq.
func (p *failoverProducer) ackedSince(seq int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for part, m := range p.maxAcked {
		if m < seq {
			return fmt.Errorf("partition %d: highest acknowledged seq %d, waiting for one >= %d (%d acknowledged, %d failed of %d produced)",
				part, m, seq, len(p.acks), len(p.failed), p.next)
		}
	}
	return nil
}

// ---------------------------------------------------------------- group consumer

type commitRec struct {
	at      time.Time
	offsets map[int32]int64
}

// failoverReader is a classic-group member (cooperative-sticky, franz-go's default) that
// polls the topic and commits what it consumed synchronously, at most every commitInterval,
// recording every commit the coordinator acknowledged without error, per partition.
type failoverReader struct {
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu         sync.Mutex
	seen       map[int32]map[int64]string // every record polled
	conflicts  []string                   // the same offset polled twice with different values
	acked      map[int32]int64            // last commit acknowledged without error
	commits    []commitRec
	commitErrs int
	lastErr    string
	pollErrs   int
	lastPoll   string
	errKinds   map[string]int // "commit: ERR" / "poll: ERR" -> count
	dataLoss   []string       // franz-go's ErrDataLoss (KIP-320 divergence) reports, with times
	// At each assignment, the commits acknowledged so far (all answered before the
	// member's OffsetFetch is sent); the offsets it then fetches must not be lower.
	ackedAtAssign map[int32]int64
	fetches       []string // each OffsetFetch after a (re)join: time and offsets
	regressions   []string // fetched offsets below a commit acknowledged before
	// Each time franz-go dropped its partitions as lost (the coordinator did not know the
	// member: UNKNOWN_MEMBER_ID, a fenced epoch or generation) and rejoined.
	lost []string
}

func startFailoverReader(t *testing.T, c *klammCluster, dir, topic, group string, kip848 bool) *failoverReader {
	t.Helper()
	g := &failoverReader{stop: make(chan struct{}), done: make(chan struct{}),
		seen: map[int32]map[int64]string{}, acked: map[int32]int64{}, errKinds: map[string]int{}}
	opts := []kgo.Opt{
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.lost = append(g.lost, fmt.Sprintf("%s %v", time.Now().UTC().Format("15:04:05.000"), lost))
		}),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.ackedAtAssign = maps.Clone(g.acked)
		}),
		kgo.OnOffsetsFetched(func(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
			g.onOffsetsFetched(topic, resp)
			return nil
		}),
		clientLog(t, dir, "group-client.log"),
		kgo.SeedBrokers(c.addrs()...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(250 * time.Millisecond),
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.SessionTimeout(10 * time.Second),
		kgo.HeartbeatInterval(time.Second),
		kgo.DialTimeout(time.Second),
	}
	if kip848 {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	g.cl = cl
	t.Cleanup(func() {
		g.halt()
		select {
		case <-g.done:
		case <-time.After(15 * time.Second):
			t.Errorf("group consumer loop did not stop")
		}
		cl.Close()
	})
	go g.run(topic)
	return g
}

// onOffsetsFetched checks the offsets the member fetched after a (re)join against the
// commits acknowledged before its assignment: a lower one (or none) means the coordinator
// lost an acknowledged commit.
func (g *failoverReader) onOffsetsFetched(topic string, resp *kmsg.OffsetFetchResponse) {
	got := map[int32]int64{}
	errs := map[int32]int16{}
	add := func(tp string, p int32, off int64, code int16) {
		if tp == topic {
			got[p], errs[p] = off, code
		}
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			add(rt.Topic, rp.Partition, rp.Offset, rp.ErrorCode)
		}
	}
	for _, rg := range resp.Groups {
		for _, rt := range rg.Topics {
			for _, rp := range rt.Partitions {
				add(rt.Topic, rp.Partition, rp.Offset, rp.ErrorCode)
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now().UTC().Format("15:04:05.000")
	g.fetches = append(g.fetches, fmt.Sprintf("%s fetched %v (acknowledged before the assignment: %v)", now, got, g.ackedAtAssign))
	for p, want := range g.ackedAtAssign {
		off, ok := got[p]
		if !ok || errs[p] != 0 {
			continue // not fetched (kept from before), or the fetch failed; franz-go fetches again
		}
		if off < want {
			g.regressions = append(g.regressions, fmt.Sprintf("%s: after a (re)join the group's committed offset of partition %d is %d, below the commit acknowledged before, %d",
				now, p, off, want))
		}
	}
}

func (g *failoverReader) halt() { g.once.Do(func() { close(g.stop) }) }

func (g *failoverReader) run(topic string) {
	defer close(g.done)
	pending := map[int32]kgo.EpochOffset{} // consumed, not yet acknowledged as committed
	var lastCommit time.Time
	for {
		select {
		case <-g.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := g.cl.PollRecords(ctx, 2000)
		cancel()
		if fs.IsClientClosed() {
			return
		}
		g.mu.Lock()
		fs.EachError(func(tp string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return
			}
			g.pollErrs++
			g.lastPoll = fmt.Sprintf("%s/%d: %v", tp, p, err)
			var dl *kgo.ErrDataLoss
			if errors.As(err, &dl) {
				g.dataLoss = append(g.dataLoss, time.Now().UTC().Format("15:04:05.000")+" "+err.Error())
				g.errKinds["poll: data loss"]++
				return
			}
			g.errKinds["poll: "+errKind(err)]++
		})
		fs.EachRecord(func(r *kgo.Record) {
			m := g.seen[r.Partition]
			if m == nil {
				m = map[int64]string{}
				g.seen[r.Partition] = m
			}
			if old, ok := m[r.Offset]; ok && old != string(r.Value) {
				g.conflicts = append(g.conflicts, fmt.Sprintf("%d/%d: polled %q, later %q", r.Partition, r.Offset, old, r.Value))
			}
			m[r.Offset] = string(r.Value)
			if eo, ok := pending[r.Partition]; !ok || r.Offset+1 > eo.Offset {
				pending[r.Partition] = kgo.EpochOffset{Epoch: r.LeaderEpoch, Offset: r.Offset + 1}
			}
		})
		g.mu.Unlock()
		if len(pending) == 0 || time.Since(lastCommit) < commitInterval {
			continue
		}
		lastCommit = time.Now()
		send := map[int32]kgo.EpochOffset{}
		for p, eo := range pending {
			send[p] = eo
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		g.cl.CommitOffsetsSync(cctx, map[string]map[int32]kgo.EpochOffset{topic: send},
			func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
				g.mu.Lock()
				defer g.mu.Unlock()
				if err != nil {
					g.commitErrs++
					g.lastErr = err.Error()
					g.errKinds["commit: "+errKind(err)]++
					return
				}
				ok := map[int32]int64{}
				for _, rt := range resp.Topics {
					for _, rp := range rt.Partitions {
						eo, sent := send[rp.Partition]
						if rt.Topic != topic || !sent {
							continue
						}
						if rp.ErrorCode != 0 {
							g.commitErrs++
							g.lastErr = fmt.Sprintf("partition %d: %v", rp.Partition, kerr.ErrorForCode(rp.ErrorCode))
							g.errKinds["commit: "+errKind(kerr.ErrorForCode(rp.ErrorCode))]++
							continue
						}
						ok[rp.Partition] = eo.Offset
						g.acked[rp.Partition] = eo.Offset
						if cur, still := pending[rp.Partition]; still && cur.Offset == eo.Offset {
							delete(pending, rp.Partition)
						}
					}
				}
				if len(ok) > 0 {
					g.commits = append(g.commits, commitRec{at: time.Now(), offsets: ok})
				}
			})
		ccancel()
	}
}

// errKind is an error's message without addresses and ports, to count errors by kind.
func errKind(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && len(msg) > 80 {
		msg = msg[i+2:]
	}
	return addrRE.ReplaceAllString(msg, "ADDR")
}

var addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

func (g *failoverReader) commitCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.commits)
}

func (g *failoverReader) committedSince(n int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.commits) > n {
		return nil
	}
	return fmt.Errorf("no commit acknowledged yet (%d before; %d commit errors, last: %s; %d poll errors, last: %s)",
		n, g.commitErrs, g.lastErr, g.pollErrs, g.lastPoll)
}

// ---------------------------------------------------------------- the check

type logRec struct {
	off   int64
	value string
}

// checkFailover compares what the producer was told with the final log (every partition
// read from offset 0 to its high watermark) and returns the problems found:
//   - every acknowledged record is in the log at the partition and offset its
//     acknowledgement gave (else LOST, or another value is there);
//   - no value is in the log twice, acknowledged or not (DUPLICATE), and none that was
//     never produced, or in another partition than seq % partitions;
//   - per partition, offsets rise and the producer's seqs rise with them (its order kept),
//     and the acknowledged offsets rise with the seqs; no seq is acknowledged twice.
func checkFailover(parts int32, produced int64, acks []ackRec, log map[int32][]logRec) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	at := map[int32]map[int64]string{}
	where := map[int64][]string{}
	ackedSeq := map[int64]ackRec{}
	for _, a := range acks {
		if prev, dup := ackedSeq[a.seq]; dup {
			add("p-%d acknowledged twice: %d/%d and %d/%d", a.seq, prev.part, prev.off, a.part, a.off)
		}
		ackedSeq[a.seq] = a
	}
	for p := int32(0); p < parts; p++ {
		at[p] = map[int64]string{}
		prevOff, prevSeq := int64(-1), int64(-1)
		for _, r := range log[p] {
			if r.off <= prevOff {
				add("partition %d: offset %d read after offset %d", p, r.off, prevOff)
			}
			prevOff = r.off
			at[p][r.off] = r.value
			seq, err := strconv.ParseInt(strings.TrimPrefix(r.value, "p-"), 10, 64)
			if !strings.HasPrefix(r.value, "p-") || err != nil || seq < 0 || seq >= produced {
				add("partition %d offset %d: %q was never produced", p, r.off, r.value)
				continue
			}
			if seq%int64(parts) != int64(p) {
				add("partition %d offset %d: p-%d belongs in partition %d", p, r.off, seq, seq%int64(parts))
			}
			if seq <= prevSeq {
				add("partition %d offset %d: p-%d after p-%d (the producer's order is not kept)", p, r.off, seq, prevSeq)
			}
			prevSeq = max(prevSeq, seq)
			where[seq] = append(where[seq], fmt.Sprintf("%d/%d", p, r.off))
		}
	}
	for seq, pos := range where {
		if len(pos) > 1 {
			_, acked := ackedSeq[seq]
			add("DUPLICATE: p-%d is in the log %d times, at %v (acknowledged: %v)", seq, len(pos), pos, acked)
		}
	}
	byPart := map[int32][]ackRec{}
	for _, a := range acks {
		byPart[a.part] = append(byPart[a.part], a)
		v, ok := at[a.part][a.off]
		switch {
		case a.part < 0 || a.part >= parts:
			add("p-%d acknowledged in partition %d", a.seq, a.part)
		case !ok:
			add("LOST: p-%d acknowledged at %d/%d, no record there (log has it at %v)", a.seq, a.part, a.off, where[a.seq])
		case v != fmt.Sprintf("p-%d", a.seq):
			add("LOST: p-%d acknowledged at %d/%d, the log has %q there (and p-%d at %v)", a.seq, a.part, a.off, v, a.seq, where[a.seq])
		}
	}
	for p, as := range byPart {
		sort.Slice(as, func(i, j int) bool { return as[i].seq < as[j].seq })
		for i := 1; i < len(as); i++ {
			if as[i].off <= as[i-1].off {
				add("partition %d: p-%d acknowledged at offset %d, not after p-%d's %d", p, as[i].seq, as[i].off, as[i-1].seq, as[i-1].off)
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// readToHighWatermarks reads every partition of topic from offset 0 with a fresh
// (groupless) consumer until it has the record before hw[p], bounded.
func readToHighWatermarks(t *testing.T, c *klammCluster, topic string, hw map[int32]int64) map[int32][]logRec {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	for p := int32(0); p < failoverParts; p++ {
		offs[p] = kgo.NewOffset().At(0)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}),
		kgo.FetchMaxWait(200*time.Millisecond), kgo.DialTimeout(time.Second))
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	defer cl.Close()
	out := map[int32][]logRec{}
	var lastErr error
	deadline := time.Now().Add(30 * time.Second)
	for {
		complete := true
		for p := int32(0); p < failoverParts; p++ {
			rs := out[p]
			if hw[p] > 0 && (len(rs) == 0 || rs[len(rs)-1].off < hw[p]-1) {
				complete = false
			}
		}
		if complete {
			return out
		}
		if time.Now().After(deadline) {
			got := map[int32]int{}
			for p, rs := range out {
				got[p] = len(rs)
			}
			t.Fatalf("reading back: not at the high watermarks %v within 30 s (records per partition %v; last error %v)", hw, got, lastErr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(_ string, _ int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				lastErr = err
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < hw[r.Partition] {
				out[r.Partition] = append(out[r.Partition], logRec{off: r.Offset, value: string(r.Value)})
			}
		})
	}
}

// ---------------------------------------------------------------- evidence

// keepFailoverEvidence copies the logs and writes the record lists to a directory that
// outlives the test (it is logged).
func keepFailoverEvidence(t *testing.T, dir string, events []string, p *failoverProducer, g *failoverReader, log map[int32][]logRec) {
	keep, err := os.MkdirTemp("", "klamm-go-failover-")
	if err != nil {
		t.Logf("cannot keep the evidence: %v", err)
		return
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range logs {
		if data, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(keep, filepath.Base(f)), data, 0o644)
		}
	}
	write := func(name string, fill func(w *bufio.Writer)) {
		f, err := os.Create(filepath.Join(keep, name))
		if err != nil {
			return
		}
		w := bufio.NewWriter(f)
		fill(w)
		_ = w.Flush()
		f.Close()
	}
	write("events.txt", func(w *bufio.Writer) {
		for _, e := range events {
			fmt.Fprintln(w, e)
		}
	})
	if p != nil {
		p.mu.Lock()
		write("acks.txt", func(w *bufio.Writer) {
			fmt.Fprintf(w, "# in acknowledgement order; %d produced\n", p.next)
			fmt.Fprintf(w, "# time seq partition offset\n")
			for i, a := range p.acks {
				fmt.Fprintf(w, "%s %d %d %d\n", p.ackAt[i].UTC().Format("15:04:05.000000"), a.seq, a.part, a.off)
			}
		})
		write("failed.txt", func(w *bufio.Writer) {
			for seq, e := range p.failed {
				fmt.Fprintf(w, "%d %s\n", seq, e)
			}
		})
		p.mu.Unlock()
	}
	if g != nil {
		g.mu.Lock()
		write("commits.txt", func(w *bufio.Writer) {
			for _, c := range g.commits {
				fmt.Fprintf(w, "%s %v\n", c.at.UTC().Format("15:04:05.000000"), c.offsets)
			}
			fmt.Fprintf(w, "# last acknowledged %v; %d commit errors, last %s\n", g.acked, g.commitErrs, g.lastErr)
			for _, f := range g.fetches {
				fmt.Fprintf(w, "# offset fetch %s\n", f)
			}
			for _, d := range g.dataLoss {
				fmt.Fprintf(w, "# data loss reported %s\n", d)
			}
		})
		write("consumed.txt", func(w *bufio.Writer) {
			for p, m := range g.seen {
				for off, v := range m {
					fmt.Fprintf(w, "%d %d %s\n", p, off, v)
				}
			}
		})
		g.mu.Unlock()
	}
	if log != nil {
		write("log.txt", func(w *bufio.Writer) {
			for p := int32(0); p < failoverParts; p++ {
				for _, r := range log[p] {
					fmt.Fprintf(w, "%d %d %s\n", p, r.off, r.value)
				}
			}
		})
	}
	t.Logf("evidence (broker and ZooKeeper logs, events, acks, commits, final log) kept in %s", keep)
}

// ---------------------------------------------------------------- the test

func TestClusterFailoverFranz(t *testing.T) {
	t.Run("classic", func(t *testing.T) { clusterFailoverFranz(t, false) })
	// KIP-848 (group.protocol=consumer, server-side assignment): the group's members and
	// epochs live in __consumer_offsets too, so they survive the coordinator.
	t.Run("consumer", func(t *testing.T) { clusterFailoverFranz(t, true) })
}

func clusterFailoverFranz(t *testing.T, kip848 bool) {
	if useKafka() {
		t.Skip("a Klamm cluster on ZooKeeper; kafka.sh runs a single broker")
	}
	if _, err := os.Stat(zkServerScript); err != nil {
		t.Skipf("ZooKeeper (Debian's zookeeper package) is not installed: %v", err)
	}
	t0 := time.Now()
	var evMu sync.Mutex
	var events []string
	logf := func(format string, args ...any) {
		line := fmt.Sprintf("%s +%6.2fs ", time.Now().UTC().Format("15:04:05.000"), time.Since(t0).Seconds()) + fmt.Sprintf(format, args...)
		evMu.Lock()
		events = append(events, line)
		evMu.Unlock()
		t.Log(line)
	}
	dir := t.TempDir()
	zk := startZooKeeper(t, dir)
	logf("ZooKeeper listening on 127.0.0.1:%d", zk.port)

	var prod *failoverProducer
	var reader *failoverReader
	var finalLog map[int32][]logRec
	var c *klammCluster
	// Registered before the brokers' cleanups, so it runs after they stopped (full logs).
	// GO_COMPAT_KEEP_FAILOVER=1 keeps the evidence of a passing run too.
	t.Cleanup(func() {
		if !t.Failed() {
			if os.Getenv("GO_COMPAT_KEEP_FAILOVER") == "1" {
				evMu.Lock()
				defer evMu.Unlock()
				keepFailoverEvidence(t, dir, events, prod, reader, finalLog)
			}
			return
		}
		if c != nil {
			for i, b := range c.brokers {
				t.Logf("----- broker %d log (last 25 lines) -----\n%s", i+1, fileTail(b.log, 25))
			}
		}
		evMu.Lock()
		defer evMu.Unlock()
		keepFailoverEvidence(t, dir, events, prod, reader, finalLog)
	})

	c = startKlammCluster(t, dir, zk.port)
	all := []int{1, 2, 3}
	others := func(id int) []int {
		var out []int
		for _, o := range all {
			if o != id {
				out = append(out, o)
			}
		}
		return out
	}
	took := waitFor(t, healBound, "three brokers and one controller", func() error { return c.check(all, nil, false) })
	logf("3 brokers up, agreed on the controller (%v)", took.Round(time.Millisecond))

	adminCl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs()...), kgo.MetadataMinAge(250*time.Millisecond),
		kgo.RetryTimeout(10*time.Second), kgo.DialTimeout(time.Second))
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(adminCl.Close)
	adm := kadm.NewClient(adminCl)
	topic := topicName(t, "t")
	group := topic + "-group"
	two := "2"
	ctx := testCtx(t, 120*time.Second)
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	resp, err := adm.CreateTopic(cctx, failoverParts, 3, map[string]*string{"min.insync.replicas": &two}, topic)
	cancel()
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s (3 partitions, RF 3, min.insync.replicas=2): %v", topic, err)
	}
	topics := []string{topic}
	took = waitFor(t, healBound, "every ISR of the new topic = {1,2,3}", func() error { return c.check(all, topics, true) })
	logf("topic %s created, every ISR full (%v)", topic, took.Round(time.Millisecond))

	prod = startFailoverProducer(t, c, dir, topic)
	reader = startFailoverReader(t, c, dir, topic, group, kip848)
	waitFor(t, 20*time.Second, "the first acknowledgements", func() error { return prod.ackedSince(0) })
	waitFor(t, 20*time.Second, "the group's first acknowledged commit", func() error { return reader.committedSince(0) })
	// The group's commits live in __consumer_offsets, which exists now: it must heal too.
	topics = []string{topic, offsetsTopic}
	waitFor(t, healBound, "every ISR (and __consumer_offsets') = {1,2,3}", func() error { return c.check(all, topics, true) })
	logf("producing and committing; every ISR full")

	view := func() *brokerView {
		var v *brokerView
		waitFor(t, 5*time.Second, "a Metadata answer", func() error {
			var err error
			for _, id := range all {
				if v, err = c.view(id, topics); err == nil {
					return nil
				}
			}
			return err
		})
		return v
	}
	coordinator := func() int {
		var id int32
		waitFor(t, 10*time.Second, "the group's coordinator", func() error {
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			r := adm.FindGroupCoordinators(qctx, group)[group]
			id = r.NodeID
			if r.Err != nil {
				return r.Err
			}
			if id < 1 || id > 3 {
				return fmt.Errorf("coordinator %d", id)
			}
			return nil
		})
		return int(id)
	}

	// fault stops broker victim with sig, waits for the failover and for new
	// acknowledgements, restarts it, waits for the cluster to heal and a new commit.
	fault := func(what string, victim int, sig syscall.Signal) {
		t.Helper()
		sigName := map[syscall.Signal]string{syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM"}[sig]
		coord := coordinator()
		seq0 := prod.produced()
		logf("%s: %s to broker %d (seq %d produced so far; group coordinator %d)", what, sigName, victim, seq0, coord)
		start := time.Now()
		if err := c.brokers[victim-1].Stop(sig); err != nil {
			t.Fatalf("%s: broker %d: %v", what, victim, err)
		}
		stopped := time.Since(start)
		waitFor(t, failoverBound, fmt.Sprintf("%s: brokers %v to agree on live leaders and controller", what, others(victim)),
			func() error { return c.check(others(victim), topics, false) })
		moved := time.Since(start)
		waitFor(t, failoverBound, fmt.Sprintf("%s: acknowledgements on every partition of records produced after the signal", what),
			func() error { return prod.ackedSince(seq0) })
		acked := time.Since(start)
		v := view()
		logf("%s: exited %v, failed over %v, acks on every partition %v after the signal (now partition 0 leader %d, controller %d)",
			what, stopped.Round(time.Millisecond), moved.Round(time.Millisecond), acked.Round(time.Millisecond), v.parts[topic][0].leader, v.controller)
		c.brokers[victim-1].Start()
		healed := waitFor(t, healBound, fmt.Sprintf("%s: the cluster to heal after broker %d's restart", what, victim),
			func() error { return c.check(all, topics, true) })
		n := reader.commitCount()
		committed := waitFor(t, 20*time.Second, fmt.Sprintf("%s: a group commit acknowledged after the heal", what),
			func() error { return reader.committedSince(n) })
		logf("%s: broker %d back, healed %v after its start, %v after the signal; a commit %v later",
			what, victim, healed.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), committed.Round(time.Millisecond))
	}

	fault("kill the leader of partition 0", int(view().parts[topic][0].leader), syscall.SIGKILL)
	fault("kill the controller", int(view().controller), syscall.SIGKILL)
	fault("kill the group coordinator", coordinator(), syscall.SIGKILL)
	for _, id := range all {
		fault(fmt.Sprintf("rolling restart, broker %d", id), id, syscall.SIGTERM)
	}

	// The end: stop producing, drain, let the group consume and commit everything.
	prod.halt()
	select {
	case <-prod.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("producer loop did not stop")
	}
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = prod.cl.Flush(fctx)
	cancel()
	prod.mu.Lock()
	produced, acks := prod.next, slices.Clone(prod.acks)
	failed := len(prod.failed)
	var failedShown []string
	for seq, e := range prod.failed {
		if len(failedShown) < 5 {
			failedShown = append(failedShown, fmt.Sprintf("p-%d: %s", seq, e))
		}
	}
	maxGap := prod.maxGap
	prod.mu.Unlock()
	if err != nil {
		t.Fatalf("producer flush: %v (%d produced, %d acknowledged, %d failed)", err, produced, len(acks), failed)
	}
	logf("producer drained: %d produced, %d acknowledged, %d failed; longest wait between acknowledgements %v",
		produced, len(acks), failed, maxGap.Round(time.Millisecond))
	if failed > 0 {
		// Infinite retries, no record timeout hit: a failure is a non-retriable error.
		t.Errorf("%d records failed (e.g. %v)", failed, failedShown)
	}

	hw := map[int32]int64{}
	waitFor(t, 10*time.Second, "the high watermarks", func() error {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		lo, err := adm.ListEndOffsets(qctx, topic)
		if err != nil {
			return err
		}
		for p := int32(0); p < failoverParts; p++ {
			o, ok := lo.Lookup(topic, p)
			if !ok {
				return fmt.Errorf("no end offset for partition %d", p)
			}
			if o.Err != nil {
				return fmt.Errorf("partition %d: %v", p, o.Err)
			}
			hw[p] = o.Offset
		}
		return nil
	})
	logf("high watermarks %v", hw)

	took = waitFor(t, 20*time.Second, "the group to commit the high watermarks", func() error {
		reader.mu.Lock()
		defer reader.mu.Unlock()
		for p := int32(0); p < failoverParts; p++ {
			if reader.acked[p] < hw[p] {
				return fmt.Errorf("acknowledged commits %v, high watermarks %v (%d commit errors, last: %s)", reader.acked, hw, reader.commitErrs, reader.lastErr)
			}
		}
		return nil
	})
	reader.halt()
	select {
	case <-reader.done:
	case <-time.After(15 * time.Second):
		t.Fatalf("group consumer loop did not stop")
	}
	reader.mu.Lock()
	lastAcked := map[int32]int64{}
	for p, o := range reader.acked {
		lastAcked[p] = o
	}
	nCommits, commitErrs, pollErrs := len(reader.commits), reader.commitErrs, reader.pollErrs
	errKinds := fmt.Sprint(reader.errKinds)
	conflicts := slices.Clone(reader.conflicts)
	dataLoss := slices.Clone(reader.dataLoss)
	regressions := slices.Clone(reader.regressions)
	lost := slices.Clone(reader.lost)
	nFetches := len(reader.fetches)
	reader.mu.Unlock()
	logf("group committed the high watermarks (%v later): %d commits acknowledged, %d commit errors, %d poll errors %s; %d offset fetches after (re)joins",
		took.Round(time.Millisecond), nCommits, commitErrs, pollErrs, errKinds, nFetches)
	for _, r := range regressions {
		t.Errorf("committed offset lost: %s", r)
	}
	if len(lost) > 0 && kip848 {
		// The group's state is in __consumer_offsets: a new coordinator knows the member,
		// its epoch and its assignment, as Kafka's does. (A classic member may still drop
		// its partitions: franz-go ends its session when a heartbeat reaches its former
		// coordinator, restarted and no longer coordinating, and gets NOT_COORDINATOR.)
		t.Errorf("the group's member lost its partitions %d time(s) and rejoined: %v", len(lost), lost)
	}
	logf("partitions lost and rejoined: %d %v", len(lost), lost)

	if len(dataLoss) > 0 {
		// Kafka answers a consumer's OffsetForLeaderEpoch with the end of the epoch (the
		// next epoch's start offset). A broker that answers below the consumer's position
		// right after a leader change (Klamm once capped it at the new leader's lagging
		// high watermark) makes franz-go report lost records and rewind.
		t.Errorf("franz-go reported %d data loss(es) after leader changes (OffsetForLeaderEpoch answered below the consumer's position): %v",
			len(dataLoss), dataLoss)
	}

	var committed kadm.OffsetResponses
	waitFor(t, 10*time.Second, "the group's committed offsets", func() error {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var err error
		committed, err = adm.FetchOffsets(qctx, group)
		if err == nil {
			err = committed.Error()
		}
		return err
	})
	for p := int32(0); p < failoverParts; p++ {
		o, ok := committed.Lookup(topic, p)
		switch {
		case !ok:
			t.Errorf("group %s: no committed offset for partition %d (last acknowledged commit %d)", group, p, lastAcked[p])
		case o.At < lastAcked[p]:
			t.Errorf("group %s partition %d: committed offset %d is below the last commit acknowledged without error, %d", group, p, o.At, lastAcked[p])
		case o.At > hw[p]:
			t.Errorf("group %s partition %d: committed offset %d is past the high watermark %d", group, p, o.At, hw[p])
		}
	}

	finalLog = readToHighWatermarks(t, c, topic, hw)
	problems := checkFailover(failoverParts, produced, acks, finalLog)
	// Every record the group consumer was given is in the final log at that offset
	// (nothing was read past a high watermark and truncated later).
	reader.mu.Lock()
	for p, m := range reader.seen {
		logAt := map[int64]string{}
		for _, r := range finalLog[p] {
			logAt[r.off] = r.value
		}
		for off, v := range m {
			if lv, ok := logAt[off]; !ok || lv != v {
				problems = append(problems, fmt.Sprintf("the group consumer polled %q at %d/%d; the final log has %q (present: %v)", v, p, off, lv, ok))
			}
		}
	}
	reader.mu.Unlock()
	problems = append(problems, conflicts...)
	inLog := 0
	for _, rs := range finalLog {
		inLog += len(rs)
	}
	logf("read back %d records (%d produced, %d acknowledged): %d problems", inLog, produced, len(acks), len(problems))
	if len(problems) > 0 {
		shown := problems
		if len(shown) > failoverMaxShown {
			shown = shown[:failoverMaxShown]
		}
		t.Errorf("%d problems in the final log (%d shown):\n  %s", len(problems), len(shown), strings.Join(shown, "\n  "))
	}
}

// The checker itself: a lost, a misplaced, a duplicated and a reordered record are each
// reported, and a correct log is not (no brokers needed).
func TestClusterFailoverChecker(t *testing.T) {
	acks := []ackRec{{0, 0, 0}, {1, 1, 0}, {3, 0, 1}, {4, 1, 1}}
	good := map[int32][]logRec{0: {{0, "p-0"}, {1, "p-3"}}, 1: {{0, "p-1"}, {1, "p-4"}}, 2: {{0, "p-2"}}}
	if got := checkFailover(3, 6, acks, good); len(got) != 0 {
		t.Fatalf("a correct log reported: %v", got)
	}
	cases := map[string]struct {
		log  map[int32][]logRec
		want string
	}{
		"lost":      {map[int32][]logRec{0: {{0, "p-0"}}, 1: {{0, "p-1"}, {1, "p-4"}}}, "LOST: p-3 acknowledged at 0/1"},
		"moved":     {map[int32][]logRec{0: {{0, "p-0"}, {1, "p-0"}, {2, "p-3"}}, 1: {{0, "p-1"}, {1, "p-4"}}}, "LOST: p-3 acknowledged at 0/1, the log has \"p-0\""},
		"duplicate": {map[int32][]logRec{0: {{0, "p-0"}, {1, "p-3"}}, 1: {{0, "p-1"}, {1, "p-4"}}, 2: {{0, "p-2"}, {1, "p-2"}}}, "DUPLICATE: p-2"},
		"reordered": {map[int32][]logRec{0: {{0, "p-0"}, {1, "p-3"}}, 1: {{0, "p-1"}, {1, "p-4"}}, 2: {{0, "p-5"}, {1, "p-2"}}}, "p-2 after p-5"},
		"misplaced": {map[int32][]logRec{0: {{0, "p-0"}, {1, "p-3"}}, 1: {{0, "p-1"}, {1, "p-4"}, {2, "p-2"}}}, "p-2 belongs in partition 2"},
		"unknown":   {map[int32][]logRec{0: {{0, "p-0"}, {1, "p-3"}}, 1: {{0, "p-1"}, {1, "p-4"}}, 2: {{0, "p-9"}}}, "\"p-9\" was never produced"},
	}
	for name, tc := range cases {
		got := checkFailover(3, 6, acks, tc.log)
		found := false
		for _, p := range got {
			found = found || strings.Contains(p, tc.want)
		}
		if !found {
			t.Errorf("%s: want a problem containing %q, got %v", name, tc.want, got)
		}
	}
}

// Reduction of a spurious franz-go ErrDataLoss TestClusterFailoverFranz once saw:
// right after a leader change, OffsetForLeaderEpoch asked by a consumer (replica id -1) for
// the previous epoch must answer at least the end of what the old leader acknowledged with
// acks=all (Kafka answers the next epoch's start offset: the new leader's log end at its
// election, which holds every acknowledged record). Klamm caps a consumer's answer at the
// leader's high watermark, which on a new leader trails until its followers fetch from it;
// it no longer does.
// Each round: 5 records acknowledged, SIGTERM to the leader (controlled shutdown moves the
// leadership at once), and at once the question to the two other brokers, in a tight loop,
// until one answers without error. --replica-fetch-wait-max-ms 3000 keeps the followers'
// high watermark stale (measured: 7 of 8 rounds answered end-1).
func TestClusterOffsetForLeaderEpochAfterLeaderChange(t *testing.T) {
	if useKafka() {
		t.Skip("a Klamm cluster on ZooKeeper; kafka.sh runs a single broker")
	}
	if _, err := os.Stat(zkServerScript); err != nil {
		t.Skipf("ZooKeeper (Debian's zookeeper package) is not installed: %v", err)
	}
	dir := t.TempDir()
	zk := startZooKeeper(t, dir)
	c := startKlammCluster(t, dir, zk.port, "--replica-fetch-wait-max-ms", "3000")
	all := []int{1, 2, 3}
	waitFor(t, healBound, "three brokers and one controller", func() error { return c.check(all, nil, false) })
	topic := topicName(t, "t")
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.addrs()...), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.DefaultProduceTopic(topic), kgo.DialTimeout(time.Second))
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	t.Cleanup(cl.Close)
	two := "2"
	ctx := testCtx(t, 60*time.Second)
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &two}, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	topics := []string{topic}
	const rounds = 4
	var below []string
	for round := 0; round < rounds; round++ {
		waitFor(t, healBound, "every ISR = {1,2,3}", func() error { return c.check(all, topics, true) })
		var pv partView
		waitFor(t, 5*time.Second, "the leader", func() error {
			v, err := c.view(1, topics)
			if err == nil {
				pv = v.parts[topic][0]
			}
			return err
		})
		var end int64
		for i := 0; i < 5; i++ {
			r := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("r%d-%d", round, i))})
			if err := r.FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			end = r[0].Record.Offset + 1
		}
		leader := int(pv.leader)
		stopped := make(chan error, 1)
		go func() { stopped <- c.brokers[leader-1].Stop(syscall.SIGTERM) }()
		answer, got := "none within 10 s", int64(-1)
		for deadline := time.Now().Add(10 * time.Second); got < 0 && time.Now().Before(deadline); {
			for _, id := range all {
				if id == leader {
					continue
				}
				req := kmsg.NewPtrOffsetForLeaderEpochRequest()
				req.ReplicaID = -1 // a consumer
				rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
				rt.Topic = topic
				rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
				rp.Partition = 0
				rp.CurrentLeaderEpoch = -1
				rp.LeaderEpoch = pv.epoch
				rt.Partitions = append(rt.Partitions, rp)
				req.Topics = append(req.Topics, rt)
				qctx, cancel := context.WithTimeout(ctx, time.Second)
				r, err := c.probes[id-1].SeedBrokers()[0].Request(qctx, req)
				cancel()
				if err != nil {
					continue
				}
				p := r.(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
				if p.ErrorCode == 0 {
					got = p.EndOffset
					answer = fmt.Sprintf("broker %d: epoch %d end %d", id, p.LeaderEpoch, p.EndOffset)
					break
				}
			}
		}
		if err := <-stopped; err != nil {
			t.Fatalf("broker %d: %v", leader, err)
		}
		t.Logf("round %d: SIGTERM to leader %d (epoch %d) once offsets up to %d were acknowledged; first answer for epoch %d: %s",
			round, leader, pv.epoch, end-1, pv.epoch, answer)
		if got < end {
			below = append(below, fmt.Sprintf("round %d: %s, want >= %d", round, answer, end))
		}
		c.brokers[leader-1].Start()
	}
	if len(below) > 0 {
		t.Errorf("OffsetForLeaderEpoch answered a consumer below acknowledged records in %d of %d rounds: %v", len(below), rounds, below)
	}
}
