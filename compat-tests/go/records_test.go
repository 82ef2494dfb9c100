package compat

// Library-neutral records, the sample data set every test produces, and byte-exact
// comparison (nil and empty keys/values/header values are told apart).

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"
)

type hdr struct {
	K string
	V []byte
}

type rec struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []hdr
}

func bs(b []byte) string {
	if b == nil {
		return "<nil>"
	}
	if len(b) > 64 {
		return fmt.Sprintf("%q...(%d bytes, sum %d)", b[:32], len(b), sum(b))
	}
	return fmt.Sprintf("%q", b)
}

func sum(b []byte) uint64 {
	var s uint64
	for i, c := range b {
		s += uint64(c) * uint64(i+1)
	}
	return s
}

func (r rec) String() string {
	var h []string
	for _, x := range r.Headers {
		h = append(h, fmt.Sprintf("%q=%s", x.K, bs(x.V)))
	}
	return fmt.Sprintf("%s/%d@%d key=%s value=%s headers=[%s]", r.Topic, r.Partition, r.Offset, bs(r.Key), bs(r.Value), strings.Join(h, " "))
}

func recEqual(a, b rec) bool {
	if a.Topic != b.Topic || a.Partition != b.Partition || a.Offset != b.Offset {
		return false
	}
	if (a.Key == nil) != (b.Key == nil) || !bytes.Equal(a.Key, b.Key) ||
		(a.Value == nil) != (b.Value == nil) || !bytes.Equal(a.Value, b.Value) ||
		len(a.Headers) != len(b.Headers) {
		return false
	}
	for i := range a.Headers {
		x, y := a.Headers[i], b.Headers[i]
		if x.K != y.K || (x.V == nil) != (y.V == nil) || !bytes.Equal(x.V, y.V) {
			return false
		}
	}
	return true
}

// sortRecs orders by topic, partition, offset.
func sortRecs(rs []rec) {
	sort.SliceStable(rs, func(i, j int) bool {
		if rs[i].Topic != rs[j].Topic {
			return rs[i].Topic < rs[j].Topic
		}
		if rs[i].Partition != rs[j].Partition {
			return rs[i].Partition < rs[j].Partition
		}
		return rs[i].Offset < rs[j].Offset
	})
}

// assertRecs checks got == want exactly (same order), reporting the first differences.
func assertRecs(t *testing.T, what string, want, got []rec) {
	t.Helper()
	bad := 0
	var msg strings.Builder
	for i := 0; i < len(want) || i < len(got); i++ {
		switch {
		case i >= len(got):
			fmt.Fprintf(&msg, "  #%d missing: want %v\n", i, want[i])
			bad++
		case i >= len(want):
			fmt.Fprintf(&msg, "  #%d extra: got %v\n", i, got[i])
			bad++
		case !recEqual(want[i], got[i]):
			fmt.Fprintf(&msg, "  #%d\n    want %v\n    got  %v\n", i, want[i], got[i])
			bad++
		}
		if bad >= 8 {
			msg.WriteString("  ...\n")
			break
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d records wanted, %d got; differences:\n%s", what, len(want), len(got), msg.String())
	}
}

// sample returns n records for the topic (partition/offset to be filled in): string and
// binary keys, null keys, null and empty values, a 100 KB value, headers with duplicate
// keys, binary and empty values, and (if nullHeaderValues) null header values.
func sample(topic string, n int, tag string, nullHeaderValues bool) []rec {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 100_000)
	for i := range big {
		big[i] = byte((i * 7) % 251)
	}
	out := make([]rec, n)
	for i := 0; i < n; i++ {
		r := rec{Topic: topic}
		switch i % 5 {
		case 0:
			r.Key = nil
		case 1:
			r.Key = []byte(fmt.Sprintf("%s-key-%d", tag, i))
		case 2:
			r.Key = []byte("ключ-\x00\xff-" + fmt.Sprint(i))
		case 3:
			r.Key = []byte{}
		case 4:
			r.Key = []byte(fmt.Sprintf("k%d", i))
		}
		switch i % 7 {
		case 3:
			r.Value = nil
		case 4:
			r.Value = []byte{}
		case 5:
			r.Value = append([]byte(tag), all...)
		case 6:
			if i%14 == 6 {
				r.Value = append([]byte(tag), big...)
			} else {
				r.Value = []byte(strings.Repeat(tag+"-compressible ", 50))
			}
		default:
			r.Value = []byte(fmt.Sprintf("%s-value-%d", tag, i))
		}
		switch i % 4 {
		case 1:
			r.Headers = []hdr{{"h1", []byte("a")}, {"h1", []byte("dup")}}
		case 2:
			r.Headers = []hdr{{"bin", []byte{0, 255, 1}}, {"empty", []byte{}}, {"ü-utf8", []byte("✓")}}
		case 3:
			if nullHeaderValues {
				r.Headers = []hdr{{"null", nil}, {"x", []byte(tag)}}
			} else {
				r.Headers = []hdr{{"x", []byte(tag)}}
			}
		}
		out[i] = r
	}
	return out
}

// withOffsets sets partition p and consecutive offsets from base.
func withOffsets(rs []rec, p int32, base int64) []rec {
	out := make([]rec, len(rs))
	for i, r := range rs {
		r.Partition = p
		r.Offset = base + int64(i)
		out[i] = r
	}
	return out
}

// nilEmpty maps empty keys, values and header values to nil: kafka-go's Reader returns
// nil for both null and empty (a client limitation; its Writer keeps them apart).
func nilEmpty(rs []rec) []rec {
	z := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	out := make([]rec, len(rs))
	for i, r := range rs {
		r.Key, r.Value = z(r.Key), z(r.Value)
		var hs []hdr
		for _, h := range r.Headers {
			hs = append(hs, hdr{h.K, z(h.V)})
		}
		r.Headers = hs
		out[i] = r
	}
	return out
}
