package compat

// franz-go kadm: topics, partitions, configs, groups, offsets, delete records, list offsets.

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func strp(s string) *string { return &s }

func topicConfig(t *testing.T, adm *kadm.Client, topic, key string) kadm.Config {
	t.Helper()
	rcs, err := adm.DescribeTopicConfigs(testCtx(t, 10*time.Second), topic)
	if err != nil {
		t.Fatalf("describe configs: %v", err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe configs %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return c
		}
	}
	t.Fatalf("config %s not described for %s", key, topic)
	return kadm.Config{}
}

func TestFranzAdminTopicsConfigs(t *testing.T) {
	b := startBroker(t)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	t1, t2 := topicName(t, "a"), topicName(t, "b")
	res, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": strp("3600000"), "cleanup.policy": strp("compact")}, t1, t2)
	if err != nil {
		t.Fatalf("create topics: %v", err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil || r.NumPartitions != 3 || r.ReplicationFactor != 1 {
			t.Fatalf("create %s: %+v", r.Topic, r)
		}
	}
	// Creating it again: TOPIC_ALREADY_EXISTS.
	again, err := adm.CreateTopic(ctx, 1, 1, nil, t1)
	if !isKerr(again.Err, "TOPIC_ALREADY_EXISTS") { // kadm returns it as err too
		t.Fatalf("create existing topic: %v / %v, want TOPIC_ALREADY_EXISTS", err, again.Err)
	}

	details, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatalf("list topics: %v", err)
	}
	for _, tp := range []string{t1, t2} {
		d, ok := details[tp]
		if !ok || d.Err != nil || len(d.Partitions) != 3 {
			t.Fatalf("listed %s: %+v (found %v)", tp, d, ok)
		}
		for p, pd := range d.Partitions {
			if pd.Leader < 0 || len(pd.Replicas) != 1 || len(pd.ISR) != 1 || pd.Replicas[0] != pd.Leader {
				t.Fatalf("%s/%d: leader %d replicas %v isr %v", tp, p, pd.Leader, pd.Replicas, pd.ISR)
			}
		}
		if d.ID == (kadm.TopicID{}) {
			t.Fatalf("%s: no topic id", tp)
		}
	}

	// Configs set at creation are dynamic topic configs; others are defaults.
	if c := topicConfig(t, adm, t1, "retention.ms"); c.Value == nil || *c.Value != "3600000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms: %+v", c)
	}
	if c := topicConfig(t, adm, t1, "max.message.bytes"); c.Value == nil || *c.Value != "1048588" || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("max.message.bytes: %v %v", *c.Value, c.Source)
	}
	// Incremental alter: set one, delete one.
	ar, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("7200000")},
		{Op: kadm.DeleteConfig, Name: "cleanup.policy"},
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: strp("200000")},
	}, t1)
	if err != nil || ar[0].Err != nil {
		t.Fatalf("alter configs: %v %+v", err, ar)
	}
	// Kafka applies altered configs through its metadata log: DescribeConfigs shows them
	// shortly after the answer (Klamm at once).
	waitConfig := func(key, value string, source kmsg.ConfigSource) {
		t.Helper()
		var c kadm.Config
		eventually(t, 10*time.Second, fmt.Sprintf("%s=%s (%v)", key, value, source), func() bool {
			c = topicConfig(t, adm, t1, key)
			return c.Value != nil && *c.Value == value && c.Source == source
		})
	}
	waitConfig("retention.ms", "7200000", kmsg.ConfigSourceDynamicTopicConfig)
	waitConfig("cleanup.policy", "delete", kmsg.ConfigSourceDefaultConfig)
	waitConfig("max.message.bytes", "200000", kmsg.ConfigSourceDynamicTopicConfig)
	// An invalid value is INVALID_CONFIG.
	bad, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("soon")}}, t1)
	if err != nil || !isKerr(bad[0].Err, "INVALID_CONFIG") {
		t.Fatalf("bad config value: %v %+v, want INVALID_CONFIG", err, bad)
	}
	// The broker's configs are described.
	brokers, err := adm.ListBrokers(ctx)
	if err != nil || len(brokers) != 1 {
		t.Fatalf("list brokers: %v %+v", err, brokers)
	}
	bcs, err := adm.DescribeBrokerConfigs(ctx, brokers[0].NodeID)
	if err != nil || len(bcs) != 1 || bcs[0].Err != nil {
		t.Fatalf("describe broker configs: %v %+v", err, bcs)
	}
	found := false
	for _, c := range bcs[0].Configs {
		if c.Key == "message.max.bytes" && c.Value != nil && *c.Value == "1048588" {
			found = true
		}
	}
	if !found {
		t.Fatalf("broker config message.max.bytes=1048588 not described (%d configs)", len(bcs[0].Configs))
	}

	// Create partitions: 3 -> 5, then produce to partition 4.
	cp, err := adm.CreatePartitions(ctx, 2, t1)
	if err != nil || cp[t1].Err != nil {
		t.Fatalf("create partitions: %v %+v", err, cp)
	}
	details, err = adm.ListTopics(ctx, t1)
	if err != nil || len(details[t1].Partitions) != 5 {
		t.Fatalf("partitions after create: %v %d", err, len(details[t1].Partitions))
	}
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rs := kgoProduce(t, prod, withOffsets(sample(t1, 3, "p4", true), 4, 0))
	cons := kgoClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t1: {4: kgo.NewOffset().AtStart()}}))
	assertRecs(t, "new partition", rs, kgoRecs(kgoPoll(t, cons, 3, 20*time.Second)))

	// Delete topics.
	dr, err := adm.DeleteTopics(ctx, t1, t2)
	if err != nil || dr[t1].Err != nil || dr[t2].Err != nil {
		t.Fatalf("delete topics: %v %+v", err, dr)
	}
	eventually(t, 10*time.Second, "deleted topics gone from ListTopics", func() bool {
		d, err := adm.ListTopics(ctx)
		return err == nil && !d.Has(t1) && !d.Has(t2)
	})
}

