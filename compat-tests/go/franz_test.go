package compat

// franz-go (kgo): produce/consume with every codec, idempotence, consumer groups (classic
// and KIP-848), resuming from committed offsets after broker restarts.

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func kgoClient(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl := kgoClientNoClose(t, b, opts...)
	t.Cleanup(cl.Close)
	return cl
}

// kgoClientNoClose returns a client the caller closes (exactly once).
func kgoClientNoClose(t *testing.T, b *Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(b.Addr()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.RetryTimeout(20 * time.Second),
		kgo.MetadataMinAge(100 * time.Millisecond),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	return cl
}

func kadmClient(t *testing.T, b *Broker) *kadm.Client {
	return kadm.NewClient(kgoClient(t, b))
}

func createTopic(t *testing.T, b *Broker, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadmClient(t, b)
	resp, err := adm.CreateTopic(testCtx(t, 20*time.Second), partitions, 1, configs, topic)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v / %v", topic, err, resp.Err)
	}
	// Kafka answers CreateTopics before every listener's metadata has the topic.
	eventually(t, 20*time.Second, "topic "+topic+" in metadata", func() bool {
		d, err := adm.ListTopics(testCtx(t, 5*time.Second), topic)
		if err != nil || d[topic].Err != nil || len(d[topic].Partitions) != int(partitions) {
			return false
		}
		for _, p := range d[topic].Partitions {
			if p.Leader < 0 || p.Err != nil {
				return false
			}
		}
		return true
	})
}

func toKgo(r rec) *kgo.Record {
	kr := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.K, Value: h.V})
	}
	return kr
}

func fromKgo(kr *kgo.Record) rec {
	r := rec{Topic: kr.Topic, Partition: kr.Partition, Offset: kr.Offset, Key: kr.Key, Value: kr.Value}
	for _, h := range kr.Headers {
		r.Headers = append(r.Headers, hdr{h.Key, h.Value})
	}
	return r
}

// kgoProduce produces rs synchronously and returns them with the offsets the broker assigned.
func kgoProduce(t *testing.T, cl *kgo.Client, rs []rec) []rec {
	t.Helper()
	krs := make([]*kgo.Record, len(rs))
	for i, r := range rs {
		krs[i] = toKgo(r)
	}
	res := cl.ProduceSync(testCtx(t, 30*time.Second), krs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("ProduceSync: %v", err)
	}
	out := make([]rec, len(rs))
	for i, pr := range res {
		out[i] = rs[i]
		out[i].Partition, out[i].Offset = pr.Record.Partition, pr.Record.Offset
	}
	return out
}

// kgoPoll polls until n records arrived (or fails after timeout).
func kgoPoll(t *testing.T, cl *kgo.Client, n int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t, timeout)
	var got []*kgo.Record
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records before timeout", len(got), n)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Fatalf("fetch error %s/%d: %v", topic, p, err)
		})
		got = append(got, fs.Records()...)
	}
	return got
}

func kgoRecs(krs []*kgo.Record) []rec {
	out := make([]rec, len(krs))
	for i, kr := range krs {
		out[i] = fromKgo(kr)
	}
	sortRecs(out)
	return out
}

var kgoCodecs = []struct {
	name  string
	codec kgo.CompressionCodec
	attr  uint8
}{
	{"none", kgo.NoCompression(), 0},
	{"gzip", kgo.GzipCompression(), 1},
	{"snappy", kgo.SnappyCompression(), 2},
	{"lz4", kgo.Lz4Compression(), 3},
	{"zstd", kgo.ZstdCompression(), 4},
}

// Every codec; records with null/empty keys and values, headers; idempotent (the default)
// producer; exact offsets; the consumed batches carry the producer's codec and producer id.
func TestFranzProduceConsumeCodecs(t *testing.T) {
	b := startBroker(t)
	for _, c := range kgoCodecs {
		t.Run(c.name, func(t *testing.T) {
			topic := topicName(t, "t")
			createTopic(t, b, topic, 2, nil)
			prod := kgoClient(t, b, kgo.ProducerBatchCompression(c.codec), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerLinger(50*time.Millisecond))
			var want []rec
			for p := int32(0); p < 2; p++ {
				rs := withOffsets(sample(topic, 30, fmt.Sprintf("%s-p%d", c.name, p), true), p, 0)
				got := kgoProduce(t, prod, rs)
				assertRecs(t, "produce results", rs, got)
				want = append(want, rs...)
			}
			pid, epoch, err := prod.ProducerID(testCtx(t, 10*time.Second))
			if err != nil || pid < 0 || epoch < 0 {
				t.Fatalf("idempotent producer id: %d/%d %v", pid, epoch, err)
			}
			cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			krs := kgoPoll(t, cons, len(want), 20*time.Second)
			for _, kr := range krs {
				if kr.Attrs.CompressionType() != c.attr {
					t.Fatalf("record %d/%d: batch codec %d, want %d", kr.Partition, kr.Offset, kr.Attrs.CompressionType(), c.attr)
				}
				if kr.ProducerID != pid || kr.ProducerEpoch != epoch {
					t.Fatalf("record %d/%d: producer %d/%d, want %d/%d", kr.Partition, kr.Offset, kr.ProducerID, kr.ProducerEpoch, pid, epoch)
				}
			}
			assertRecs(t, "consumed", want, kgoRecs(krs))
		})
	}
}

