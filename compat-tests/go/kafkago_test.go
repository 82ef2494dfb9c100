package compat

// segmentio/kafka-go: Writer (every codec) and Reader (by partition, by GroupID with
// commits), and the kafka.Client API: CreateTopics, Metadata, ListOffsets,
// OffsetCommit/OffsetFetch, Fetch.

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

func toKafkaGo(r rec) kafka.Message {
	m := kafka.Message{Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.K, Value: h.V})
	}
	return m
}

func fromKafkaGo(m kafka.Message) rec {
	r := rec{Topic: m.Topic, Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, hdr{h.Key, h.Value})
	}
	return r
}

// kafkaGoWriter writes every message to partition *target.
func kafkaGoWriter(t *testing.T, b *Broker, topic string, codec kafka.Compression, target *int) *kafka.Writer {
	w := &kafka.Writer{
		Addr:         kafka.TCP(b.Addr()),
		Topic:        topic,
		Balancer:     kafka.BalancerFunc(func(_ kafka.Message, ps ...int) int { return *target }),
		BatchTimeout: 10 * time.Millisecond,
		BatchSize:    1000,
		RequiredAcks: kafka.RequireAll,
		Compression:  codec,
		// A transport of its own: the default one is shared and caches metadata (without
		// topics created since) for 6 s.
		Transport: &kafka.Transport{MetadataTTL: time.Second},
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func kafkaGoWrite(t *testing.T, w *kafka.Writer, rs []rec) {
	t.Helper()
	ms := make([]kafka.Message, len(rs))
	for i, r := range rs {
		ms[i] = toKafkaGo(r)
	}
	if err := w.WriteMessages(testCtx(t, 30*time.Second), ms...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
}

// kafkaGoReadPartition reads n messages of a partition from offset with a Reader.
func kafkaGoReadPartition(t *testing.T, b *Broker, topic string, p int, offset int64, n int) []rec {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{b.Addr()}, Topic: topic, Partition: p,
		MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond,
	})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 20*time.Second)
	var out []rec
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("ReadMessage after %d of %d: %v", len(out), n, err)
		}
		out = append(out, fromKafkaGo(m))
	}
	return out
}

var kafkaGoCodecs = []struct {
	name  string
	codec kafka.Compression
	attr  uint8
}{
	{"none", 0, 0},
	{"gzip", kafka.Gzip, 1},
	{"snappy", kafka.Snappy, 2},
	{"lz4", kafka.Lz4, 3},
	{"zstd", kafka.Zstd, 4},
}

func TestKafkaGoWriterReader(t *testing.T) {
	b := startBroker(t)
	for _, c := range kafkaGoCodecs {
		t.Run(c.name, func(t *testing.T) {
			topic := topicName(t, "t")
			createTopic(t, b, topic, 2, nil)
			target := 1
			w := kafkaGoWriter(t, b, topic, c.codec, &target)
			rs := withOffsets(sample(topic, 30, "kgo-"+c.name, false), 1, 0)
			kafkaGoWrite(t, w, rs)
			assertRecs(t, "read by partition", nilEmpty(rs), kafkaGoReadPartition(t, b, topic, 1, kafka.FirstOffset, len(rs)))
			assertRecs(t, "read from offset 11", nilEmpty(rs[11:]), kafkaGoReadPartition(t, b, topic, 1, 11, len(rs)-11))
			// The stored batches carry the writer's codec (read with franz-go).
			cl := kgoClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {1: kgo.NewOffset().AtStart()}}))
			for _, kr := range kgoPoll(t, cl, len(rs), 20*time.Second) {
				if kr.Attrs.CompressionType() != c.attr {
					t.Fatalf("record %d: codec %d, want %d", kr.Offset, kr.Attrs.CompressionType(), c.attr)
				}
			}
		})
	}
}

