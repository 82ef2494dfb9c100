package compat

// IBM/sarama: SyncProducer and AsyncProducer (every codec, headers, idempotent with
// Net.MaxOpenRequests=1), Consumer/PartitionConsumer by offset, ConsumerGroup with two
// members and commits, ClusterAdmin, transactions (commit, abort, AddMessageToTxn,
// AddOffsetsToTxn).

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func saramaConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V4_0_0_0
	c.ClientID = "klamm-go-compat"
	c.Net.DialTimeout = 5 * time.Second
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	c.Producer.Retry.Max = 5
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	c.Consumer.Return.Errors = true
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Group.Session.Timeout = 3 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 200 * time.Millisecond
	c.Consumer.Group.Rebalance.Timeout = 5 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 100 * time.Millisecond
	return c
}

func toSarama(r rec) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: r.Topic, Partition: r.Partition}
	if r.Key != nil {
		m.Key = sarama.ByteEncoder(r.Key)
	}
	if r.Value != nil {
		m.Value = sarama.ByteEncoder(r.Value)
	}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.K), Value: h.V})
	}
	return m
}

func fromSarama(m *sarama.ConsumerMessage) rec {
	r := rec{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, hdr{string(h.Key), h.Value})
	}
	return r
}

// saramaSyncProduce sends rs with a SyncProducer and returns them with their offsets.
func saramaSyncProduce(t *testing.T, p sarama.SyncProducer, rs []rec) []rec {
	t.Helper()
	msgs := make([]*sarama.ProducerMessage, len(rs))
	for i, r := range rs {
		msgs[i] = toSarama(r)
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("SendMessages: %v", err)
	}
	out := make([]rec, len(rs))
	for i, m := range msgs {
		out[i] = rs[i]
		out[i].Partition, out[i].Offset = m.Partition, m.Offset
	}
	return out
}

func saramaSyncProducer(t *testing.T, b *Broker, cfg *sarama.Config) sarama.SyncProducer {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// saramaRead reads n messages of one partition from offset with a PartitionConsumer.
func saramaRead(t *testing.T, b *Broker, cfg *sarama.Config, topic string, p int32, offset int64, n int) []rec {
	t.Helper()
	c, err := sarama.NewConsumer([]string{b.Addr()}, cfg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, p, offset)
	if err != nil {
		t.Fatalf("ConsumePartition %s/%d@%d: %v", topic, p, offset, err)
	}
	defer pc.Close()
	var out []rec
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case m := <-pc.Messages():
			out = append(out, fromSarama(m))
		case err := <-pc.Errors():
			t.Fatalf("partition consumer: %v", err)
		case <-timeout:
			t.Fatalf("read %d of %d messages from %s/%d", len(out), n, topic, p)
		}
	}
	return out
}

var saramaCodecs = []struct {
	name  string
	codec sarama.CompressionCodec
}{
	{"none", sarama.CompressionNone},
	{"gzip", sarama.CompressionGZIP},
	{"snappy", sarama.CompressionSnappy},
	{"lz4", sarama.CompressionLZ4},
	{"zstd", sarama.CompressionZSTD},
}

func TestSaramaSyncProducerCodecs(t *testing.T) {
	b := startBroker(t)
	for _, c := range saramaCodecs {
		t.Run(c.name, func(t *testing.T) {
			topic := topicName(t, "t")
			createTopic(t, b, topic, 2, nil)
			cfg := saramaConfig()
			cfg.Producer.Compression = c.codec
			p := saramaSyncProducer(t, b, cfg)
			for part := int32(0); part < 2; part++ {
				rs := withOffsets(sample(topic, 30, fmt.Sprintf("%s-%d", c.name, part), true), part, 0)
				assertRecs(t, "produce results", rs, saramaSyncProduce(t, p, rs))
				assertRecs(t, "consumed", rs, saramaRead(t, b, cfg, topic, part, sarama.OffsetOldest, len(rs)))
				// by offset, from the middle
				assertRecs(t, "consumed from offset 17", rs[17:], saramaRead(t, b, cfg, topic, part, 17, len(rs)-17))
			}
		})
	}
}

