package compat

// Older protocol versions: franz-go pinned with kgo.MaxVersions and sarama with
// Config.Version, each producing, consuming and committing in a group.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

func TestFranzProtocolVersions(t *testing.T) {
	b := startBroker(t, groupFlags...)
	for _, v := range []struct {
		name string
		vs   *kversion.Versions
	}{
		{"0.11", kversion.V0_11_0()}, {"1.1", kversion.V1_1_0()}, {"2.1", kversion.V2_1_0()},
		{"2.4", kversion.V2_4_0()}, {"2.8", kversion.V2_8_0()}, {"3.0", kversion.V3_0_0()},
		{"3.7", kversion.V3_7_0()}, {"4.0", kversion.V4_0_0()},
	} {
		t.Run(v.name, func(t *testing.T) {
			topic, group := topicName(t, "t"), topicName(t, "g")
			createTopic(t, b, topic, 2, nil)
			prod := kgoClient(t, b, kgo.MaxVersions(v.vs), kgo.RecordPartitioner(kgo.ManualPartitioner()),
				kgo.ProducerBatchCompression(kgo.Lz4Compression()))
			var want []rec
			for p := int32(0); p < 2; p++ {
				want = append(want, kgoProduce(t, prod, withOffsets(sample(topic, 12, fmt.Sprint(v.name, "-", p), true), p, 0))...)
			}
			cons := kgoClient(t, b, kgo.MaxVersions(v.vs), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
				kgo.SessionTimeout(3*time.Second), kgo.HeartbeatInterval(200*time.Millisecond),
				kgo.Balancers(kgo.RangeBalancer()))
			assertRecs(t, "consumed", want, kgoRecs(kgoPoll(t, cons, len(want), 30*time.Second)))
			if err := cons.CommitUncommittedOffsets(testCtx(t, 10*time.Second)); err != nil {
				t.Fatalf("commit: %v", err)
			}
			offs, err := kadmClient(t, b).FetchOffsets(testCtx(t, 10*time.Second), group)
			if err != nil {
				t.Fatal(err)
			}
			for p := int32(0); p < 2; p++ {
				if o, ok := offs.Lookup(topic, p); !ok || o.Err != nil || o.At != 12 {
					t.Fatalf("committed %d: %+v", p, o)
				}
			}
		})
	}
}

func TestSaramaProtocolVersions(t *testing.T) {
	b := startBroker(t, groupFlags...)
	for _, v := range []sarama.KafkaVersion{sarama.V1_0_0_0, sarama.V2_1_0_0, sarama.V2_4_0_0, sarama.V2_8_0_0,
		sarama.V3_3_0_0, sarama.V3_7_0_0, sarama.V4_3_1_0} {
		t.Run(strings.ReplaceAll(v.String(), ".", "_"), func(t *testing.T) {
			topic, group := topicName(t, "t"), topicName(t, "g")
			createTopic(t, b, topic, 1, nil)
			cfg := saramaConfig()
			cfg.Version = v
			cfg.Producer.Compression = sarama.CompressionGZIP
			rs := withOffsets(sample(topic, 15, "v"+v.String(), true), 0, 0)
			assertRecs(t, "produced", rs, saramaSyncProduce(t, saramaSyncProducer(t, b, cfg), rs))
			assertRecs(t, "consumed", rs, saramaRead(t, b, cfg, topic, 0, sarama.OffsetOldest, len(rs)))

			ch := make(chan rec, 100)
			_, stop := startSaramaMemberCfg(t, b, cfg, "m", group, topic, ch)
			got := collect(t, ch, len(rs), "group member")
			assertRecs(t, "consumed in a group", rs, got)
			stop()
			admin, err := sarama.NewClusterAdmin([]string{b.Addr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			resp, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
			if err != nil {
				t.Fatal(err)
			}
			if blk := resp.GetBlock(topic, 0); blk == nil || blk.Err != sarama.ErrNoError || blk.Offset != 15 {
				t.Fatalf("committed: %+v", blk)
			}
		})
	}
}