// A GroupID Reader commits (synchronously) what it processed; a second reader of the
// group resumes exactly there; the commits are what OffsetFetch returns.
func TestKafkaGoReaderGroup(t *testing.T) {
	b := startBroker(t, groupFlags...)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 2, nil)
	target := 0
	w := kafkaGoWriter(t, b, topic, kafka.Snappy, &target)
	var all []rec
	for p := 0; p < 2; p++ {
		target = p
		rs := withOffsets(sample(topic, 10, fmt.Sprint("g", p), false), int32(p), 0)
		kafkaGoWrite(t, w, rs)
		all = append(all, rs...)
	}
	newReader := func() *kafka.Reader {
		return kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{b.Addr()}, GroupID: group, Topic: topic,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond,
			HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 3 * time.Second,
			RebalanceTimeout: 3 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
			CommitInterval: 0, StartOffset: kafka.FirstOffset,
			ReadBackoffMin: 50 * time.Millisecond, ReadBackoffMax: 200 * time.Millisecond,
		})
	}
	read := func(r *kafka.Reader, n int) []rec {
		ctx := testCtx(t, 30*time.Second)
		var out []rec
		for len(out) < n {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				t.Fatalf("FetchMessage after %d of %d: %v", len(out), n, err)
			}
			if err := r.CommitMessages(ctx, m); err != nil {
				t.Fatalf("CommitMessages: %v", err)
			}
			out = append(out, fromKafkaGo(m))
		}
		sortRecs(out)
		return out
	}
	r1 := newReader()
	assertRecs(t, "first reader", nilEmpty(all), read(r1, len(all)))
	if err := r1.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	checkCommitted := func(want int64) {
		t.Helper()
		resp, err := client.OffsetFetch(testCtx(t, 10*time.Second), &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1}}})
		if err != nil || resp.Error != nil {
			t.Fatalf("OffsetFetch: %v %v", err, resp.Error)
		}
		for _, p := range resp.Topics[topic] {
			if p.Error != nil || p.CommittedOffset != want {
				t.Fatalf("committed %d: %+v, want %d", p.Partition, p, want)
			}
		}
	}
	checkCommitted(10)
	var more []rec
	for p := 0; p < 2; p++ {
		target = p
		rs := withOffsets(sample(topic, 5, fmt.Sprint("h", p), false), int32(p), 10)
		kafkaGoWrite(t, w, rs)
		more = append(more, rs...)
	}
	r2 := newReader()
	defer r2.Close()
	assertRecs(t, "second reader resumes at the commits", nilEmpty(more), read(r2, len(more)))
	checkCommitted(15)
}