func TestSaramaAsyncProducer(t *testing.T) {
	b := startBroker(t)
	for _, c := range saramaCodecs {
		t.Run(c.name, func(t *testing.T) {
			topic := topicName(t, "t")
			createTopic(t, b, topic, 1, nil)
			cfg := saramaConfig()
			cfg.Producer.Compression = c.codec
			cfg.Producer.Flush.Frequency = 20 * time.Millisecond
			cfg.Producer.Flush.Messages = 10
			p, err := sarama.NewAsyncProducer([]string{b.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			rs := withOffsets(sample(topic, 40, "async-"+c.name, true), 0, 0)
			go func() {
				for i, r := range rs {
					m := toSarama(r)
					m.Metadata = i
					p.Input() <- m
				}
			}()
			got := make([]rec, len(rs))
			timeout := time.After(20 * time.Second)
			for i := 0; i < len(rs); i++ {
				select {
				case m := <-p.Successes():
					idx := m.Metadata.(int)
					got[idx] = rs[idx]
					got[idx].Offset = m.Offset
				case e := <-p.Errors():
					t.Fatalf("async produce: %v", e.Err)
				case <-timeout:
					t.Fatalf("%d of %d acknowledged", i, len(rs))
				}
			}
			// Idempotent and one request in flight: the order is kept.
			assertRecs(t, "acknowledged", rs, got)
			assertRecs(t, "consumed", rs, saramaRead(t, b, cfg, topic, 0, sarama.OffsetOldest, len(rs)))
		})
	}
}

type saramaMember struct {
	name   string
	mu     sync.Mutex
	claims []int32
	got    chan rec
}

func (m *saramaMember) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims = nil
	for _, ps := range s.Claims() {
		m.claims = append(m.claims, ps...)
	}
	sort.Slice(m.claims, func(i, j int) bool { return m.claims[i] < m.claims[j] })
	return nil
}

func (m *saramaMember) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims = nil
	return nil
}

func (m *saramaMember) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		s.MarkMessage(msg, "by-"+m.name)
		// Synchronous commit at the end of each delivered batch (the commit request waits
		// behind the connection's fetch long poll, so not once per message): what was
		// delivered is committed before the test looks, and before a rebalance.
		if len(c.Messages()) == 0 {
			s.Commit()
		}
		m.got <- fromSarama(msg)
	}
	return nil
}

func (m *saramaMember) owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32{}, m.claims...)
}

// startSaramaMember runs a ConsumerGroup member until the returned stop is called.
func startSaramaMember(t *testing.T, b *Broker, name, group, topic string, got chan rec) (*saramaMember, func()) {
	return startSaramaMemberCfg(t, b, saramaConfig(), name, group, topic, got)
}