func isKerr(err error, name string) bool {
	return err != nil && len(err.Error()) >= len(name) && err.Error()[:len(name)] == name
}

// Start/end/max-timestamp/by-timestamp offsets; delete records moves the start offset and
// consumers from the start get exactly the remaining records.
func TestFranzAdminListOffsetsDeleteRecords(t *testing.T) {
	b := startBroker(t)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 2, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var krs []*kgo.Record
	rs := withOffsets(sample(topic, 10, "ts", true), 1, 0)
	for i, r := range rs {
		kr := toKgo(r)
		kr.Timestamp = base.Add(time.Duration(i) * time.Second)
		if i == 6 { // the max timestamp is not the last record's
			kr.Timestamp = base.Add(time.Minute)
		}
		krs = append(krs, kr)
	}
	if err := prod.ProduceSync(ctx, krs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	check := func(what string, lo kadm.ListedOffsets, err error, want map[int32]int64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for p, w := range want {
			o, ok := lo.Lookup(topic, p)
			if !ok || o.Err != nil || o.Offset != w {
				t.Fatalf("%s partition %d: %+v, want offset %d", what, p, o, w)
			}
		}
	}
	lo, err := adm.ListStartOffsets(ctx, topic)
	check("start", lo, err, map[int32]int64{0: 0, 1: 0})
	lo, err = adm.ListEndOffsets(ctx, topic)
	check("end", lo, err, map[int32]int64{0: 0, 1: 10})
	lo, err = adm.ListMaxTimestampOffsets(ctx, topic)
	check("max timestamp", lo, err, map[int32]int64{1: 6})
	if o, _ := lo.Lookup(topic, 1); o.Timestamp != base.Add(time.Minute).UnixMilli() {
		t.Fatalf("max timestamp %d, want %d", o.Timestamp, base.Add(time.Minute).UnixMilli())
	}
	lo, err = adm.ListOffsetsAfterMilli(ctx, base.Add(3500*time.Millisecond).UnixMilli(), topic)
	check("after 3.5 s", lo, err, map[int32]int64{1: 4})
	lo, err = adm.ListOffsetsAfterMilli(ctx, base.Add(2*time.Minute).UnixMilli(), topic)
	check("after all timestamps", lo, err, map[int32]int64{1: 10})

	var del kadm.Offsets
	del.AddOffset(topic, 1, 4, -1)
	dr, err := adm.DeleteRecords(ctx, del)
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	if r, ok := dr.Lookup(topic, 1); !ok || r.Err != nil || r.LowWatermark != 4 {
		t.Fatalf("delete records: %+v", r)
	}
	lo, err = adm.ListStartOffsets(ctx, topic)
	check("start after delete", lo, err, map[int32]int64{0: 0, 1: 4})
	cons := kgoClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {1: kgo.NewOffset().AtStart()}}))
	assertRecs(t, "after delete records", rs[4:], kgoRecs(kgoPoll(t, cons, 6, 20*time.Second)))
	// Deleting beyond the high watermark is OFFSET_OUT_OF_RANGE.
	var beyond kadm.Offsets
	beyond.AddOffset(topic, 1, 11, -1)
	dr, err = adm.DeleteRecords(ctx, beyond)
	if r, _ := dr.Lookup(topic, 1); err != nil || !isKerr(r.Err, "OFFSET_OUT_OF_RANGE") {
		t.Fatalf("delete beyond end: %v %+v, want OFFSET_OUT_OF_RANGE", err, r)
	}
}

