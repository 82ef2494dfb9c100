package compat

// franz-go: error answers compared with Kafka's (CreateTopics validation, unknown topics
// with auto-creation off, OffsetCommit/ListOffsets for unknown partitions) and acks 0/1.

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestFranzAdminCreateTopicErrors(t *testing.T) {
	b := startBroker(t)
	adm := kadmClient(t, b)
	ctx := testCtx(t, 30*time.Second)
	name := topicName(t, "t")
	cases := []struct {
		what       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       string
	}{
		{"replication factor 3", name + "-rf", 1, 3, nil, "INVALID_REPLICATION_FACTOR"},
		{"0 partitions", name + "-p0", 0, 1, nil, "INVALID_PARTITIONS"},
		{"bad name", "bad name!", 1, 1, nil, "INVALID_TOPIC_EXCEPTION"},
		{"name too long", string(make([]byte, 250)), 1, 1, nil, "INVALID_TOPIC_EXCEPTION"},
		{"unknown config", name + "-cfg", 1, 1, map[string]*string{"no.such.config": strp("1")}, "INVALID_CONFIG"},
		{"bad config value", name + "-val", 1, 1, map[string]*string{"cleanup.policy": strp("sometimes")}, "INVALID_CONFIG"},
	}
	for _, c := range cases {
		r, _ := adm.CreateTopic(ctx, c.partitions, c.rf, c.configs, c.topic)
		if !isKerr(r.Err, c.want) {
			t.Errorf("CreateTopics with %s: %v, want %s", c.what, r.Err, c.want)
		}
	}
	// validate-only creates nothing
	vr, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, name+"-validate")
	if err != nil || vr[name+"-validate"].Err != nil {
		t.Fatalf("validate-only CreateTopics: %v %+v", err, vr)
	}
	d, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(cases, struct {
		what       string
		topic      string
		partitions int32
		rf         int16
		configs    map[string]*string
		want       string
	}{topic: name + "-validate"}) {
		if d.Has(c.topic) {
			t.Errorf("topic %q exists after a refused or validate-only CreateTopics", c.topic)
		}
	}
}