func startSaramaMemberCfg(t *testing.T, b *Broker, base *sarama.Config, name, group, topic string, got chan rec) (*saramaMember, func()) {
	c := *base
	cfg := &c
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategyRange()}
	cg, err := sarama.NewConsumerGroup([]string{b.Addr()}, group, cfg)
	if err != nil {
		t.Fatalf("NewConsumerGroup: %v", err)
	}
	m := &saramaMember{name: name, got: got}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
				t.Errorf("%s: Consume: %v", name, err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	go func() {
		for err := range cg.Errors() {
			if ctx.Err() == nil {
				t.Logf("%s: group error: %v", name, err)
			}
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		<-done
		_ = cg.Close()
	}
	t.Cleanup(stop)
	return m, stop
}

func collect(t *testing.T, ch chan rec, n int, what string) []rec {
	t.Helper()
	var out []rec
	timeout := time.After(30 * time.Second)
	for len(out) < n {
		select {
		case r := <-ch:
			out = append(out, r)
		case <-timeout:
			t.Fatalf("%s: %d of %d records", what, len(out), n)
		}
	}
	return out
}

// Two ConsumerGroup members split four partitions (range), commit each message, one
// leaves and the other resumes at its commits: every record exactly once.
func TestSaramaConsumerGroup(t *testing.T) {
	b := startBroker(t, groupFlags...)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 4, nil)
	p := saramaSyncProducer(t, b, saramaConfig())
	produce := func(tag string, base int64) []rec {
		var all []rec
		for part := int32(0); part < 4; part++ {
			all = append(all, saramaSyncProduce(t, p, withOffsets(sample(topic, 10, fmt.Sprintf("%s%d", tag, part), true), part, base))...)
		}
		return all
	}
	admin := saramaAdmin(t, b)
	checkCommitted := func(want int64) {
		t.Helper()
		resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1, 2, 3}})
		if err != nil {
			t.Fatal(err)
		}
		for part := int32(0); part < 4; part++ {
			blk := resp.GetBlock(topic, part)
			if blk == nil || blk.Err != sarama.ErrNoError || blk.Offset != want {
				t.Fatalf("committed %d: %+v, want %d", part, blk, want)
			}
		}
	}

	chA, chB := make(chan rec, 100), make(chan rec, 100)
	batch1 := produce("one", 0)
	a, _ := startSaramaMember(t, b, "a", group, topic, chA)
	got := collect(t, chA, len(batch1), "member a alone")
	sortRecs(got)
	assertRecs(t, "member a alone", batch1, got)
	checkCommitted(10)

	bm, stopB := startSaramaMember(t, b, "b", group, topic, chB)
	eventually(t, 30*time.Second, "partitions split 2/2", func() bool {
		return len(a.owned()) == 2 && len(bm.owned()) == 2
	})
	oa, ob := a.owned(), bm.owned()
	batch2 := produce("two", 10)
	for name, c := range map[string]struct {
		ch chan rec
		ps []int32
	}{"a": {chA, oa}, "b": {chB, ob}} {
		var want []rec
		for _, r := range batch2 {
			if r.Partition == c.ps[0] || r.Partition == c.ps[1] {
				want = append(want, r)
			}
		}
		got := collect(t, c.ch, len(want), "member "+name)
		sortRecs(got)
		assertRecs(t, "member "+name+" of two (owns "+fmt.Sprint(c.ps)+")", want, got)
	}
	checkCommitted(20)

	stopB()
	batch3 := produce("three", 20)
	got = collect(t, chA, len(batch3), "member a after b left")
	sortRecs(got)
	assertRecs(t, "member a after b left", batch3, got)
	checkCommitted(30)
	if blk, _ := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}}); blk.GetBlock(topic, 0).Metadata != "by-a" &&
		blk.GetBlock(topic, 0).Metadata != "by-b" {
		t.Fatalf("commit metadata %q", blk.GetBlock(topic, 0).Metadata)
	}
	select {
	case r := <-chB:
		t.Fatalf("b delivered %v after it stopped", r)
	default:
	}
}