// Consuming from given offsets (and the end) of given partitions returns exactly the tail.
func TestFranzConsumeFromOffsets(t *testing.T) {
	b := startBroker(t)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 3, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var all [3][]rec
	for p := int32(0); p < 3; p++ {
		all[p] = kgoProduce(t, prod, withOffsets(sample(topic, 12, fmt.Sprint("p", p), true), p, 0))
	}
	cons := kgoClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {
		0: kgo.NewOffset().At(5),
		2: kgo.NewOffset().AtEnd().Relative(-3),
	}}))
	want := append(append([]rec{}, all[0][5:]...), all[2][9:]...)
	assertRecs(t, "from offsets", want, kgoRecs(kgoPoll(t, cons, len(want), 20*time.Second)))
	// Records produced now reach the consumer waiting at the end.
	more := kgoProduce(t, prod, withOffsets(sample(topic, 4, "late", false), 2, 12))
	assertRecs(t, "late records", more, kgoRecs(kgoPoll(t, cons, 4, 20*time.Second)))
}

type groupMember struct {
	name string
	cl   *kgo.Client
	mu   sync.Mutex
	own  map[int32]bool
	once sync.Once
}

// close leaves the group and closes the client (once; also at test cleanup).
func (m *groupMember) close() { m.once.Do(m.cl.Close) }

func (m *groupMember) owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.own {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func newGroupMember(t *testing.T, b *Broker, name, group, topic string, kip848 bool, extra ...kgo.Opt) *groupMember {
	m := &groupMember{name: name, own: map[int32]bool{}}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			for _, p := range a[topic] {
				m.own[p] = true
			}
			m.mu.Unlock()
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			// Commit what was consumed before giving partitions away.
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Errorf("%s: commit on revoke: %v", name, err)
			}
			m.mu.Lock()
			for _, p := range r[topic] {
				delete(m.own, p)
			}
			m.mu.Unlock()
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			for _, p := range l[topic] {
				delete(m.own, p)
			}
			m.mu.Unlock()
		}),
	}
	if kip848 {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	m.cl = kgoClientNoClose(t, b, append(opts, extra...)...)
	t.Cleanup(m.close)
	return m
}

// pollGroup polls the members concurrently until n records arrived in total.
func pollGroup(t *testing.T, n int, timeout time.Duration, members ...*groupMember) map[string][]rec {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	got := map[string][]rec{}
	total := 0
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func(m *groupMember) {
			defer wg.Done()
			for ctx.Err() == nil {
				fs := m.cl.PollFetches(ctx)
				fs.EachError(func(topic string, p int32, err error) {
					if ctx.Err() == nil {
						t.Errorf("%s: fetch error %s/%d: %v", m.name, topic, p, err)
					}
				})
				rs := fs.Records()
				mu.Lock()
				for _, kr := range rs {
					got[m.name] = append(got[m.name], fromKgo(kr))
				}
				total += len(rs)
				if total >= n {
					cancel()
				}
				mu.Unlock()
			}
		}(m)
	}
	wg.Wait()
	if total < n {
		t.Fatalf("group consumed %d of %d records within %v", total, n, timeout)
	}
	return got
}

func TestFranzConsumerGroup(t *testing.T) {
	t.Run("classic", func(t *testing.T) { franzGroup(t, "") })
	t.Run("consumer", func(t *testing.T) { franzGroup(t, "uniform") })
	t.Run("consumer_range", func(t *testing.T) { franzGroup(t, "range", kgo.Balancers(kgo.RangeBalancer())) })
}

