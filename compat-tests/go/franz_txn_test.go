package compat

// franz-go transactions: commit/abort seen by read_committed and read_uncommitted
// consumers, the last stable offset of an open transaction, and GroupTransactSession
// consume-transform-produce (classic and KIP-848 groups).

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// listOffset asks ListOffsets for the latest offset with the isolation level (0/1).
func listOffset(t *testing.T, cl *kgo.Client, topic string, p int32, isolation int8) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = isolation
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = p
	rp.Timestamp = -1
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	pr := resp.Topics[0].Partitions[0]
	if pr.ErrorCode != 0 {
		t.Fatalf("list offsets error %d", pr.ErrorCode)
	}
	return pr.Offset
}

func TestFranzTransactionsCommitAbort(t *testing.T) {
	b := startBroker(t, groupFlags...)
	topic := topicName(t, "t")
	createTopic(t, b, topic, 1, nil)
	txn := kgoClient(t, b, kgo.TransactionalID(topicName(t, "txn")), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.TransactionTimeout(20*time.Second))
	ctx := testCtx(t, 60*time.Second)
	run := func(tag string, base int64, commit kgo.TransactionEndTry) []rec {
		if err := txn.BeginTransaction(); err != nil {
			t.Fatalf("begin: %v", err)
		}
		rs := kgoProduce(t, txn, withOffsets(sample(topic, 3, tag, true), 0, base))
		if err := txn.EndTransaction(ctx, commit); err != nil {
			t.Fatalf("end %s: %v", tag, err)
		}
		return rs
	}
	aborted := run("aborted", 0, kgo.TryAbort)      // 0..2, abort marker at 3
	committed := run("committed", 4, kgo.TryCommit) // 4..6, commit marker at 7

	// An open transaction: 8..9 written, the last stable offset stays at 8.
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	open := kgoProduce(t, txn, withOffsets(sample(topic, 2, "open", true), 0, 8))
	if hw, lso := listOffset(t, txn, topic, 0, 0), listOffset(t, txn, topic, 0, 1); hw != 10 || lso != 8 {
		t.Fatalf("open transaction: high watermark %d (want 10), last stable offset %d (want 8)", hw, lso)
	}

	rc := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	assertRecs(t, "read_committed", committed, kgoRecs(kgoPoll(t, rc, 3, 20*time.Second)))
	ru := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	all := append(append(append([]rec{}, aborted...), committed...), open...)
	got := kgoPoll(t, ru, len(all), 20*time.Second)
	for _, kr := range got {
		if !kr.Attrs.IsTransactional() {
			t.Fatalf("record %d not in a transactional batch", kr.Offset)
		}
	}
	assertRecs(t, "read_uncommitted", all, kgoRecs(got))
	// The broker finalizes transaction.version 2, so franz-go runs KIP-890 part 2: every
	// EndTxn bumps the epoch, and each transaction's batches carry the next one.
	e := got[0].ProducerEpoch
	for i, kr := range got {
		want := e + int16(i/3)
		if kr.ProducerEpoch != want {
			t.Fatalf("record %d (%s): producer epoch %d, want %d (one bump per ended transaction)", kr.Offset, kr.Value, kr.ProducerEpoch, want)
		}
	}

	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit open: %v", err)
	}
	assertRecs(t, "read_committed after the commit", open, kgoRecs(kgoPoll(t, rc, 2, 20*time.Second)))
	if hw, lso := listOffset(t, txn, topic, 0, 0), listOffset(t, txn, topic, 0, 1); hw != 11 || lso != 11 {
		t.Fatalf("after commit: high watermark %d, last stable offset %d, want 11/11", hw, lso)
	}
}

func TestFranzGroupTransactSession(t *testing.T) {
	t.Run("classic", func(t *testing.T) { franzEOS(t, false) })
	t.Run("consumer", func(t *testing.T) {
		franzEOS(t, true)
	})
}

// Consume-transform-produce exactly once: every input record becomes one output record,
// produced and offset-committed in the same transaction, in two runs of the session.
func franzEOS(t *testing.T, kip848 bool) {
	b := startBroker(t, groupFlags...)
	in, out, group := topicName(t, "in"), topicName(t, "out"), topicName(t, "g")
	createTopic(t, b, in, 2, nil)
	createTopic(t, b, out, 2, nil)
	prod := kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var inputs []rec
	produce := func(tag string, base int64) {
		for p := int32(0); p < 2; p++ {
			inputs = append(inputs, kgoProduce(t, prod, withOffsets(sample(in, 10, fmt.Sprintf("%s%d", tag, p), true), p, base))...)
		}
	}
	transform := func(r rec) rec {
		o := rec{Topic: out, Partition: r.Partition, Key: r.Key}
		if r.Value != nil {
			o.Value = append([]byte("T:"), r.Value...)
		}
		o.Headers = append(append([]hdr{}, r.Headers...), hdr{"src", []byte(fmt.Sprintf("%d/%d", r.Partition, r.Offset))})
		return o
	}
	session := func(n int) {
		opts := []kgo.Opt{
			kgo.SeedBrokers(b.Addr()), kgo.TransactionalID(group + "-txn"), kgo.TransactionTimeout(20 * time.Second),
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RequireStableFetchOffsets(),
			kgo.SessionTimeout(3 * time.Second), kgo.HeartbeatInterval(200 * time.Millisecond),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.FetchMaxWait(500 * time.Millisecond),
		}
		if kip848 {
			opts = append(opts, kgo.ServerSideBalancer())
		}
		s, err := kgo.NewGroupTransactSession(opts...)
		if err != nil {
			t.Fatalf("NewGroupTransactSession: %v", err)
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		defer cancel()
		done := 0
		for done < n {
			fs := s.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("transformed %d of %d records before timeout", done, n)
			}
			fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
			rs := fs.Records()
			if len(rs) == 0 {
				continue
			}
			if err := s.Begin(); err != nil {
				t.Fatalf("begin: %v", err)
			}
			for _, kr := range rs {
				s.Produce(ctx, toKgo(transform(fromKgo(kr))), func(_ *kgo.Record, err error) {
					if err != nil {
						t.Errorf("produce: %v", err)
					}
				})
			}
			committed, err := s.End(ctx, kgo.TryCommit)
			if err != nil || !committed {
				t.Fatalf("end transaction: committed=%v err=%v", committed, err)
			}
			done += len(rs)
		}
		if done != n {
			t.Fatalf("transformed %d records, want %d", done, n)
		}
	}
	produce("first", 0)
	session(20)
	produce("second", 10)
	session(20) // a new session resumes at the transactionally committed offsets

	// The output, read committed: exactly one transformed record per input, in order.
	var want []rec
	for _, r := range inputs {
		want = append(want, transform(r))
	}
	sortBySrc := func(rs []rec) []rec {
		// offsets of the output include commit markers; compare positions within partitions
		sortRecs(rs)
		idx := map[int32]int64{}
		for i := range rs {
			rs[i].Offset = idx[rs[i].Partition]
			idx[rs[i].Partition]++
		}
		return rs
	}
	want = sortBySrc(want)
	rc := kgoClient(t, b, kgo.ConsumeTopics(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	assertRecs(t, "output (read_committed)", want, sortBySrc(kgoRecs(kgoPoll(t, rc, len(want), 20*time.Second))))
	adm := kadmClient(t, b)
	offs, err := adm.FetchOffsets(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatal(err)
	}
	for p := int32(0); p < 2; p++ {
		if o, ok := offs.Lookup(in, p); !ok || o.Err != nil || o.At != 20 {
			t.Fatalf("committed offset of %s/%d: %+v, want 20", in, p, o)
		}
	}
}