func saramaAdmin(t *testing.T, b *Broker) sarama.ClusterAdmin {
	t.Helper()
	a, err := sarama.NewClusterAdmin([]string{b.Addr()}, saramaConfig())
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func TestSaramaClusterAdmin(t *testing.T) {
	b := startBroker(t, groupFlags...)
	admin := saramaAdmin(t, b)
	topic := topicName(t, "t")
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": strp("86400000")}}, false); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err == nil ||
		!isKerrIs(err, sarama.ErrTopicAlreadyExists) {
		t.Fatalf("CreateTopic again: %v, want TopicAlreadyExists", err)
	}
	topics, err := admin.ListTopics()
	if err != nil || topics[topic].NumPartitions != 2 || topics[topic].ReplicationFactor != 1 ||
		topics[topic].ConfigEntries["retention.ms"] == nil || *topics[topic].ConfigEntries["retention.ms"] != "86400000" {
		t.Fatalf("ListTopics: %v %+v", err, topics[topic])
	}
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(md) != 1 || md[0].Err != sarama.ErrNoError || len(md[0].Partitions) != 2 {
		t.Fatalf("DescribeTopics: %v %+v", err, md)
	}
	brokers, controller, err := admin.DescribeCluster()
	if err != nil || len(brokers) != 1 || controller != brokers[0].ID() {
		t.Fatalf("DescribeCluster: %v %v %d", err, brokers, controller)
	}
	if err := admin.CreatePartitions(topic, 4, nil, false); err != nil {
		t.Fatalf("CreatePartitions: %v", err)
	}
	md, err = admin.DescribeTopics([]string{topic})
	if err != nil || len(md[0].Partitions) != 4 {
		t.Fatalf("partitions after CreatePartitions: %v %d", err, len(md[0].Partitions))
	}

	describe := func(name string) sarama.ConfigEntry {
		t.Helper()
		es, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{name}})
		if err != nil || len(es) != 1 {
			t.Fatalf("DescribeConfig %s: %v %+v", name, err, es)
		}
		return es[0]
	}
	if e := describe("retention.ms"); e.Value != "86400000" || e.Source != sarama.SourceTopic {
		t.Fatalf("retention.ms: %+v", e)
	}
	if err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: strp("compact")},
		"retention.ms":   {Operation: sarama.IncrementalAlterConfigsOperationDelete},
	}, false); err != nil {
		t.Fatalf("IncrementalAlterConfig: %v", err)
	}
	// Kafka applies altered configs through its metadata log, shortly after answering.
	waitConfig := func(name, value string, source sarama.ConfigSource) {
		t.Helper()
		var e sarama.ConfigEntry
		eventually(t, 10*time.Second, fmt.Sprintf("%s=%s (%v)", name, value, source), func() bool {
			e = describe(name)
			return e.Value == value && e.Source == source
		})
	}
	waitConfig("cleanup.policy", "compact", sarama.SourceTopic)
	waitConfig("retention.ms", "604800000", sarama.SourceDefault)
	// AlterConfig replaces the whole set: cleanup.policy goes back to its default.
	if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"segment.ms": strp("3600000")}, false); err != nil {
		t.Fatalf("AlterConfig: %v", err)
	}
	waitConfig("segment.ms", "3600000", sarama.SourceTopic)
	waitConfig("cleanup.policy", "delete", sarama.SourceDefault)
	if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": strp("-7")}, false); err == nil {
		t.Fatalf("AlterConfig retention.ms=-7 accepted, want INVALID_CONFIG")
	}

	// Records, delete records, list offsets.
	p := saramaSyncProducer(t, b, saramaConfig())
	rs := saramaSyncProduce(t, p, withOffsets(sample(topic, 8, "adm", true), 1, 0))
	if err := admin.DeleteRecords(topic, map[int32]int64{1: 5}); err != nil {
		t.Fatalf("DeleteRecords: %v", err)
	}
	offs, err := admin.ListOffsets(map[string]map[int32]int64{topic: {1: sarama.OffsetOldest, 0: sarama.OffsetNewest}}, nil)
	if err != nil || offs[topic][1].Offset != 5 || offs[topic][0].Offset != 0 {
		t.Fatalf("ListOffsets after DeleteRecords: %v %+v %+v", err, offs[topic][1], offs[topic][0])
	}
	assertRecs(t, "after DeleteRecords", rs[5:], saramaRead(t, b, saramaConfig(), topic, 1, sarama.OffsetOldest, 3))

	// Groups: commit via AlterConsumerGroupOffsets, list, describe, delete offset, delete.
	group := topicName(t, "g")
	if _, err := admin.AlterConsumerGroupOffsets(group, map[string]map[int32]sarama.OffsetAndMetadata{topic: {
		0: {Offset: 0, Metadata: "m0"}, 1: {Offset: 7, Metadata: "m1"}}}, nil); err != nil {
		t.Fatalf("AlterConsumerGroupOffsets: %v", err)
	}
	ofr, err := admin.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		t.Fatal(err)
	}
	if blk := ofr.GetBlock(topic, 1); blk == nil || blk.Offset != 7 || blk.Metadata != "m1" {
		t.Fatalf("ListConsumerGroupOffsets 1: %+v", blk)
	}
	groups, err := admin.ListConsumerGroups()
	if pt, ok := groups[group]; err != nil || !ok || pt != "" { // a group made by offset commits has no protocol type
		t.Fatalf("ListConsumerGroups: %v %v", err, groups)
	}
	gd, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(gd) != 1 || gd[0].State != "Empty" || len(gd[0].Members) != 0 {
		t.Fatalf("DescribeConsumerGroups: %v %+v", err, gd)
	}
	if err := admin.DeleteConsumerGroupOffset(group, topic, 1); err != nil {
		t.Fatalf("DeleteConsumerGroupOffset: %v", err)
	}
	ofr, err = admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0, 1}})
	if err != nil || ofr.GetBlock(topic, 1).Offset != -1 || ofr.GetBlock(topic, 0).Offset != 0 {
		t.Fatalf("offsets after DeleteConsumerGroupOffset: %v %+v %+v", err, ofr.GetBlock(topic, 1), ofr.GetBlock(topic, 0))
	}

	// A live member is described with its assignment.
	ch := make(chan rec, 100)
	m, stop := startSaramaMember(t, b, "m", group, topic, ch)
	eventually(t, 20*time.Second, "member assigned 4 partitions", func() bool { return len(m.owned()) == 4 })
	gd, err = admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(gd) != 1 || gd[0].State != "Stable" || gd[0].Protocol != "range" || len(gd[0].Members) != 1 {
		t.Fatalf("DescribeConsumerGroups with a member: %v %+v", err, gd[0])
	}
	for _, md := range gd[0].Members {
		as, err := md.GetMemberAssignment()
		if err != nil || len(as.Topics[topic]) != 4 {
			t.Fatalf("member assignment: %v %+v", err, as)
		}
	}
	if err := admin.DeleteConsumerGroup(group); !isKerrIs(err, sarama.ErrNonEmptyGroup) {
		t.Fatalf("DeleteConsumerGroup with a member: %v, want NonEmptyGroup", err)
	}
	stop()
	if err := admin.DeleteConsumerGroup(group); err != nil {
		t.Fatalf("DeleteConsumerGroup: %v", err)
	}
	if err := admin.DeleteTopic(topic); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	eventually(t, 10*time.Second, "topic gone", func() bool {
		ts, err := admin.ListTopics()
		_, ok := ts[topic]
		return err == nil && !ok
	})
}