// Two members share four partitions (classic: cooperative-sticky; consumer: KIP-848
// server-side assignment), commit, one leaves and the other takes over from the commits:
// every record is consumed exactly once and the committed offsets are the log ends.
// serverAssignor "" runs a classic group, else a KIP-848 group expected to use that
// server-side assignor.
func franzGroup(t *testing.T, serverAssignor string, extra ...kgo.Opt) {
	kip848 := serverAssignor != ""
	b := startBroker(t, groupFlags...)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 4, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(tag string, base int64) []rec {
		var all []rec
		for p := int32(0); p < 4; p++ {
			all = append(all, kgoProduce(t, prod, withOffsets(sample(topic, 10, fmt.Sprintf("%s-%d", tag, p), true), p, base))...)
		}
		return all
	}
	adm := kadmClient(t, b)
	checkCommitted := func(want int64) {
		t.Helper()
		os, err := adm.FetchOffsets(testCtx(t, 10*time.Second), group)
		if err != nil {
			t.Fatalf("fetch offsets: %v", err)
		}
		for p := int32(0); p < 4; p++ {
			o, ok := os.Lookup(topic, p)
			if !ok || o.Err != nil || o.At != want {
				t.Fatalf("committed offset of %d: %+v (found %v), want %d", p, o, ok, want)
			}
		}
	}

	batch1 := produce("one", 0)
	a := newGroupMember(t, b, "a", group, topic, kip848, extra...)
	got := pollGroup(t, len(batch1), 30*time.Second, a)
	sortRecs(got["a"])
	assertRecs(t, "member a alone", batch1, got["a"])
	if err := a.cl.CommitUncommittedOffsets(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("commit: %v", err)
	}
	checkCommitted(10)

	bm := newGroupMember(t, b, "b", group, topic, kip848, extra...)
	// Both members poll (revocations run in polls) until the partitions are split 2/2.
	pollCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, m := range []*groupMember{a, bm} {
		wg.Add(1)
		go func(m *groupMember) {
			defer wg.Done()
			for pollCtx.Err() == nil {
				if n := len(m.cl.PollFetches(pollCtx).Records()); n > 0 {
					t.Errorf("%s consumed %d records while nothing new was produced", m.name, n)
				}
			}
		}(m)
	}
	eventually(t, 30*time.Second, "partitions split 2/2", func() bool {
		oa, ob := a.owned(), bm.owned()
		return len(oa) == 2 && len(ob) == 2
	})
	stop()
	wg.Wait()
	oa, ob := a.owned(), bm.owned()
	if kip848 {
		dcg, err := adm.DescribeConsumerGroups(testCtx(t, 10*time.Second), group)
		if d := dcg[group]; err != nil || d.Err != nil || d.AssignorName != serverAssignor || len(d.Members) != 2 || d.State != "Stable" {
			t.Fatalf("described consumer group: %v %+v, want assignor %s, 2 members, Stable", err, d, serverAssignor)
		}
	}
	seen := map[int32]bool{}
	for _, p := range append(append([]int32{}, oa...), ob...) {
		if seen[p] {
			t.Fatalf("partition %d owned twice: a=%v b=%v", p, oa, ob)
		}
		seen[p] = true
	}

	batch2 := produce("two", 10)
	got = pollGroup(t, len(batch2), 30*time.Second, a, bm)
	for name, ps := range map[string][]int32{"a": oa, "b": ob} {
		var want []rec
		for _, r := range batch2 {
			if r.Partition == ps[0] || r.Partition == ps[1] {
				want = append(want, r)
			}
		}
		sortRecs(got[name])
		assertRecs(t, "member "+name+" of two", want, got[name])
	}
	for _, m := range []*groupMember{a, bm} {
		if err := m.cl.CommitUncommittedOffsets(testCtx(t, 10*time.Second)); err != nil {
			t.Fatalf("%s commit: %v", m.name, err)
		}
	}
	checkCommitted(20)

	// b leaves; a gets all four partitions and resumes at b's commits.
	bm.close()
	batch3 := produce("three", 20)
	got = pollGroup(t, len(batch3), 30*time.Second, a)
	sortRecs(got["a"])
	assertRecs(t, "member a after b left", batch3, got["a"])
	if err := a.cl.CommitUncommittedOffsets(testCtx(t, 10*time.Second)); err != nil {
		t.Fatalf("commit: %v", err)
	}
	checkCommitted(30)
	if ps := a.owned(); len(ps) != 4 {
		t.Fatalf("a owns %v after b left, want all 4", ps)
	}
}

// Committed offsets survive a broker restart (SIGTERM) and a SIGKILL: a new consumer in
// the group reads exactly the records produced after the commit.
func TestFranzGroupResumeAfterRestart(t *testing.T) {
	b := startBroker(t, groupFlags...)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 1, nil)
	prod := kgoClient(t, b)
	base := int64(0)
	for round, restart := range []func(){b.Restart, b.Kill} {
		rs := kgoProduce(t, prod, withOffsets(sample(topic, 10, fmt.Sprint("r", round), true), 0, base))
		m := newGroupMember(t, b, "m", group, topic, false)
		got := pollGroup(t, len(rs), 30*time.Second, m)
		assertRecs(t, "before restart", rs, got["m"])
		if err := m.cl.CommitUncommittedOffsets(testCtx(t, 10*time.Second)); err != nil {
			t.Fatalf("commit: %v", err)
		}
		m.close()
		restart()
		base += 10
		// the producer reconnects to the restarted broker
		more := kgoProduce(t, prod, withOffsets(sample(topic, 5, fmt.Sprint("after", round), true), 0, base))
		base += 5
		m2 := newGroupMember(t, b, "m2", group, topic, false)
		got = pollGroup(t, len(more), 30*time.Second, m2)
		assertRecs(t, "after restart", more, got["m2"])
		if err := m2.cl.CommitUncommittedOffsets(testCtx(t, 10*time.Second)); err != nil {
			t.Fatalf("commit: %v", err)
		}
		m2.close()
	}
}
