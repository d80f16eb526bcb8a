package kafka

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"testing"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

func compress(t *testing.T, codec int, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch codec {
	case codecGzip:
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case codecSnappy:
		return snappy.Encode(nil, b)
	case codecLZ4:
		w := lz4.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case codecZstd:
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	}
	return buf.Bytes()
}

// xerial frames snappy blocks the way the Java client does.
func xerial(blocks ...[]byte) []byte {
	out := append([]byte(nil), xerialMagic...)
	out = binary.BigEndian.AppendUint32(out, 1)
	out = binary.BigEndian.AppendUint32(out, 1)
	for _, b := range blocks {
		enc := snappy.Encode(nil, b)
		out = binary.BigEndian.AppendUint32(out, uint32(len(enc)))
		out = append(out, enc...)
	}
	return out
}

func TestInflateCodecs(t *testing.T) {
	recs := append(recordV2(0, ""), recordV2(1, tpA)...)
	cases := map[string]struct {
		codec int
		data  []byte
	}{
		"gzip":   {codecGzip, compress(t, codecGzip, recs)},
		"snappy": {codecSnappy, compress(t, codecSnappy, recs)},
		"xerial": {codecSnappy, xerial(recs[:len(recordV2(0, ""))], recs[len(recordV2(0, "")):])},
		"lz4":    {codecLZ4, compress(t, codecLZ4, recs)},
		"zstd":   {codecZstd, compress(t, codecZstd, recs)},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := inflate(c.codec, c.data, maxInflate); !bytes.Equal(got, recs) {
				t.Fatalf("inflate: % x", got)
			}
			if got := inflate(c.codec, c.data, 10); len(got) > 10 {
				t.Fatalf("limit exceeded: %d", len(got))
			}
			d := newDriver()
			b := batchV2(20, int16(c.codec), 2, c.data)
			sp := oneSpan(t, d.exchange(0, frameRequest(fetchRequest(11), 9), frameResponse(fetchResponse(11, b), 9)))
			checkSpan(t, sp, want{cons, "t", "1", 20, 2, "synth", "", "", "", "a"})
			// Garbage and cut inputs never fail loudly.
			for i := range len(c.data) {
				inflate(c.codec, c.data[:i], maxInflate)
			}
			inflate(c.codec, bytes.Repeat([]byte{0xff}, 100), maxInflate)
		})
	}
}

// TestInflateBudget: a message of many highly compressible batches stops
// inflating at the budget but still counts every record.
func TestInflateBudget(t *testing.T) {
	big := bytes.Repeat(recordV2(0, tpA), 3000) // ~200 KiB of records
	z := compress(t, codecZstd, big)
	var records []byte
	for i := range 20 {
		records = append(records, batchV2(int64(i*3000), codecZstd, 3000, z)...)
	}
	budget := inflateBudget
	var ri recordsInfo
	ri.addRecords(records, false, &budget)
	if ri.count != 20*3000 || budget > 0 {
		t.Fatalf("count %d budget %d", ri.count, budget)
	}
	if len(ri.contexts) != 1 {
		t.Fatalf("contexts %d", len(ri.contexts))
	}
}
