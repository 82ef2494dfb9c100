package compat

// Cross-client: what one library produced, another reads back byte-exact.

import (
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestCrossClient(t *testing.T) {
	b := startBroker(t)
	type producer func(t *testing.T, topic string, rs []rec) []rec
	type consumer func(t *testing.T, topic string, n int) []rec
	producers := map[string]producer{
		"franz": func(t *testing.T, topic string, rs []rec) []rec {
			return kgoProduce(t, kgoClient(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.ZstdCompression())), rs)
		},
		"sarama": func(t *testing.T, topic string, rs []rec) []rec {
			cfg := saramaConfig()
			cfg.Producer.Compression = sarama.CompressionLZ4
			return saramaSyncProduce(t, saramaSyncProducer(t, b, cfg), rs)
		},
		"kafkago": func(t *testing.T, topic string, rs []rec) []rec {
			target := 0
			kafkaGoWrite(t, kafkaGoWriter(t, b, topic, kafka.Snappy, &target), rs)
			return rs
		},
	}
	consumers := map[string]consumer{
		"franz": func(t *testing.T, topic string, n int) []rec {
			cl := kgoClient(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
			return kgoRecs(kgoPoll(t, cl, n, 20*time.Second))
		},
		"sarama": func(t *testing.T, topic string, n int) []rec {
			return saramaRead(t, b, saramaConfig(), topic, 0, sarama.OffsetOldest, n)
		},
		"kafkago": func(t *testing.T, topic string, n int) []rec {
			return kafkaGoReadPartition(t, b, topic, 0, kafka.FirstOffset, n)
		},
	}
	for _, pair := range [][2]string{
		{"sarama", "franz"}, {"franz", "sarama"}, {"kafkago", "sarama"}, {"sarama", "kafkago"},
		{"franz", "kafkago"}, {"kafkago", "franz"},
	} {
		t.Run(pair[0]+"_to_"+pair[1], func(t *testing.T) {
			topic := topicName(t, "t")
			createTopic(t, b, topic, 1, nil)
			// kafka-go does not write null header values; the others do.
			nullHeaders := pair[0] != "kafkago" && pair[1] != "kafkago"
			rs := withOffsets(sample(topic, 25, pair[0], nullHeaders), 0, 0)
			produced := producers[pair[0]](t, topic, rs)
			assertRecs(t, "produced", rs, produced)
			want := rs
			if pair[1] == "kafkago" {
				want = nilEmpty(rs)
			}
			assertRecs(t, pair[0]+" -> "+pair[1], want, consumers[pair[1]](t, topic, len(rs)))
		})
	}
}