func isKerrIs(err error, k sarama.KError) bool {
	if err == nil {
		return false
	}
	if e, ok := err.(sarama.KError); ok {
		return e == k
	}
	if e, ok := err.(*sarama.TopicError); ok {
		return e.Err == k
	}
	return fmt.Sprint(err) != "" && containsStr(err.Error(), k.Error())
}

func containsStr(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func saramaTxnConfig(id string) *sarama.Config {
	cfg := saramaConfig()
	cfg.Producer.Transaction.ID = id
	cfg.Producer.Transaction.Timeout = 20 * time.Second
	return cfg
}

// Commit and abort; read_committed and read_uncommitted PartitionConsumers.
func TestSaramaTransactions(t *testing.T) {
	b := startBroker(t, groupFlags...)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, nil)
	p := saramaSyncProducer(t, b, saramaTxnConfig(topicName(t, "txn")))
	if !p.IsTransactional() {
		t.Fatal("producer not transactional")
	}
	run := func(tag string, base int64, commit bool) []rec {
		if err := p.BeginTxn(); err != nil {
			t.Fatalf("BeginTxn: %v", err)
		}
		rs := saramaSyncProduce(t, p, withOffsets(sample(topic, 3, tag, true), 0, base))
		var err error
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatalf("end %s: %v", tag, err)
		}
		return rs
	}
	aborted := run("aborted", 0, false)
	committed := run("committed", 4, true)
	more := run("more", 8, true)
	rc := saramaConfig()
	rc.Consumer.IsolationLevel = sarama.ReadCommitted
	assertRecs(t, "read_committed", append(append([]rec{}, committed...), more...),
		saramaRead(t, b, rc, topic, 0, sarama.OffsetOldest, 6))
	all := append(append(append([]rec{}, aborted...), committed...), more...)
	assertRecs(t, "read_uncommitted", all, saramaRead(t, b, saramaConfig(), topic, 0, sarama.OffsetOldest, 9))
	hw, err := saramaAdmin(t, b).ListOffsets(map[string]map[int32]int64{topic: {0: sarama.OffsetNewest}}, nil)
	if err != nil || hw[topic][0].Offset != 12 {
		t.Fatalf("log end offset: %v %+v, want 12 (9 records, 3 markers)", err, hw[topic][0])
	}
}

