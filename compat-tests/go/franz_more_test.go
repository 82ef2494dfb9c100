package compat

// franz-go: fetch size limits, auto-created topics, topic config effects
// (LogAppendTime, max.message.bytes), delete and re-create, transaction timeout and
// fencing, and the kadm transaction/producer/log-dir/leader-epoch admin calls.

import (
	"fmt"
	"math/rand"
	"regexp"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Tiny fetch limits: every fetch still returns at least one whole batch (the 100 KB record
// too), and everything arrives byte-exact.
func TestFranzFetchLimits(t *testing.T) {
	b := startBroker(t)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	rs := withOffsets(sample(topic, 20, "lim", true), 0, 0)
	var want []rec
	for i := range rs { // one batch per record
		want = append(want, kgoProduce(t, prod, rs[i:i+1])...)
	}
	assertRecs(t, "produced", rs, want)
	cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(2000), kgo.FetchMaxPartitionBytes(1000), kgo.BrokerMaxReadBytes(1<<20))
	assertRecs(t, "consumed with 1000-byte fetches", rs, kgoRecs(kgoPoll(t, cons, len(rs), 30*time.Second)))
}

// A topic produced to without creating it is auto-created with num.partitions.
func TestFranzAutoCreateTopic(t *testing.T) {
	b := startBroker(t, "--num-partitions", "3")
	topic := topicName(t, "auto")
	prod := kgoClient(t, b, kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rs := kgoProduce(t, prod, withOffsets(sample(topic, 5, "auto", true), 2, 0))
	d, err := kadmClient(t, b).ListTopics(testCtx(t, 10*time.Second), topic)
	if err != nil || d[topic].Err != nil || len(d[topic].Partitions) != 3 {
		t.Fatalf("auto-created topic: %v %+v", err, d[topic])
	}
	cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	assertRecs(t, "auto-created topic", rs, kgoRecs(kgoPoll(t, cons, 5, 20*time.Second)))
}

// message.timestamp.type=LogAppendTime stamps the broker's time (payload untouched);
// max.message.bytes refuses a larger batch with MESSAGE_TOO_LARGE.
func TestFranzTopicConfigEffects(t *testing.T) {
	b := startBroker(t)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, map[string]*string{
		"message.timestamp.type": strp("LogAppendTime"), "max.message.bytes": strp("20000"),
	})
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.RecordRetries(2))
	rs := withOffsets(sample(topic, 5, "lat", true), 0, 0) // no 100 KB record among the first 5
	old := time.Now().Add(-time.Hour)
	var krs []*kgo.Record
	for _, r := range rs {
		kr := toKgo(r)
		kr.Timestamp = old
		krs = append(krs, kr)
	}
	before := time.Now().Add(-time.Second)
	if err := prod.ProduceSync(testCtx(t, 20*time.Second), krs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	after := time.Now().Add(time.Second)
	cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := kgoPoll(t, cons, len(rs), 20*time.Second)
	for _, kr := range got {
		if kr.Attrs.TimestampType() != 1 || kr.Timestamp.Before(before) || kr.Timestamp.After(after) {
			t.Fatalf("record %d: timestamp type %d at %v, want LogAppendTime (1) between %v and %v",
				kr.Offset, kr.Attrs.TimestampType(), kr.Timestamp, before, after)
		}
	}
	assertRecs(t, "LogAppendTime records", rs, kgoRecs(got))

	big := make([]byte, 30000)
	rand.New(rand.NewSource(1)).Read(big) // incompressible
	err := prod.ProduceSync(testCtx(t, 20*time.Second), &kgo.Record{Topic: topic, Partition: 0, Value: big}).FirstErr()
	if !isKerr(err, "MESSAGE_TOO_LARGE") {
		t.Fatalf("30000-byte record on a topic with max.message.bytes=20000: %v, want MESSAGE_TOO_LARGE", err)
	}
	if hw := listOffset(t, prod, topic, 0, 0); hw != 5 {
		t.Fatalf("high watermark %d after the refused batch, want 5", hw)
	}
}

// A deleted topic re-created under the same name is new: another topic id, empty log.
func TestFranzDeleteRecreateTopic(t *testing.T) {
	b := startBroker(t)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	kgoProduce(t, prod, withOffsets(sample(topic, 5, "old", true), 0, 0))
	d, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	oldID := d[topic].ID
	if r, err := adm.DeleteTopic(ctx, topic); err != nil || r.Err != nil {
		t.Fatalf("delete: %v %+v", err, r)
	}
	// Kafka deletes asynchronously: creating again may be TOPIC_ALREADY_EXISTS for a while.
	eventually(t, 30*time.Second, "topic re-created", func() bool {
		r, _ := adm.CreateTopic(ctx, 2, 1, nil, topic)
		return r.Err == nil
	})
	eventually(t, 20*time.Second, "re-created topic in metadata", func() bool {
		d, err = adm.ListTopics(ctx, topic)
		return err == nil && d[topic].Err == nil && len(d[topic].Partitions) == 2
	})
	if d[topic].ID == oldID {
		t.Fatalf("re-created topic kept the topic id %v", oldID)
	}
	lo, err := adm.ListEndOffsets(ctx, topic)
	if o, _ := lo.Lookup(topic, 0); err != nil || o.Offset != 0 {
		t.Fatalf("end offset of the re-created topic: %v %+v", err, o)
	}
	prod2 := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rs := kgoProduce(t, prod2, withOffsets(sample(topic, 2, "new", true), 0, 0))
	cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	assertRecs(t, "re-created topic", rs, kgoRecs(kgoPoll(t, cons, 2, 20*time.Second)))
}

// The broker aborts a transaction open past its timeout; a second producer with the same
// transactional id fences the first and aborts its open transaction.
func TestFranzTransactionTimeoutAndFencing(t *testing.T) {
	b := startBroker(t, groupFlags...)
	ctx := testCtx(t, 60*time.Second)
	topic, topic2 := topicName(t, "timeout"), topicName(t, "fence")
	createTopic(t, b, topic, 1, nil)
	createTopic(t, b, topic2, 1, nil)

	slow := kgoClient(t, b, kgo.TransactionalID(topicName(t, "slow")), kgo.TransactionTimeout(time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := slow.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	kgoProduce(t, slow, withOffsets(sample(topic, 2, "slow", true), 0, 0)) // 0, 1
	eventually(t, 20*time.Second, "the timed-out transaction aborted (last stable offset = high watermark)", func() bool {
		return listOffset(t, slow, topic, 0, 1) == listOffset(t, slow, topic, 0, 0)
	})
	if err := slow.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatalf("committing a transaction the broker aborted succeeded")
	}
	plain := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	after := kgoProduce(t, plain, withOffsets(sample(topic, 1, "after", true), 0, 3)) // marker at 2
	rc := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	assertRecs(t, "read_committed after the timeout abort", after, kgoRecs(kgoPoll(t, rc, 1, 20*time.Second)))

	id := topicName(t, "fenced")
	first := kgoClient(t, b, kgo.TransactionalID(id), kgo.TransactionTimeout(20*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	kgoProduce(t, first, withOffsets(sample(topic2, 1, "first", true), 0, 0))
	second := kgoClient(t, b, kgo.TransactionalID(id), kgo.TransactionTimeout(20*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := second.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	won := kgoProduce(t, second, []rec{sample(topic2, 1, "second", true)[0]})
	if err := second.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("second producer's commit: %v", err)
	}
	if err := first.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatalf("the fenced producer's commit succeeded")
	}
	rc2 := kgoClient(t, b, kgo.ConsumeTopics(topic2), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	assertRecs(t, "read_committed after fencing", won, kgoRecs(kgoPoll(t, rc2, 1, 20*time.Second)))
}

// ListTransactions / DescribeTransactions / DescribeProducers for an open and then a
// committed transaction.
func TestFranzAdminTransactionsProducers(t *testing.T) {
	b := startBroker(t, groupFlags...)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 2, nil)
	id := topicName(t, "txn")
	txn := kgoClient(t, b, kgo.TransactionalID(id), kgo.TransactionTimeout(20*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	kgoProduce(t, txn, withOffsets(sample(topic, 3, "open", true), 1, 0))
	pid, epoch, err := txn.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	lt, err := adm.ListTransactions(ctx, nil, nil)
	if err != nil || lt[id].State != "Ongoing" || lt[id].ProducerID != pid {
		t.Fatalf("ListTransactions: %v %+v (producer id %d)", err, lt[id], pid)
	}
	dt, err := adm.DescribeTransactions(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	d := dt[id]
	if d.Err != nil || d.State != "Ongoing" || d.ProducerID != pid || d.ProducerEpoch != epoch || d.TimeoutMillis != 20000 ||
		!d.Topics.Lookup(topic, 1) || d.Topics.Lookup(topic, 0) || d.StartTimestamp <= 0 {
		t.Fatalf("DescribeTransactions: %+v (producer %d/%d)", d, pid, epoch)
	}
	var ts kadm.TopicsSet
	ts.Add(topic, 0, 1)
	dp, err := adm.DescribeProducers(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	p1 := dp[topic].Partitions[1]
	pr, ok := p1.ActiveProducers[pid]
	if p1.Err != nil || !ok || pr.ProducerEpoch != epoch || pr.LastSequence != 2 || pr.CurrentTxnStartOffset != 0 {
		t.Fatalf("DescribeProducers partition 1: %+v", p1)
	}
	if p0 := dp[topic].Partitions[0]; p0.Err != nil || len(p0.ActiveProducers) != 0 {
		t.Fatalf("DescribeProducers partition 0: %+v", p0)
	}

	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "transaction CompleteCommit", func() bool {
		dt, err := adm.DescribeTransactions(ctx, id)
		return err == nil && dt[id].State == "CompleteCommit"
	})
	lt, err = adm.ListTransactions(ctx, nil, []string{"Ongoing"})
	if _, open := lt[id]; err != nil || open {
		t.Fatalf("ListTransactions Ongoing after the commit: %v %+v", err, lt)
	}
	eventually(t, 10*time.Second, "no open transaction in DescribeProducers", func() bool {
		dp, err := adm.DescribeProducers(ctx, ts)
		pr, ok := dp[topic].Partitions[1].ActiveProducers[pid]
		return err == nil && ok && pr.CurrentTxnStartOffset == -1
	})
}

// OffsetForLeaderEpoch, DescribeAllLogDirs, ElectLeaders, ListPartitionReassignments.
func TestFranzAdminMisc(t *testing.T) {
	b := startBroker(t)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 2, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	kgoProduce(t, prod, withOffsets(sample(topic, 7, "misc", true), 0, 0))

	var req kadm.OffsetForLeaderEpochRequest
	req.Add(topic, 0, 0)
	req.Add(topic, 1, 0)
	le, err := adm.OffsetForLeaderEpoch(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r := le[topic][0]; r.Err != nil || r.LeaderEpoch != 0 || r.EndOffset != 7 {
		t.Fatalf("OffsetForLeaderEpoch 0: %+v, want epoch 0 end 7", r)
	}
	if r := le[topic][1]; r.Err != nil || r.LeaderEpoch != 0 || r.EndOffset != 0 {
		t.Fatalf("OffsetForLeaderEpoch 1: %+v, want epoch 0 end 0", r)
	}

	var ts kadm.TopicsSet
	ts.Add(topic, 0, 1)
	ld, err := adm.DescribeAllLogDirs(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	var sizes [2]int64
	found := 0
	ld.Each(func(d kadm.DescribedLogDir) {
		if d.Err != nil {
			t.Errorf("log dir %s: %v", d.Dir, d.Err)
		}
		for p := int32(0); p < 2; p++ {
			if dp, ok := d.Topics.Lookup(topic, p); ok {
				sizes[p] = dp.Size
				found++
			}
		}
	})
	if found != 2 || sizes[0] <= 0 || sizes[1] != 0 {
		t.Fatalf("DescribeAllLogDirs: %d partitions found, sizes %v (want >0 and 0)", found, sizes)
	}

	el, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, ts)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if r := el[topic][p]; !isKerr(r.Err, "ELECTION_NOT_NEEDED") {
			t.Fatalf("ElectLeaders %d: %+v, want ELECTION_NOT_NEEDED", p, r)
		}
	}
	lr, err := adm.ListPartitionReassignments(ctx, ts)
	if err != nil || len(lr) != 0 {
		t.Fatalf("ListPartitionReassignments: %v %+v, want none", err, lr)
	}
}

// KIP-848 consumer with a regex subscription (resolved by the broker, re-evaluated as
// topics appear), ConsumerGroupDescribe, ListGroups by type, and DescribeGroups of a
// consumer-protocol group (GROUP_ID_NOT_FOUND, as Kafka answers).
func TestFranzKIP848RegexDescribe(t *testing.T) {
	b := startBroker(t, groupFlags...)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	prefix, group := topicName(t, "re"), topicName(t, "g")
	ta, tb := prefix+"-a", prefix+"-b"
	createTopic(t, b, ta, 2, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var wantA []rec
	for p := int32(0); p < 2; p++ {
		wantA = append(wantA, kgoProduce(t, prod, withOffsets(sample(ta, 5, fmt.Sprint("a", p), true), p, 0))...)
	}
	regex := "^" + regexp.QuoteMeta(prefix) + "-.*"
	cons := kgoClient(t, b, kgo.ConsumerGroup(group), kgo.ConsumeRegex(), kgo.ConsumeTopics(regex), kgo.ServerSideBalancer(),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	assertRecs(t, "topic a through the regex", wantA, kgoRecs(kgoPoll(t, cons, len(wantA), 30*time.Second)))

	createTopic(t, b, tb, 1, nil)
	wantB := kgoProduce(t, prod, withOffsets(sample(tb, 4, "b", true), 0, 0))
	assertRecs(t, "topic b created later", wantB, kgoRecs(kgoPoll(t, cons, len(wantB), 30*time.Second)))
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}

	dcg, err := adm.DescribeConsumerGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeConsumerGroups: %v", err)
	}
	d := dcg[group]
	if d.Err != nil || d.State != "Stable" || len(d.Members) != 1 || d.AssignorName != "uniform" || d.Epoch < 1 {
		t.Fatalf("described consumer group: %+v", d)
	}
	m := d.Members[0]
	// kgo sends the regex wrapped: ".*(?:(?:REGEX)).*"
	if m.SubscribedTopicRegex == nil || *m.SubscribedTopicRegex != ".*(?:(?:"+regex+")).*" || m.MemberEpoch < 1 ||
		!m.Assignment.Lookup(ta, 0) || !m.Assignment.Lookup(ta, 1) || !m.Assignment.Lookup(tb, 0) {
		t.Fatalf("described member: %+v regex %q (want %q)", m, deref(m.SubscribedTopicRegex), regex)
	}
	t.Run("subscribed_topic_names", func(t *testing.T) {
		if len(m.SubscribedTopics) != 0 {
			t.Fatalf("SubscribedTopicNames of a regex-only member: %v, want [] (Kafka)", m.SubscribedTopics)
		}
	})
	lg, err := adm.ListGroupsByType(ctx, []string{"consumer"})
	if err != nil || lg[group].GroupType != "consumer" || lg[group].State != "Stable" {
		t.Fatalf("ListGroupsByType consumer: %v %+v", err, lg[group])
	}
	lc, err := adm.ListGroupsByType(ctx, []string{"classic"})
	if _, ok := lc[group]; err != nil || ok {
		t.Fatalf("consumer group listed as classic: %v %+v", err, lc[group])
	}
	dg, err := adm.DescribeGroups(ctx, group)
	if g := dg[group]; !isKerr(g.Err, "GROUP_ID_NOT_FOUND") {
		t.Fatalf("DescribeGroups of a consumer-protocol group: %v %+v, want GROUP_ID_NOT_FOUND", err, g)
	}
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []struct {
		topic string
		p     int32
		at    int64
	}{{ta, 0, 5}, {ta, 1, 5}, {tb, 0, 4}} {
		if o, ok := offs.Lookup(tp.topic, tp.p); !ok || o.At != tp.at {
			t.Fatalf("committed %s/%d: %+v, want %d", tp.topic, tp.p, o, tp.at)
		}
	}
	cons.Close()
	eventually(t, 10*time.Second, "group empty after the member left", func() bool {
		dcg, err := adm.DescribeConsumerGroups(ctx, group)
		return err == nil && dcg[group].State == "Empty" && len(dcg[group].Members) == 0
	})
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// A static member (KIP-345) closes without leaving; its next incarnation with the same
// instance id gets its partitions back without a rebalance (same generation) and resumes
// at the commits; kadm's LeaveGroup by instance id removes it.
func TestFranzStaticMember(t *testing.T) {
	b := startBroker(t, groupFlags...)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 2, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	produce := func(tag string, base int64) []rec {
		var all []rec
		for p := int32(0); p < 2; p++ {
			all = append(all, kgoProduce(t, prod, withOffsets(sample(topic, 5, fmt.Sprint(tag, p), true), p, base))...)
		}
		return all
	}
	member := func() *kgo.Client {
		return kgoClientNoClose(t, b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.InstanceID("static-1"),
			kgo.Balancers(kgo.RangeBalancer()), kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.SessionTimeout(20*time.Second), kgo.HeartbeatInterval(200*time.Millisecond))
	}
	first := produce("one", 0)
	m1 := member()
	assertRecs(t, "first incarnation", first, kgoRecs(kgoPoll(t, m1, len(first), 30*time.Second)))
	if err := m1.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	_, gen1 := m1.GroupMetadata()
	m1.Close() // a static member does not leave
	dg, err := adm.DescribeGroups(ctx, group)
	if d := dg[group]; err != nil || d.State != "Stable" || len(d.Members) != 1 || d.Members[0].InstanceID == nil ||
		*d.Members[0].InstanceID != "static-1" {
		t.Fatalf("group after the static member closed: %v %+v", err, d)
	}

	second := produce("two", 5)
	m2 := member()
	assertRecs(t, "second incarnation", second, kgoRecs(kgoPoll(t, m2, len(second), 30*time.Second)))
	if _, gen2 := m2.GroupMetadata(); gen2 != gen1 {
		t.Fatalf("generation %d after the static member came back, want %d (no rebalance)", gen2, gen1)
	}
	if err := m2.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	m2.Close()
	lr, err := adm.LeaveGroup(ctx, kadm.LeaveGroup(group).InstanceIDs("static-1"))
	if err != nil {
		t.Fatalf("LeaveGroup by instance id: %v", err)
	}
	if e := lr.Error(); e != nil {
		t.Fatalf("LeaveGroup by instance id: %v", e)
	}
	eventually(t, 10*time.Second, "group without members", func() bool {
		dg, err := adm.DescribeGroups(ctx, group)
		return err == nil && len(dg[group].Members) == 0
	})
}

// A group's committed offset below the log start (after DeleteRecords) is out of range:
// the member resets to the log start and reads exactly the remaining records.
func TestFranzCommittedBelowLogStart(t *testing.T) {
	b := startBroker(t, groupFlags...)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 60*time.Second)
	topic, group := topicName(t, "t"), topicName(t, "g")
	createTopic(t, b, topic, 1, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	rs := kgoProduce(t, prod, withOffsets(sample(topic, 10, "oor", true), 0, 0))
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 2, LeaderEpoch: -1})
	if err := adm.CommitAllOffsets(ctx, group, os); err != nil {
		t.Fatal(err)
	}
	var del kadm.Offsets
	del.AddOffset(topic, 0, 6, -1)
	if dr, err := adm.DeleteRecords(ctx, del); err != nil || dr[topic][0].Err != nil {
		t.Fatalf("delete records: %v %+v", err, dr)
	}
	m := newGroupMember(t, b, "m", group, topic, false)
	got := pollGroup(t, 4, 30*time.Second, m)
	assertRecs(t, "after the out-of-range commit", rs[6:], got["m"])
}

// compression.type set on the topic: the broker re-encodes batches of another codec
// (payload, offsets and producer fields kept); consumers see the topic's codec.
func TestFranzTopicCompressionType(t *testing.T) {
	b := startBroker(t)
	for _, c := range []struct {
		topicCodec string
		attr       uint8
		producer   kgo.CompressionCodec
	}{
		{"zstd", 4, kgo.GzipCompression()},
		{"uncompressed", 0, kgo.Lz4Compression()},
		{"gzip", 1, kgo.NoCompression()},
		{"lz4", 3, kgo.SnappyCompression()},
	} {
		t.Run(c.topicCodec, func(t *testing.T) {
			topic := topicName(t, "t")
			createTopic(t, b, topic, 1, map[string]*string{"compression.type": strp(c.topicCodec)})
			prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(c.producer))
			// Duplicate header keys are checked in duplicate_header_keys below.
			rs := withOffsets(uniqueHeaderKeys(sample(topic, 20, c.topicCodec, true)), 0, 0)
			// CreateTime timestamps, not in order: the re-encoded batch keeps each one.
			base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			stamp := func(off int64) time.Time { return base.Add(time.Duration((off*7)%20) * time.Second) }
			var krs []*kgo.Record
			for _, r := range rs {
				kr := toKgo(r)
				kr.Timestamp = stamp(r.Offset)
				krs = append(krs, kr)
			}
			if err := prod.ProduceSync(testCtx(t, 20*time.Second), krs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			pid, epoch, err := prod.ProducerID(testCtx(t, 10*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := kgoPoll(t, cons, len(rs), 20*time.Second)
			for _, kr := range got {
				if kr.Attrs.CompressionType() != c.attr || kr.ProducerID != pid || kr.ProducerEpoch != epoch {
					t.Fatalf("record %d: codec %d producer %d/%d, want codec %d producer %d/%d", kr.Offset,
						kr.Attrs.CompressionType(), kr.ProducerID, kr.ProducerEpoch, c.attr, pid, epoch)
				}
				if !kr.Timestamp.Equal(stamp(kr.Offset)) || kr.Attrs.TimestampType() != 0 {
					t.Fatalf("record %d: timestamp %v type %d, want %v CreateTime", kr.Offset, kr.Timestamp,
						kr.Attrs.TimestampType(), stamp(kr.Offset))
				}
			}
			assertRecs(t, "re-encoded records", rs, kgoRecs(got))
			lo, err := kadm.NewClient(prod).ListMaxTimestampOffsets(testCtx(t, 10*time.Second), topic)
			if o, _ := lo.Lookup(topic, 0); err != nil || o.Offset != 17 || o.Timestamp != stamp(17).UnixMilli() {
				t.Fatalf("max timestamp offset: %v %+v, want offset 17 at %d", err, o, stamp(17).UnixMilli())
			}
		})
	}
	t.Run("duplicate_header_keys", func(t *testing.T) {
		topic := topicName(t, "t")
		createTopic(t, b, topic, 1, map[string]*string{"compression.type": strp("zstd")})
		prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.GzipCompression()))
		rs := withOffsets(sample(topic, 4, "dup", true), 0, 0)
		rs[0].Headers = []hdr{{"h1", []byte("a")}, {"h1", []byte("dup")}, {"h2", nil}, {"h1", []byte("third")}}
		rs = kgoProduce(t, prod, rs)
		cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		assertRecs(t, "re-encoded records with duplicate header keys", rs, kgoRecs(kgoPoll(t, cons, len(rs), 20*time.Second)))
	})
}

// uniqueHeaderKeys renames repeated header keys of each record (h1, h1 -> h1, h1#2).
func uniqueHeaderKeys(rs []rec) []rec {
	out := make([]rec, len(rs))
	for i, r := range rs {
		seen := map[string]int{}
		var hs []hdr
		for _, h := range r.Headers {
			seen[h.K]++
			if n := seen[h.K]; n > 1 {
				h.K = fmt.Sprintf("%s#%d", h.K, n)
			}
			hs = append(hs, h)
		}
		r.Headers = hs
		out[i] = r
	}
	return out
}

// Transactional batches re-encoded for compression.type stay transactional: read_committed
// skips the aborted ones, read_uncommitted sees every record in transactional batches.
func TestFranzTopicCompressionTypeTransactions(t *testing.T) {
	b := startBroker(t, groupFlags...)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, map[string]*string{"compression.type": strp("zstd")})
	txn := kgoClient(t, b, kgo.TransactionalID(topicName(t, "txn")), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerBatchCompression(kgo.GzipCompression()), kgo.TransactionTimeout(20*time.Second))
	ctx := testCtx(t, 60*time.Second)
	run := func(tag string, base int64, commit kgo.TransactionEndTry) []rec {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		rs := kgoProduce(t, txn, withOffsets(uniqueHeaderKeys(sample(topic, 3, tag, true)), 0, base))
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
		return rs
	}
	aborted := run("aborted", 0, kgo.TryAbort)
	committed := run("committed", 4, kgo.TryCommit)
	rc := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	assertRecs(t, "read_committed", committed, kgoRecs(kgoPoll(t, rc, 3, 20*time.Second)))
	ru := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := kgoPoll(t, ru, 6, 20*time.Second)
	for _, kr := range got {
		if !kr.Attrs.IsTransactional() || kr.Attrs.CompressionType() != 4 {
			t.Fatalf("record %d: transactional %v codec %d, want transactional zstd", kr.Offset, kr.Attrs.IsTransactional(), kr.Attrs.CompressionType())
		}
	}
	assertRecs(t, "read_uncommitted", append(append([]rec{}, aborted...), committed...), kgoRecs(got))
}
