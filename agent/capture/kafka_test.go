package capture_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tracer-agent/tracer-agent/agent/capture"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// produceSpec describes one Produce request the test writes.
type produceSpec struct {
	version  int16
	topics   int
	parts    int
	recs     []kmsg.Record
	attrs    int16 // batch attributes (compression codec in the low bits)
	clientID *string
	txnID    *string
	// sizeApart writes the size prefix as its own iovec (writev), as Java
	// clients do.
	sizeApart bool
	badCRC    bool // flips the first batch's CRC
}

func record(key, value string, headers ...kmsg.Header) kmsg.Record {
	r := kmsg.Record{Value: []byte(value), Headers: headers}
	if key != "" {
		r.Key = []byte(key)
	}
	return r
}

// encodeBatch builds a magic-2 record batch with a valid CRC, as producers do.
func encodeBatch(recs []kmsg.Record, attrs int16) []byte {
	var raw []byte
	for i, r := range recs {
		r.OffsetDelta = int32(i)
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		raw = r.AppendTo(raw)
	}
	const now = 1_700_000_000_000 // fixed: the same records encode the same batch
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs,
		LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: raw}
	enc := b.AppendTo(nil)
	b.Length = int32(len(enc) - 12)
	enc = b.AppendTo(nil)
	b.CRC = int32(crc32.Checksum(enc[21:], castagnoli))
	return b.AppendTo(nil)
}

func (p produceSpec) encode(corr int32) []byte {
	req := kmsg.NewPtrProduceRequest()
	req.Version = p.version
	req.Acks = 1
	req.TimeoutMillis = 5000
	req.TransactionID = p.txnID
	for t := 0; t < max(p.topics, 1); t++ {
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = fmt.Sprintf("topic-%d", t)
		rt.TopicID[0], rt.TopicID[15] = 0xab, byte(t+1)
		for i := 0; i < max(p.parts, 1); i++ {
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition = int32(i)
			rp.Records = encodeBatch(p.recs, p.attrs)
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	id := "inject-test"
	if p.clientID != nil {
		id = *p.clientID
	}
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(id))
	if p.clientID != nil && *p.clientID == "<null>" {
		f = kmsg.NewRequestFormatter()
	}
	return f.AppendRequest(nil, req, corr)
}

// decodeProduce parses a Produce request as a broker would and checks
// every length and CRC; it returns the request and its records by batch.
func decodeProduce(t *testing.T, msg []byte) (*kmsg.ProduceRequest, [][]kmsg.Record) {
	t.Helper()
	req, recs, err := parseProduce(msg)
	if err != nil {
		t.Fatal(err)
	}
	return req, recs
}

func parseProduce(msg []byte) (*kmsg.ProduceRequest, [][]kmsg.Record, error) {
	if len(msg) < 14 || int(binary.BigEndian.Uint32(msg))+4 != len(msg) {
		return nil, nil, fmt.Errorf("request size field %d, message %d bytes", binary.BigEndian.Uint32(msg), len(msg))
	}
	req := kmsg.NewPtrProduceRequest()
	req.Version = int16(binary.BigEndian.Uint16(msg[6:]))
	body := msg[12:]
	n := int(int16(binary.BigEndian.Uint16(body)))
	if 2+max(n, 0) >= len(body) {
		return nil, nil, fmt.Errorf("client id length %d", n)
	}
	body = body[2+max(n, 0):]
	if req.IsFlexible() {
		if body[0] != 0 {
			return nil, nil, fmt.Errorf("header tags %d", body[0])
		}
		body = body[1:]
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, nil, fmt.Errorf("decode produce v%d: %v", req.Version, err)
	}
	var out [][]kmsg.Record
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(rp.Records); err != nil {
				return nil, nil, fmt.Errorf("decode batch: %v", err)
			}
			if int(b.Length) != len(rp.Records)-12 {
				return nil, nil, fmt.Errorf("batch length %d, batch %d bytes", b.Length, len(rp.Records))
			}
			if crc := int32(crc32.Checksum(rp.Records[21:], castagnoli)); crc != b.CRC {
				return nil, nil, fmt.Errorf("batch CRC %08x, computed %08x", uint32(b.CRC), uint32(crc))
			}
			var recs []kmsg.Record
			raw := b.Records
			for i := 0; i < int(b.NumRecords); i++ {
				l, w := binary.Varint(raw)
				if w <= 0 || int(l)+w > len(raw) {
					return nil, nil, fmt.Errorf("record %d: length %d of %d bytes left", i, l, len(raw))
				}
				var r kmsg.Record
				if err := r.ReadFrom(raw[:w+int(l)]); err != nil {
					return nil, nil, fmt.Errorf("record %d: %v", i, err)
				}
				recs = append(recs, r)
				raw = raw[w+int(l):]
			}
			if len(raw) != 0 {
				return nil, nil, fmt.Errorf("%d bytes after the records", len(raw))
			}
			out = append(out, recs)
		}
	}
	return req, out, nil
}