func TestKafkaGoClientAPI(t *testing.T) {
	b := startBroker(t)
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	ctx := testCtx(t, 60*time.Second)
	topic := topicName(t, "t")
	cr, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 3, ReplicationFactor: 1,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"}},
	}}})
	if err != nil || cr.Errors[topic] != nil {
		t.Fatalf("CreateTopics: %v %v", err, cr.Errors)
	}
	cr, err = client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}}})
	if err != nil || !errors.Is(cr.Errors[topic], kafka.TopicAlreadyExists) {
		t.Fatalf("CreateTopics again: %v %v, want TopicAlreadyExists", err, cr.Errors)
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Brokers) != 1 || len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 3 {
		t.Fatalf("Metadata: %v %+v", err, md)
	}
	if md.Controller.ID != md.Brokers[0].ID || fmt.Sprintf("%s:%d", md.Brokers[0].Host, md.Brokers[0].Port) != b.Addr() {
		t.Fatalf("Metadata brokers: controller %+v brokers %+v, want %s", md.Controller, md.Brokers, b.Addr())
	}
	for _, p := range md.Topics[0].Partitions {
		if p.Leader.ID != md.Brokers[0].ID || len(p.Replicas) != 1 || len(p.Isr) != 1 {
			t.Fatalf("partition %+v", p)
		}
	}

	target := 2
	w := kafkaGoWriter(t, b, topic, kafka.Lz4, &target)
	rs := withOffsets(sample(topic, 7, "api", false), 2, 0)
	kafkaGoWrite(t, w, rs)
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.FirstOffsetOf(2), kafka.LastOffsetOf(2), kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)},
	}})
	if err != nil {
		t.Fatalf("ListOffsets: %v", err)
	}
	for _, po := range lo.Topics[topic] {
		want := map[int][2]int64{2: {0, 7}, 0: {0, 0}}[po.Partition]
		if po.Error != nil || po.FirstOffset != want[0] || po.LastOffset != want[1] {
			t.Fatalf("ListOffsets partition %d: %+v, want first %d last %d", po.Partition, po, want[0], want[1])
		}
	}

	group := topicName(t, "g")
	// kafka-go does not retry coordinator errors (Kafka's coordinator may still be loading).
	var oc *kafka.OffsetCommitResponse
	for attempt := 0; ; attempt++ {
		oc, err = client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{topic: {{Partition: 2, Offset: 5, Metadata: "five"}, {Partition: 0, Offset: 0, Metadata: ""}}}})
		retriable := err == nil && len(oc.Topics[topic]) > 0 && (errors.Is(oc.Topics[topic][0].Error, kafka.NotCoordinatorForGroup) ||
			errors.Is(oc.Topics[topic][0].Error, kafka.GroupCoordinatorNotAvailable) || errors.Is(oc.Topics[topic][0].Error, kafka.GroupLoadInProgress))
		if !retriable || attempt >= 50 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("OffsetCommit: %v", err)
	}
	for _, p := range oc.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("OffsetCommit %d: %v", p.Partition, p.Error)
		}
	}
	of, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1, 2}}})
	if err != nil || of.Error != nil {
		t.Fatalf("OffsetFetch: %v %v", err, of.Error)
	}
	got := map[int]string{}
	for _, p := range of.Topics[topic] {
		got[p.Partition] = fmt.Sprintf("%d/%q/%v", p.CommittedOffset, p.Metadata, p.Error)
	}
	want := map[int]string{0: `0/""/<nil>`, 1: `-1/""/<nil>`, 2: `5/"five"/<nil>`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("OffsetFetch: %v, want %v", got, want)
	}
}

func readKafkaGoRecords(t *testing.T, topic string, p int, rr kafka.RecordReader) []rec {
	t.Helper()
	var out []rec
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("ReadRecord: %v", err)
		}
		x := rec{Topic: topic, Partition: int32(p), Offset: r.Offset}
		if r.Key != nil {
			x.Key, _ = io.ReadAll(r.Key)
		}
		if r.Value != nil {
			x.Value, _ = io.ReadAll(r.Value)
		}
		for _, h := range r.Headers {
			x.Headers = append(x.Headers, hdr{h.Key, h.Value})
		}
		out = append(out, x)
	}
}

// kafka-go's Client.Fetch sends Fetch v11 with session id -1 / epoch -1 (a sessionless
// full fetch, as Kafka serves it).
func TestKafkaGoClientFetch(t *testing.T) {
	b := startBroker(t)
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	topic := topicName(t, "t")
	createTopic(t, b, topic, 2, nil)
	target := 1
	w := kafkaGoWriter(t, b, topic, kafka.Gzip, &target)
	rs := withOffsets(sample(topic, 12, "fetch", false), 1, 0)
	kafkaGoWrite(t, w, rs)
	ctx := testCtx(t, 30*time.Second)
	var got []rec
	offset := int64(3)
	for len(got) < len(rs)-3 {
		resp, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 1, Offset: offset,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 500 * time.Millisecond})
		if err != nil {
			t.Fatalf("Fetch at %d: %v", offset, err)
		}
		if resp.Error != nil || resp.HighWatermark != 12 {
			t.Fatalf("Fetch at %d: error %v high watermark %d", offset, resp.Error, resp.HighWatermark)
		}
		for _, r := range readKafkaGoRecords(t, topic, 1, resp.Records) {
			if r.Offset >= offset { // batches may start before the fetch offset
				got = append(got, r)
				offset = r.Offset + 1
			}
		}
	}
	assertRecs(t, "Client.Fetch from offset 3", rs[3:], got)
	// An empty partition: no records, high watermark 0.
	resp, err := client.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: 0, Offset: 0, MinBytes: 0, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
	if err != nil || resp.Error != nil || resp.HighWatermark != 0 {
		t.Fatalf("Fetch of the empty partition: %v %+v", err, resp)
	}
	if n := len(readKafkaGoRecords(t, topic, 0, resp.Records)); n != 0 {
		t.Fatalf("empty partition returned %d records", n)
	}
}