// Consume-transform-produce with AddMessageToTxn and AddOffsetsToTxn: the output and the
// group's offsets are committed together; an aborted transaction leaves neither.
func TestSaramaTransactionsOffsets(t *testing.T) {
	b := startBroker(t, groupFlags...)
	in, out, group := topicName(t, "in"), topicName(t, "out"), topicName(t, "g")
	createTopic(t, b, in, 1, nil)
	createTopic(t, b, out, 1, nil)
	saramaSyncProduce(t, saramaSyncProducer(t, b, saramaConfig()), withOffsets(sample(in, 6, "in", true), 0, 0))
	msgs := func() []*sarama.ConsumerMessage {
		c, err := sarama.NewConsumer([]string{b.Addr()}, saramaConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pc, err := c.ConsumePartition(in, 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		var ms []*sarama.ConsumerMessage
		for len(ms) < 6 {
			select {
			case m := <-pc.Messages():
				ms = append(ms, m)
			case <-time.After(20 * time.Second):
				t.Fatal("input not consumed")
			}
		}
		return ms
	}()
	transform := func(r rec) rec {
		o := rec{Topic: out, Key: r.Key, Value: append([]byte("T:"), r.Value...), Headers: r.Headers}
		if r.Value == nil {
			o.Value = nil
		}
		return o
	}
	p := saramaSyncProducer(t, b, saramaTxnConfig(topicName(t, "txn")))
	admin := saramaAdmin(t, b)
	committedAt := func() (int64, string) {
		r, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{in: {0}})
		if err != nil {
			t.Fatal(err)
		}
		blk := r.GetBlock(in, 0)
		return blk.Offset, blk.Metadata
	}
	var want []rec
	step := func(ms []*sarama.ConsumerMessage, commit bool, viaOffsets bool) {
		if err := p.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			saramaSyncProduce(t, p, []rec{transform(fromSarama(m))})
			if !viaOffsets {
				if err := p.AddMessageToTxn(m, group, strp("msg")); err != nil {
					t.Fatalf("AddMessageToTxn: %v", err)
				}
			}
		}
		if viaOffsets {
			last := ms[len(ms)-1]
			if err := p.AddOffsetsToTxn(map[string][]*sarama.PartitionOffsetMetadata{in: {{Partition: 0, Offset: last.Offset + 1, Metadata: strp("offs")}}}, group); err != nil {
				t.Fatalf("AddOffsetsToTxn: %v", err)
			}
		}
		var err error
		if commit {
			err = p.CommitTxn()
			for _, m := range ms {
				want = append(want, transform(fromSarama(m)))
			}
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			t.Fatalf("end: %v", err)
		}
	}
	// Transactional offsets become visible once the commit markers are written (Kafka
	// writes them after answering EndTxn).
	waitCommitted := func(want int64, wantMD string) {
		t.Helper()
		var o int64
		var md string
		eventually(t, 10*time.Second, fmt.Sprintf("committed offset %d %q", want, wantMD), func() bool {
			o, md = committedAt()
			return o == want && md == wantMD
		})
	}
	step(msgs[0:2], true, false)
	waitCommitted(2, "msg")
	step(msgs[2:4], false, false) // aborted: offsets stay
	if o, _ := committedAt(); o != 2 {
		t.Fatalf("after abort: committed %d, want 2", o)
	}
	step(msgs[2:6], true, true)
	waitCommitted(6, "offs")
	// Output: 2 committed, 2 aborted (+marker), 4 committed; read_committed sees 6.
	rc := saramaConfig()
	rc.Consumer.IsolationLevel = sarama.ReadCommitted
	got := saramaRead(t, b, rc, out, 0, sarama.OffsetOldest, 6)
	// txn 1: 0,1 + commit marker 2; txn 2 (aborted): 3,4 + abort marker 5; txn 3: 6..9 + marker 10.
	for i, off := range []int64{0, 1, 6, 7, 8, 9} {
		want[i].Partition, want[i].Offset = 0, off
	}
	assertRecs(t, "transformed output (read_committed)", want, got)
}

// The idempotent SyncProducer keeps producing across broker restarts (SIGTERM, SIGKILL):
// offsets continue without gaps or duplicates and everything reads back exactly.
func TestSaramaIdempotentAcrossRestarts(t *testing.T) {
	b := startBroker(t)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, nil)
	cfg := saramaConfig()
	cfg.Producer.Retry.Max = 20
	cfg.Producer.Retry.Backoff = 200 * time.Millisecond
	cfg.Metadata.Retry.Max = 20
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	p := saramaSyncProducer(t, b, cfg)
	var want []rec
	base := int64(0)
	for i, restart := range []func(){b.Restart, b.Kill, func() {}} {
		rs := withOffsets(sample(topic, 6, fmt.Sprint("round", i), true), 0, base)
		assertRecs(t, fmt.Sprintf("round %d produced", i), rs, saramaSyncProduce(t, p, rs))
		want = append(want, rs...)
		base += int64(len(rs))
		restart()
	}
	assertRecs(t, "after restarts", want, saramaRead(t, b, saramaConfig(), topic, 0, sarama.OffsetOldest, len(want)))
}