// Offsets committed/fetched/deleted by kadm for a group without members, and the group
// of a live kgo consumer listed and described with its assignment.
func TestFranzAdminGroupsOffsets(t *testing.T) {
	b := startBroker(t, groupFlags...)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 3, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 3; p++ {
		kgoProduce(t, prod, withOffsets(sample(topic, 5, fmt.Sprint(p), true), p, 0))
	}

	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2, LeaderEpoch: -1, Metadata: "meta-0"})
	os.Add(kadm.Offset{Topic: topic, Partition: 1, At: 5, LeaderEpoch: -1, Metadata: ""})
	os.Add(kadm.Offset{Topic: topic, Partition: 2, At: 0, LeaderEpoch: -1, Metadata: "ü"})
	if err := adm.CommitAllOffsets(ctx, group, os); err != nil {
		t.Fatalf("commit offsets: %v", err)
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	for _, want := range os.Sorted() {
		got, ok := fetched.Lookup(topic, want.Partition)
		if !ok || got.Err != nil || got.At != want.At || got.Metadata != want.Metadata {
			t.Fatalf("fetched %d: %+v, want %+v", want.Partition, got, want)
		}
	}
	lg, err := adm.ListGroups(ctx)
	if err != nil || lg[group].State != "Empty" {
		t.Fatalf("list groups: %v %+v", err, lg[group])
	}
	// Lag: end 5 everywhere.
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("lag: %v", err)
	}
	if l := lags[group].Lag.TotalByTopic()[topic].Lag; l != 3+0+5 {
		t.Fatalf("total lag %d, want 8", l)
	}

	var ts kadm.TopicsSet
	ts.Add(topic, 1)
	dels, err := adm.DeleteOffsets(ctx, group, ts)
	if err != nil {
		t.Fatalf("delete offsets: %v", err)
	}
	if e, ok := dels.Lookup(topic, 1); !ok || e != nil {
		t.Fatalf("delete offset 1: %v %v", e, ok)
	}
	fetched, err = adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup(topic, 1); ok && o.At != -1 {
		t.Fatalf("offset 1 still there after delete: %+v", o)
	}
	if o, ok := fetched.Lookup(topic, 0); !ok || o.At != 2 {
		t.Fatalf("offset 0 after deleting 1: %+v", o)
	}

	// A live member resumes at the commits (0@2, 1 from the start, 2@0) and is described.
	m := newGroupMember(t, b, "m", group, topic, false)
	got := pollGroup(t, 3+5+5, 30*time.Second, m)
	counts := map[int32]int{}
	for _, r := range got["m"] {
		counts[r.Partition]++
	}
	if counts[0] != 3 || counts[1] != 5 || counts[2] != 5 {
		t.Fatalf("records per partition %v, want 0:3 1:5 2:5", counts)
	}
	dg, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe groups: %v", err)
	}
	d := dg[group]
	if d.Err != nil || d.State != "Stable" || d.ProtocolType != "consumer" || len(d.Members) != 1 {
		t.Fatalf("described group: %+v", d)
	}
	ca, ok := d.Members[0].Assigned.AsConsumer()
	if !ok || len(ca.Topics) != 1 || ca.Topics[0].Topic != topic {
		t.Fatalf("member assignment: %+v", ca)
	}
	ps := append([]int32{}, ca.Topics[0].Partitions...)
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	if fmt.Sprint(ps) != "[0 1 2]" {
		t.Fatalf("assigned partitions %v", ps)
	}
	lg, err = adm.ListGroups(ctx)
	if err != nil || lg[group].State != "Stable" || lg[group].ProtocolType != "consumer" {
		t.Fatalf("list groups with member: %v %+v", err, lg[group])
	}
	// Deleting a group with a member is NON_EMPTY_GROUP; after it leaves, it works.
	dgr, err := adm.DeleteGroup(ctx, group)
	if err == nil && dgr.Err == nil || !isKerr(dgr.Err, "NON_EMPTY_GROUP") {
		t.Fatalf("delete non-empty group: %v %+v", err, dgr)
	}
	m.close()
	dgr, err = adm.DeleteGroup(ctx, group)
	if err != nil || dgr.Err != nil {
		t.Fatalf("delete group: %v %+v", err, dgr)
	}
	lg, err = adm.ListGroups(ctx)
	if _, ok := lg[group]; err != nil || ok {
		t.Fatalf("group listed after delete: %v %+v", err, lg[group])
	}
}