// kafka.Client admin calls: CreatePartitions, DescribeConfigs, IncrementalAlterConfigs,
// ListGroups, DescribeGroups (a live GroupID reader), DeleteGroups, DeleteTopics.
func TestKafkaGoClientAdmin(t *testing.T) {
	b := startBroker(t, groupFlags...)
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	ctx := testCtx(t, 60*time.Second)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, nil)
	cp, err := client.CreatePartitions(ctx, &kafka.CreatePartitionsRequest{Topics: []kafka.TopicPartitionsConfig{{Name: topic, Count: 3}}})
	if err != nil || cp.Errors[topic] != nil {
		t.Fatalf("CreatePartitions: %v %v", err, cp.Errors)
	}
	eventually(t, 10*time.Second, "3 partitions in metadata", func() bool {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		return err == nil && len(md.Topics) == 1 && len(md.Topics[0].Partitions) == 3
	})
	ia, err := client.IncrementalAlterConfigs(ctx, &kafka.IncrementalAlterConfigsRequest{Resources: []kafka.IncrementalAlterConfigsRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafka.IncrementalAlterConfigsRequestConfig{{Name: "retention.bytes", Value: "1048576", ConfigOperation: kafka.ConfigOperationSet}},
	}}})
	if err != nil || len(ia.Resources) != 1 || ia.Resources[0].Error != nil {
		t.Fatalf("IncrementalAlterConfigs: %v %+v", err, ia)
	}
	eventually(t, 10*time.Second, "retention.bytes=1048576 described", func() bool {
		dc, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"retention.bytes", "cleanup.policy"}}}})
		if err != nil || len(dc.Resources) != 1 || dc.Resources[0].Error != nil || len(dc.Resources[0].ConfigEntries) != 2 {
			return false
		}
		got := map[string]string{}
		for _, e := range dc.Resources[0].ConfigEntries {
			got[e.ConfigName] = fmt.Sprintf("%s/%d", e.ConfigValue, e.ConfigSource)
		}
		// sources: 1 DYNAMIC_TOPIC_CONFIG, 5 DEFAULT_CONFIG
		return got["retention.bytes"] == "1048576/1" && got["cleanup.policy"] == "delete/5"
	})

	// A live GroupID reader: listed and described with its assignment.
	group := topicName(t, "g")
	target := 2
	w := kafkaGoWriter(t, b, topic, 0, &target)
	rs := withOffsets(sample(topic, 3, "adm", false), 2, 0)
	kafkaGoWrite(t, w, rs)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{b.Addr()}, GroupID: group, Topic: topic, MaxWait: 200 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 3 * time.Second, RebalanceTimeout: 3 * time.Second,
		StartOffset: kafka.FirstOffset, CommitInterval: 0,
	})
	var got []rec
	for len(got) < 3 {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fromKafkaGo(m))
	}
	assertRecs(t, "group reader", nilEmpty(rs), got)
	lg, err := client.ListGroups(ctx, &kafka.ListGroupsRequest{})
	if err != nil || lg.Error != nil {
		t.Fatalf("ListGroups: %v %+v", err, lg)
	}
	listed := false
	for _, g := range lg.Groups {
		listed = listed || (g.GroupID == group && g.ProtocolType == "consumer")
	}
	if !listed {
		t.Fatalf("group %s not listed: %+v", group, lg.Groups)
	}
	dg, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(dg.Groups) != 1 || dg.Groups[0].Error != nil || dg.Groups[0].GroupState != "Stable" || len(dg.Groups[0].Members) != 1 {
		t.Fatalf("DescribeGroups: %v %+v", err, dg)
	}
	as := dg.Groups[0].Members[0].MemberAssignments
	if len(as.Topics) != 1 || as.Topics[0].Topic != topic || fmt.Sprint(as.Topics[0].Partitions) != "[0 1 2]" {
		t.Fatalf("member assignment: %+v", as)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "group deleted", func() bool {
		del, err := client.DeleteGroups(ctx, &kafka.DeleteGroupsRequest{GroupIDs: []string{group}})
		return err == nil && del.Errors[group] == nil
	})
	dt, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	if err != nil || dt.Errors[topic] != nil {
		t.Fatalf("DeleteTopics: %v %v", err, dt.Errors)
	}
}