// With auto-creation off, producing to an unknown topic fails with
// UNKNOWN_TOPIC_OR_PARTITION; ListOffsets of a missing partition does too.
func TestFranzUnknownTopic(t *testing.T) {
	b := startBroker(t, "--auto-create-topics-enable", "false")
	topic := topicName(t, "missing")
	prod := kgoClient(t, b, kgo.UnknownTopicRetries(2), kgo.RecordDeliveryTimeout(10*time.Second))
	err := prod.ProduceSync(testCtx(t, 20*time.Second), &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("produce to a missing topic: %v, want UNKNOWN_TOPIC_OR_PARTITION", err)
	}
	d, err := kadmClient(t, b).ListTopics(testCtx(t, 10*time.Second))
	if err != nil || d.Has(topic) {
		t.Fatalf("missing topic created: %v %v", err, d.Has(topic))
	}
	existing := topicName(t, "t")
	createTopic(t, b, existing, 1, nil)
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = existing
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition = 7
	rp.Timestamp = -1
	rp.CurrentLeaderEpoch = -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// Sent to the broker directly (kgo's sharding would answer it without asking).
	raw, err := prod.SeedBrokers()[0].Request(testCtx(t, 10*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	resp := raw.(*kmsg.ListOffsetsResponse)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("ListOffsets of partition 7 of a 1-partition topic: error %d, want UNKNOWN_TOPIC_OR_PARTITION (3)", code)
	}
}

// acks=0 and acks=1 (non-idempotent) produce: the records are stored exactly.
func TestFranzAcks(t *testing.T) {
	b := startBroker(t)
	for _, a := range []struct {
		name string
		acks kgo.Acks
	}{{"acks0", kgo.NoAck()}, {"acks1", kgo.LeaderAck()}} {
		t.Run(a.name, func(t *testing.T) {
			topic := topicName(t, "t")
			createTopic(t, b, topic, 1, nil)
			prod := kgoClient(t, b, kgo.RequiredAcks(a.acks), kgo.DisableIdempotentWrite(),
				kgo.RecordPartitioner(kgo.ManualPartitioner()))
			rs := withOffsets(sample(topic, 20, a.name, true), 0, 0)
			krs := make([]*kgo.Record, len(rs))
			for i, r := range rs {
				krs[i] = toKgo(r)
			}
			if err := prod.ProduceSync(testCtx(t, 20*time.Second), krs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			cons := kgoClient(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			got := kgoPoll(t, cons, len(rs), 20*time.Second)
			for _, kr := range got {
				if kr.ProducerID != -1 {
					t.Fatalf("record %d has producer id %d, want -1 (not idempotent)", kr.Offset, kr.ProducerID)
				}
			}
			assertRecs(t, a.name, rs, kgoRecs(got))
		})
	}
}

// Error answers of admin calls on things that do not exist (or cannot be done), each
// compared with Kafka 4.4's answer.
func TestFranzAdminErrorAnswers(t *testing.T) {
	b := startBroker(t)
	cl := kgoClient(t, b)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 60*time.Second)
	topic, missing, group := topicName(t, "t"), topicName(t, "missing"), topicName(t, "nogroup")
	createTopic(t, b, topic, 2, nil)
	// Kafka's group coordinator (__consumer_offsets) loads on first use.
	eventually(t, 30*time.Second, "group coordinator available", func() bool {
		_, err := adm.FetchOffsets(ctx, group+"-warmup")
		return err == nil
	})
	errName := func(err error) string {
		if err == nil {
			return "none"
		}
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return ke.Message
		}
		return "client: " + err.Error()
	}
	cases := []struct {
		name string
		want string
		got  func() string
	}{
		{"DeleteTopics missing", "UNKNOWN_TOPIC_OR_PARTITION", func() string {
			r, _ := adm.DeleteTopics(ctx, missing)
			return errName(r[missing].Err)
		}},
		{"CreatePartitions fewer", "INVALID_PARTITIONS", func() string {
			r, _ := adm.UpdatePartitions(ctx, 1, topic)
			return errName(r[topic].Err)
		}},
		{"CreatePartitions same count", "INVALID_PARTITIONS", func() string {
			r, _ := adm.UpdatePartitions(ctx, 2, topic)
			return errName(r[topic].Err)
		}},
		{"CreatePartitions missing topic", "UNKNOWN_TOPIC_OR_PARTITION", func() string {
			r, _ := adm.CreatePartitions(ctx, 1, missing)
			return errName(r[missing].Err)
		}},
		{"DescribeConfigs missing topic", "UNKNOWN_TOPIC_OR_PARTITION", func() string {
			rcs, err := adm.DescribeTopicConfigs(ctx, missing)
			if err != nil {
				return errName(err)
			}
			return errName(rcs[0].Err)
		}},
		{"IncrementalAlterConfigs missing topic", "UNKNOWN_TOPIC_OR_PARTITION", func() string {
			r, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: strp("1000")}}, missing)
			if err != nil {
				return errName(err)
			}
			return errName(r[0].Err)
		}},
		{"DeleteGroups missing", "GROUP_ID_NOT_FOUND", func() string {
			r, _ := adm.DeleteGroups(ctx, group)
			return errName(r[group].Err)
		}},
		{"DescribeGroups missing", "GROUP_ID_NOT_FOUND/Dead", func() string {
			r, err := adm.DescribeGroups(ctx, group)
			if err != nil {
				return errName(err)
			}
			return errName(r[group].Err) + "/" + r[group].State
		}},
		{"OffsetFetch missing group", "none/0", func() string {
			r, err := adm.FetchOffsets(ctx, group)
			return errName(err) + "/" + fmt.Sprint(len(r))
		}},
		{"OffsetDelete missing group", "GROUP_ID_NOT_FOUND", func() string {
			var ts kadm.TopicsSet
			ts.Add(topic, 0)
			_, err := adm.DeleteOffsets(ctx, group, ts)
			return errName(err)
		}},
		{"DeleteRecords missing partition", "UNKNOWN_TOPIC_OR_PARTITION", func() string {
			req := kmsg.NewPtrDeleteRecordsRequest()
			rt := kmsg.NewDeleteRecordsRequestTopic()
			rt.Topic = topic
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Partition = 9
			rp.Offset = 0
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			req.TimeoutMillis = 5000
			raw, err := cl.SeedBrokers()[0].Request(ctx, req)
			if err != nil {
				return errName(err)
			}
			return errName(kerr.ErrorForCode(raw.(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0].ErrorCode))
		}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if got := c.got(); got != c.want {
				t.Fatalf("%s: %s, want %s (Kafka 4.4)", c.name, got, c.want)
			}
		})
	}
}