func readMessage(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 4+binary.BigEndian.Uint32(hdr[:]))
	copy(msg, hdr[:])
	if _, err := io.ReadFull(c, msg[4:]); err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestKafkaInjection writes real Produce requests (franz-go's encoder)
// from a traced process on a client socket and checks, on the receiving
// end, that each record gained exactly a traceparent header with the ids
// the kernel reported, that every length, count and CRC still checks, and
// that requests outside what the kernel verifies pass byte for byte.
func TestKafkaInjection(t *testing.T) {
	c, rec := start(t, capture.Options{CaptureBytes: 8192, Inject: true, KafkaInject: true})
	if err := c.Track(uint32(os.Getpid()), true); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cli, err := net.Dial("tcp", ln.Addr().String()) // after Track: sockops adds it to the sockhash
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	existing := kmsg.Header{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")}
	long := strings.Repeat("v", 200) // a two-byte record length; a 40-byte value makes one grow to two
	null := "<null>"
	txn := "txn-1"
	injected := []struct {
		name string
		spec produceSpec
	}{
		{"v3 one record", produceSpec{version: 3, recs: []kmsg.Record{record("", "hello")}}},
		{"v7 sarama-era, keyed", produceSpec{version: 7, recs: []kmsg.Record{record("k1", "one"), record("k2", "two")}}},
		{"v8 headers kept", produceSpec{version: 8, recs: []kmsg.Record{record("", "x", kmsg.Header{Key: "a", Value: []byte("b")}, kmsg.Header{Key: "tracestate", Value: nil})}}},
		{"v9 flexible", produceSpec{version: 9, recs: []kmsg.Record{record("", "flex")}}},
		{"v11 three partitions", produceSpec{version: 11, parts: 3, recs: []kmsg.Record{record("", "a"), record("key", long)}}},
		{"v12 transactional id", produceSpec{version: 12, txnID: &txn, recs: []kmsg.Record{record("", strings.Repeat("w", 40))}}},
		{"v13 topic id", produceSpec{version: 13, recs: []kmsg.Record{record("", "by id")}}},
		{"v10 null client id", produceSpec{version: 10, clientID: &null, recs: []kmsg.Record{record("", "anon")}}},
		{"v8 null key and value (6-byte record)", produceSpec{version: 8, recs: []kmsg.Record{{}, {Key: []byte("gone")}}}},
		{"v9 writev, size prefix apart (Java)", produceSpec{version: 9, sizeApart: true, recs: []kmsg.Record{record("k", "java")}}},
	}
	untouched := []struct {
		name string
		spec produceSpec
	}{
		{"already has traceparent", produceSpec{version: 9, recs: []kmsg.Record{record("", "a"), record("", "b", existing)}}},
		{"corrupt batch (bad CRC)", produceSpec{version: 7, badCRC: true, recs: []kmsg.Record{record("", "a")}}},
		{"compressed batch", produceSpec{version: 7, attrs: 1, recs: []kmsg.Record{record("", "not really gzip")}}},
		{"two topics", produceSpec{version: 9, topics: 2, recs: []kmsg.Record{record("", "a")}}},
		{"too large", produceSpec{version: 9, recs: []kmsg.Record{record("", strings.Repeat("z", 5000))}}},
		{"too many records", produceSpec{version: 7, recs: func() (r []kmsg.Record) {
			for i := 0; i < 40; i++ {
				r = append(r, record("", "m"))
			}
			return r
		}()}},
	}
	corr := int32(100)
	send := func(spec produceSpec, mutate func([]byte)) (sent, got []byte, ev capture.Event) {
		t.Helper()
		corr++
		sent = spec.encode(corr)
		if mutate != nil {
			mutate(sent)
			_, err := cli.Write(sent)
			if err != nil {
				t.Fatal(err)
			}
			return sent, readMessage(t, srv), ev
		}
		if spec.badCRC {
			i := bytes.Index(sent, []byte{0xff, 0xff, 0xff, 0xff, 2}) // leader epoch -1, magic 2
			sent[i+5] ^= 0xff
		}
		var err error
		if spec.sizeApart {
			bufs := net.Buffers{sent[:4], sent[4:]}
			_, err = bufs.WriteTo(cli)
		} else {
			_, err = cli.Write(sent)
		}
		if err != nil {
			t.Fatal(err)
		}
		got = readMessage(t, srv)
		prefix := sent[:12]
		ev = rec.waitData(t, "the produce write", func(e *capture.Event) bool {
			return e.Dir == probe.Send && e.PID == uint32(os.Getpid()) && bytes.HasPrefix(e.Data, prefix)
		})
		return sent, got, ev
	}
	for _, tc := range injected {
		t.Run(tc.name, func(t *testing.T) {
			sent, got, ev := send(tc.spec, nil)
			if !ev.Injected || ev.CtxKind != capture.CtxClient || !ev.Ctx.IsValid() {
				t.Fatalf("event: injected=%v kind=%v ctx=%v", ev.Injected, ev.CtxKind, ev.Ctx)
			}
			if !bytes.Equal(ev.Data, sent) {
				t.Errorf("the event must hold the bytes the process wrote")
			}
			want := fmt.Sprintf("00-%s-%s-%s", ev.Ctx.TraceID(), ev.Ctx.SpanID(), ev.Ctx.TraceFlags())
			_, orig := decodeProduce(t, sent)
			req, batches := decodeProduce(t, got)
			if err := checkInjected(orig, batches, want); err != nil {
				t.Fatal(err)
			}
			// Everything outside the records is as sent.
			sreq, _ := decodeProduce(t, sent)
			for ti := range req.Topics {
				for pi := range req.Topics[ti].Partitions {
					req.Topics[ti].Partitions[pi].Records = nil
					sreq.Topics[ti].Partitions[pi].Records = nil
				}
			}
			if a, b := req.AppendTo(nil), sreq.AppendTo(nil); !bytes.Equal(a, b) {
				t.Errorf("fields outside the records changed")
			}
		})
	}
	for _, tc := range untouched {
		t.Run(tc.name, func(t *testing.T) {
			sent, got, _ := send(tc.spec, nil)
			if !bytes.Equal(sent, got) {
				t.Fatalf("the kernel changed a request it must leave alone:\n%s", diffBytes(sent, got))
			}
		})
	}
	t.Run("while serving a request", func(t *testing.T) {
		// This goroutine reads a request carrying a traceparent, then
		// produces: the PRODUCER span is a child of that request's span.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		hcli, hsrv := pair(t, "tcp", "127.0.0.1:0")
		const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
		if _, err := hcli.Write([]byte("GET /produce HTTP/1.1\r\nHost: x\r\ntraceparent: 00-" + trace + "-00f067aa0ba902b7-01\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		if _, err := hsrv.Read(buf); err != nil {
			t.Fatal(err)
		}
		srvEv := rec.waitData(t, "the request read", func(e *capture.Event) bool {
			return e.Dir == probe.Recv && e.CtxKind == capture.CtxServer && e.Ctx.TraceID().String() == trace
		})
		_, got, ev := send(produceSpec{version: 9, recs: []kmsg.Record{record("", "served")}}, nil)
		if !ev.Injected || ev.Ctx.TraceID().String() != trace || ev.Parent.SpanID() != srvEv.Ctx.SpanID() {
			t.Fatalf("produce ctx %v parent %v injected %v; want a child of %v", ev.Ctx, ev.Parent, ev.Injected, srvEv.Ctx)
		}
		_, recs := decodeProduce(t, got)
		want := fmt.Sprintf("00-%s-%s-01", trace, ev.Ctx.SpanID())
		if tp := recs[0][0].Headers[0]; string(tp.Value) != want {
			t.Errorf("traceparent %q, want %q", tp.Value, want)
		}
	})
	t.Run("mutations", func(t *testing.T) { mutations(t, send) })
	k, err := c.KafkaCounters()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel counters %+v", k)
	if k.Injected < uint64(len(injected)) || k.HadTraceparent != 1 || k.Untouched < 4 {
		t.Errorf("counters %+v", k)
	}
}

// mutations changes one byte (past the size) of valid requests, with the
// batch CRC left wrong or made right again, and checks the kernel either
// passes the request exactly as written or rewrites one a broker's decoder
// accepts into a correct rewrite: never anything in between.
func mutations(t *testing.T, send func(produceSpec, func([]byte)) ([]byte, []byte, capture.Event)) {
	specs := []produceSpec{
		{version: 7, recs: []kmsg.Record{record("k", "one"), record("", "two", kmsg.Header{Key: "h", Value: []byte("v")})}},
		{version: 9, recs: []kmsg.Record{record("", "flexible")}},
		{version: 13, parts: 2, recs: []kmsg.Record{record("key", "by id")}},
	}
	rng := rand.New(rand.NewPCG(5, 1))
	rewritten := 0
	for i := 0; i < 400; i++ {
		spec := specs[i%len(specs)]
		batch := encodeBatch(spec.recs, 0)
		var pos int
		var val byte
		fixCRC := rng.IntN(2) == 0
		sent, got, _ := send(spec, func(b []byte) {
			pos, val = 4+rng.IntN(len(b)-4), byte(rng.IntN(256))
			b[pos] = val
			if at := bytes.LastIndex(b, batch[:17]); fixCRC && at >= 0 && at+len(batch) <= len(b) {
				binary.BigEndian.PutUint32(b[at+17:], crc32.Checksum(b[at+21:at+len(batch)], castagnoli))
			}
		})
		if bytes.Equal(sent, got) {
			continue
		}
		rewritten++
		_, orig, err := parseProduce(sent)
		if err != nil {
			t.Fatalf("byte %d = %#x (crc fixed %v): the kernel rewrote a request a broker rejects (%v)", pos, val, fixCRC, err)
		}
		_, recs, err := parseProduce(got)
		if err != nil {
			t.Fatalf("byte %d = %#x: rewrite does not decode: %v", pos, val, err)
		}
		tp := recs[0][0].Headers[len(recs[0][0].Headers)-1].Value
		if err := checkInjected(orig, recs, string(tp)); err != nil || len(tp) != 55 {
			t.Fatalf("byte %d = %#x: %v (traceparent %q)", pos, val, err, tp)
		}
	}
	t.Logf("%d of 400 mutated requests rewritten, the rest passed as written", rewritten)
	if rewritten == 0 {
		t.Errorf("no mutated request was rewritten: the check proves nothing")
	}
}

// checkInjected: got holds the records of orig, each with one more header,
// the last, traceparent = want.
func checkInjected(orig, got [][]kmsg.Record, want string) error {
	if len(got) != len(orig) {
		return fmt.Errorf("%d batches, sent %d", len(got), len(orig))
	}
	for b := range got {
		if len(got[b]) != len(orig[b]) {
			return fmt.Errorf("batch %d: %d records, sent %d", b, len(got[b]), len(orig[b]))
		}
		for i, r := range got[b] {
			o := orig[b][i]
			if !bytes.Equal(r.Key, o.Key) || !bytes.Equal(r.Value, o.Value) || (r.Key == nil) != (o.Key == nil) ||
				(r.Value == nil) != (o.Value == nil) || r.Attributes != o.Attributes ||
				r.OffsetDelta != o.OffsetDelta || r.TimestampDelta64 != o.TimestampDelta64 {
				return fmt.Errorf("batch %d record %d changed: %+v, sent %+v", b, i, r, o)
			}
			if len(r.Headers) != len(o.Headers)+1 {
				return fmt.Errorf("batch %d record %d: %d headers, sent %d", b, i, len(r.Headers), len(o.Headers))
			}
			for h := range o.Headers {
				if r.Headers[h].Key != o.Headers[h].Key || !bytes.Equal(r.Headers[h].Value, o.Headers[h].Value) {
					return fmt.Errorf("batch %d record %d: header %d changed", b, i, h)
				}
			}
			if last := r.Headers[len(r.Headers)-1]; last.Key != "traceparent" || string(last.Value) != want {
				return fmt.Errorf("added header %q=%q, want traceparent=%q", last.Key, last.Value, want)
			}
		}
	}
	return nil
}

func diffBytes(a, b []byte) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("first difference at %d of %d/%d bytes", i, len(a), len(b))
		}
	}
	return fmt.Sprintf("lengths %d and %d", len(a), len(b))
}