// Two GroupID Readers split two partitions (checked with DescribeGroups before producing);
// each reads exactly its partition's records and commits them.
func TestKafkaGoReaderGroupTwoMembers(t *testing.T) {
	b := startBroker(t, groupFlags...)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 2, nil)
	client := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second}
	ctx := testCtx(t, 60*time.Second)
	newReader := func() *kafka.Reader {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers: []string{b.Addr()}, GroupID: group, Topic: topic,
			MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond,
			HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 3 * time.Second,
			RebalanceTimeout: 3 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
			CommitInterval: 0, StartOffset: kafka.FirstOffset,
		})
		t.Cleanup(func() { _ = r.Close() })
		return r
	}
	readers := []*kafka.Reader{newReader(), newReader()}
	// kafka-go joins when the first fetch starts: start fetching in the background.
	type got struct {
		i int
		r rec
	}
	ch := make(chan got, 100)
	for i, r := range readers {
		go func(i int, r *kafka.Reader) {
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					return
				}
				if err := r.CommitMessages(ctx, m); err != nil {
					t.Errorf("reader %d commit: %v", i, err)
				}
				ch <- got{i, fromKafkaGo(m)}
			}
		}(i, r)
	}
	owners := map[string]int32{}
	eventually(t, 30*time.Second, "two members with one partition each", func() bool {
		dg, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil || len(dg.Groups) != 1 || dg.Groups[0].GroupState != "Stable" || len(dg.Groups[0].Members) != 2 {
			return false
		}
		for _, m := range dg.Groups[0].Members {
			ts := m.MemberAssignments.Topics
			if len(ts) != 1 || len(ts[0].Partitions) != 1 {
				return false
			}
			owners[m.MemberID] = int32(ts[0].Partitions[0])
		}
		return true
	})
	target := 0
	w := kafkaGoWriter(t, b, topic, kafka.Zstd, &target)
	var all []rec
	for p := 0; p < 2; p++ {
		target = p
		rs := withOffsets(sample(topic, 8, fmt.Sprint("two", p), false), int32(p), 0)
		kafkaGoWrite(t, w, rs)
		all = append(all, rs...)
	}
	byReader := map[int][]rec{}
	timeout := time.After(30 * time.Second)
	for n := 0; n < len(all); n++ {
		select {
		case g := <-ch:
			byReader[g.i] = append(byReader[g.i], g.r)
		case <-timeout:
			t.Fatalf("%d of %d records read", n, len(all))
		}
	}
	for i := 0; i < 2; i++ {
		rs := byReader[i]
		if len(rs) == 0 {
			t.Fatalf("reader %d read nothing: %v", i, byReader)
		}
		p := rs[0].Partition
		var want []rec
		for _, r := range all {
			if r.Partition == p {
				want = append(want, r)
			}
		}
		assertRecs(t, fmt.Sprintf("reader %d (partition %d)", i, p), nilEmpty(want), rs)
	}
	resp, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: {0, 1}}})
	if err != nil || resp.Error != nil {
		t.Fatal(err, resp.Error)
	}
	for _, p := range resp.Topics[topic] {
		if p.CommittedOffset != 8 {
			t.Fatalf("committed %d: %+v, want 8", p.Partition, p)
		}
	}
}

// The low-level kafka.Conn API: CreateTopics, ReadPartitions, DialLeader, WriteMessages,
// ReadOffsets, Seek + ReadBatch, DeleteTopics.
func TestKafkaGoConn(t *testing.T) {
	b := startBroker(t)
	ctx := testCtx(t, 60*time.Second)
	conn, err := kafka.DialContext(ctx, "tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	topic := topicName(t, "t")
	if err := conn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: 2, ReplicationFactor: 1}); err != nil {
		t.Fatalf("Conn.CreateTopics: %v", err)
	}
	var parts []kafka.Partition
	eventually(t, 20*time.Second, "topic in ReadPartitions", func() bool {
		parts, err = conn.ReadPartitions(topic)
		return err == nil && len(parts) == 2
	})
	ctrl, err := conn.Controller()
	if err != nil || fmt.Sprintf("%s:%d", ctrl.Host, ctrl.Port) != b.Addr() {
		t.Fatalf("Controller: %v %+v", err, ctrl)
	}

	rs := withOffsets(sample(topic, 15, "conn", false), 1, 0)
	chunk := func(i int) []kafka.Message {
		var ms []kafka.Message
		for _, r := range rs[i : i+5] {
			ms = append(ms, toKafkaGo(r))
		}
		return ms
	}
	// Kafka may not have made this broker the partition's leader yet, and a kafka.Conn
	// is unusable after an error: redial and retry the first write on
	// NOT_LEADER_OR_FOLLOWER / LEADER_NOT_AVAILABLE only (bounded).
	var leader *kafka.Conn
	for attempt := 0; ; attempt++ {
		leader, err = kafka.DialLeader(ctx, "tcp", b.Addr(), topic, 1)
		if err != nil {
			t.Fatalf("DialLeader: %v", err)
		}
		_ = leader.SetDeadline(time.Now().Add(30 * time.Second))
		_, err = leader.WriteMessages(chunk(0)...)
		if err == nil {
			break
		}
		leader.Close()
		if attempt >= 50 || !(errors.Is(err, kafka.NotLeaderForPartition) || errors.Is(err, kafka.LeaderNotAvailable)) {
			t.Fatalf("Conn.WriteMessages: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	defer leader.Close()
	for i := 5; i < len(rs); i += 5 { // two more produce requests
		if _, err := leader.WriteMessages(chunk(i)...); err != nil {
			t.Fatalf("Conn.WriteMessages: %v", err)
		}
	}
	first, last, err := leader.ReadOffsets()
	if err != nil || first != 0 || last != 15 {
		t.Fatalf("ReadOffsets: %d %d %v, want 0 15", first, last, err)
	}
	if _, err := leader.Seek(4, kafka.SeekAbsolute); err != nil {
		t.Fatal(err)
	}
	var got []rec
	for len(got) < 11 {
		batch := leader.ReadBatch(1, 10<<20)
		for {
			m, err := batch.ReadMessage()
			if err != nil {
				break
			}
			got = append(got, fromKafkaGo(m))
		}
		if hw := batch.HighWaterMark(); hw != 15 {
			t.Fatalf("batch high watermark %d, want 15", hw)
		}
		if err := batch.Close(); err != nil {
			t.Fatalf("batch: %v", err)
		}
	}
	for i := range got {
		got[i].Topic = topic
	}
	assertRecs(t, "Conn.ReadBatch from offset 4", nilEmpty(rs[4:]), got)
	if err := conn.DeleteTopics(topic); err != nil {
		t.Fatalf("Conn.DeleteTopics: %v", err)
	}
}
