package kafka

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/twmb/franz-go/pkg/kmsg"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Synthetic messages built with franz-go's kmsg cover versions the
// captured clients do not send.

const tpA = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-aaaaaaaaaaaaaaaa-01"

var topicID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func frameRequest(r kmsg.Request, corr int32) []byte {
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("synth")).AppendRequest(nil, r, corr)
}

func frameResponse(r kmsg.Response, corr int32) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 4), uint32(corr))
	if r.IsFlexible() && r.Key() != apiAPIVersions {
		b = append(b, 0)
	}
	b = r.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// recordV2 encodes one record with an optional traceparent header.
func recordV2(delta int32, tp string) []byte {
	rec := kmsg.Record{OffsetDelta: delta, Value: []byte("value")}
	if tp != "" {
		rec.Headers = []kmsg.Header{{Key: "traceparent", Value: []byte(tp)}}
	}
	body := rec.AppendTo(nil)[1:] // Length 0 encodes as one byte
	return append(binary.AppendVarint(nil, int64(len(body))), body...)
}

// batchV2 encodes a magic-2 batch; n overrides the record count when > 0.
func batchV2(base int64, attrs int16, n int32, recs ...[]byte) []byte {
	b := kmsg.RecordBatch{FirstOffset: base, Magic: 2, Attributes: attrs, NumRecords: int32(len(recs))}
	if n > 0 {
		b.NumRecords = n
	}
	for _, r := range recs {
		b.Records = append(b.Records, r...)
	}
	b.LastOffsetDelta = b.NumRecords - 1
	out := b.AppendTo(nil)
	binary.BigEndian.PutUint32(out[8:], uint32(len(out)-12))
	return out
}

// messageV1 encodes one legacy (magic 1) message set entry.
func messageV1(offset int64) []byte {
	m := []byte{0, 0, 0, 0, 1, 0} // crc, magic, attributes
	m = binary.BigEndian.AppendUint64(m, 0)
	m = binary.BigEndian.AppendUint32(m, 0xffffffff) // null key
	m = binary.BigEndian.AppendUint32(m, 1)
	m = append(m, 'v')
	out := binary.BigEndian.AppendUint64(nil, uint64(offset))
	out = binary.BigEndian.AppendUint32(out, uint32(len(m)))
	return append(out, m...)
}

func produceRequest(v int16, acks int16, records []byte) kmsg.Request {
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(v)
	req.Acks, req.TimeoutMillis = acks, 1000
	t := kmsg.NewProduceRequestTopic()
	t.Topic, t.TopicID = "t", topicID
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition, p.Records = 3, records
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	return req
}

func produceResponse(v int16, code int16, offset int64) kmsg.Response {
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(v)
	t := kmsg.NewProduceResponseTopic()
	t.Topic, t.TopicID = "t", topicID
	p := kmsg.NewProduceResponseTopicPartition()
	p.Partition, p.ErrorCode, p.BaseOffset = 3, code, offset
	t.Partitions = append(t.Partitions, p)
	resp.Topics = append(resp.Topics, t)
	return resp
}

func fetchRequest(v int16) kmsg.Request {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(v)
	return req
}

func fetchResponse(v int16, records []byte) kmsg.Response {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(v)
	t := kmsg.NewFetchResponseTopic()
	t.Topic, t.TopicID = "t", topicID
	empty := kmsg.NewFetchResponseTopicPartition()
	empty.Partition = 0
	p := kmsg.NewFetchResponseTopicPartition()
	p.Partition, p.HighWatermark, p.RecordBatches = 1, 100, records
	t.Partitions = append(t.Partitions, empty, p)
	resp.Topics = append(resp.Topics, t)
	return resp
}

func metadataResponse(v int16) kmsg.Response {
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(v)
	b := kmsg.NewMetadataResponseBroker()
	b.Host, b.Port = "broker", 9092
	resp.Brokers = append(resp.Brokers, b)
	t := kmsg.NewMetadataResponseTopic()
	t.Topic, t.TopicID = kmsg.StringPtr("t"), topicID
	p := kmsg.NewMetadataResponseTopicPartition()
	p.Replicas, p.ISR = []int32{1}, []int32{1}
	t.Partitions = append(t.Partitions, p)
	resp.Topics = append(resp.Topics, t)
	return resp
}

// exchange feeds request and response bytes on conn and returns spans.
func (d *driver) exchange(conn int, req, resp []byte) []probe.Span {
	n := len(d.spans)
	d.feed(conn, probe.Send, req, len(req))
	if resp != nil {
		d.feed(conn, probe.Recv, resp, len(resp))
	}
	return d.spans[n:]
}

func oneSpan(t *testing.T, spans []probe.Span) probe.Span {
	t.Helper()
	if len(spans) != 1 {
		for _, sp := range spans {
			t.Log(describe(sp))
		}
		t.Fatalf("got %d spans, want 1", len(spans))
	}
	return spans[0]
}

func TestProduceVersions(t *testing.T) {
	for v := int16(0); v <= 13; v++ {
		d := newDriver()
		if v >= 13 { // topic ids: learn the name from Metadata first
			md := kmsg.NewPtrMetadataRequest()
			md.SetVersion(12)
			d.exchange(0, frameRequest(md, 1), frameResponse(metadataResponse(12), 1))
		}
		records := batchV2(0, 0, 0, recordV2(0, tpA), recordV2(1, ""))
		wantCount, wantLinks := int64(2), 1
		if v < 3 {
			records, wantCount, wantLinks = append(messageV1(0), messageV1(1)...), 2, 0
		}
		sp := oneSpan(t, d.exchange(0, frameRequest(produceRequest(v, -1, records), 5), frameResponse(produceResponse(v, 0, 100), 5)))
		checkSpan(t, sp, want{prod, "t", "3", 100, int(wantCount), "synth", "", "", "", map[int]string{0: "", 1: "a"}[wantLinks]})
	}
}

func TestFetchVersions(t *testing.T) {
	for _, v := range []int16{0, 4, 7, 11, 12, 13, 16, 18} {
		d := newDriver()
		if v >= 13 { // learned on another connection of the process
			md := kmsg.NewPtrMetadataRequest()
			md.SetVersion(13)
			d.exchange(1, frameRequest(md, 1), frameResponse(metadataResponse(13), 1))
		}
		records := batchV2(50, 0, 0, recordV2(0, ""), recordV2(1, tpA))
		records = append(records, batchV2(52, attrControl, 0, recordV2(0, ""))...) // txn marker
		partial := batchV2(53, 0, 0, recordV2(0, ""))
		records = append(records, partial[:len(partial)-3]...) // broker's max-bytes cut
		sp := oneSpan(t, d.exchange(0, frameRequest(fetchRequest(v), 9), frameResponse(fetchResponse(v, records), 9)))
		checkSpan(t, sp, want{cons, "t", "1", 50, 2, "synth", "", "", "", "a"})
	}
}

// TestFetchUnknownTopicID: without Metadata the span has no destination.
func TestFetchUnknownTopicID(t *testing.T) {
	d := newDriver()
	sp := oneSpan(t, d.exchange(0, frameRequest(fetchRequest(13), 9), frameResponse(fetchResponse(13, batchV2(7, 0, 0, recordV2(0, tpA))), 9)))
	checkSpan(t, sp, want{cons, "", "1", 7, 1, "synth", "", "", "a", ""})
}

// TestFetchEmpty: a fetch that returned nothing is no span.
func TestFetchEmpty(t *testing.T) {
	d := newDriver()
	if spans := d.exchange(0, frameRequest(fetchRequest(11), 9), frameResponse(fetchResponse(11, nil), 9)); len(spans) != 0 {
		t.Fatalf("spans %v", spans)
	}
}

// TestCompressedBatch counts records from the header of a compressed batch.
func TestCompressedBatch(t *testing.T) {
	d := newDriver()
	b := batchV2(10, 1, 5, []byte("gzip bytes we do not inflate"))
	sp := oneSpan(t, d.exchange(0, frameRequest(fetchRequest(11), 9), frameResponse(fetchResponse(11, b), 9)))
	checkSpan(t, sp, want{cons, "t", "1", 10, 5, "synth", "", "", "", ""})
}

// TestProduceError maps error codes to names, unknown ones to numbers.
func TestProduceError(t *testing.T) {
	for code, name := range map[int16]string{10: "MESSAGE_TOO_LARGE", 999: "999"} {
		d := newDriver()
		sp := oneSpan(t, d.exchange(0, frameRequest(produceRequest(9, 1, batchV2(0, 0, 0, recordV2(0, ""))), 1), frameResponse(produceResponse(9, code, -1), 1)))
		checkSpan(t, sp, want{prod, "t", "3", -1, 1, "synth", "", name, "", ""})
	}
}

// TestProducerContext: the kernel's ids win; a record's traceparent is then
// a link, and times come from the request's first and the response's last chunk.
func TestProducerContext(t *testing.T) {
	kctx := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1})
	kparent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{3}, TraceFlags: 1})
	p := New(Options{}).NewParser(probe.Conn{PID: 1, Remote: brokerAddr})
	req := frameRequest(produceRequest(7, -1, batchV2(0, 0, 0, recordV2(0, tpA))), 1)
	resp := frameResponse(produceResponse(7, 0, 4), 1)
	at := func(ms int) time.Time { return probetest.T0.Add(time.Duration(ms) * time.Millisecond) }
	var spans []probe.Span
	spans = append(spans, p.Feed(probe.Chunk{Dir: probe.Send, TID: 3, Start: at(0), End: at(1), Len: 10, Data: req[:10], Ctx: kctx, Parent: kparent})...)
	spans = append(spans, p.Feed(probe.Chunk{Dir: probe.Send, TID: 4, Start: at(2), End: at(3), Len: len(req) - 10, Data: req[10:]})...)
	spans = append(spans, p.Feed(probe.Chunk{Dir: probe.Recv, TID: 3, Start: at(4), End: at(5), Len: 6, Data: resp[:6]})...)
	spans = append(spans, p.Feed(probe.Chunk{Dir: probe.Recv, TID: 3, Start: at(6), End: at(7), Len: len(resp) - 6, Data: resp[6:]})...)
	sp := oneSpan(t, spans)
	if !sp.SpanContext.Equal(kctx) || !sp.Parent.Equal(kparent) {
		t.Errorf("ctx %v parent %v", sp.SpanContext, sp.Parent)
	}
	if len(sp.Links) != 1 || sp.Links[0].TraceID().String() != digitTrace('a') {
		t.Errorf("links %v", sp.Links)
	}
	if !sp.Start.Equal(at(0)) || !sp.End.Equal(at(7)) || sp.TID != 3 {
		t.Errorf("times %v..%v tid %d", sp.Start.Sub(probetest.T0), sp.End.Sub(probetest.T0), sp.TID)
	}
}

// TestAcksZero: no response comes; the span ends with the request.
func TestAcksZero(t *testing.T) {
	d := newDriver()
	sp := oneSpan(t, d.exchange(0, frameRequest(produceRequest(9, 0, batchV2(0, 0, 0, recordV2(0, ""))), 1), nil))
	checkSpan(t, sp, want{prod, "t", "3", -1, 1, "synth", "", "", "", ""})
	if sp.End.Sub(sp.Start) != time.Millisecond {
		t.Errorf("duration %v", sp.End.Sub(sp.Start))
	}
}

// TestBigFetchTruncated: the kernel captured 8 KiB of a large response.
// The span counts the batches it saw, and framing skips the rest by size
// so the next response still pairs with its request.
func TestBigFetchTruncated(t *testing.T) {
	d := newDriver()
	var records []byte
	for i := range 150 {
		recs := make([][]byte, 0, 10)
		for j := range 10 {
			recs = append(recs, recordV2(int32(j), ""))
		}
		records = append(records, batchV2(int64(i*10), 0, 0, recs...)...)
	}
	resp := frameResponse(fetchResponse(11, records), 9)
	if len(resp) < 3*8192 {
		t.Fatalf("response only %d bytes", len(resp))
	}
	d.feed(0, probe.Send, frameRequest(fetchRequest(11), 9), 1<<20)
	d.feed(0, probe.Recv, resp, 8192)
	sp := oneSpan(t, d.spans)
	c, _ := probetest.Attr(sp, semconv.MessagingBatchMessageCountKey)
	if c.AsInt64() < 100 || c.AsInt64() >= 1500 { // a lower bound: only the captured batches count
		t.Errorf("count %d", c.AsInt64())
	}
	sp = oneSpan(t, d.exchange(0, frameRequest(produceRequest(7, -1, batchV2(0, 0, 0, recordV2(0, ""))), 10), frameResponse(produceResponse(7, 0, 77), 10)))
	checkSpan(t, sp, want{prod, "t", "3", 77, 1, "synth", "", "", "", ""})
}

// TestResync: bytes lost across a message boundary; the next request and
// its response are still paired, and the orphaned produce is reported.
func TestResync(t *testing.T) {
	d := newDriver()
	req := frameRequest(produceRequest(7, -1, batchV2(0, 0, 0, recordV2(0, ""))), 1)
	// One write holding the request and 50 unseen bytes more.
	d.feed(0, probe.Send, append(append([]byte(nil), req...), make([]byte, 50)...), len(req))
	d.feed(0, probe.Recv, []byte{0xff, 0xff, 0xff, 0xff, 0}, 5) // garbage size: response stream lost
	spans := d.exchange(0, frameRequest(produceRequest(7, -1, batchV2(0, 0, 0, recordV2(0, ""))), 2), frameResponse(produceResponse(7, 0, 5), 2))
	if len(spans) != 2 {
		t.Fatalf("spans %d", len(spans))
	}
	// The first request's response was lost: reported without an offset.
	checkSpan(t, spans[0], want{prod, "t", "3", -1, 1, "synth", "", "", "", ""})
	checkSpan(t, spans[1], want{prod, "t", "3", 5, 1, "synth", "", "", "", ""})
	d.close()
	if len(d.spans) != 2 {
		t.Fatalf("spans %d after close", len(d.spans))
	}
}

// TestGroupPerConnection: a group request names the consumer group of
// later fetches on the same connection.
func TestGroupPerConnection(t *testing.T) {
	d := newDriver()
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.SetVersion(4)
	hb.Group = "g1"
	d.exchange(0, frameRequest(hb, 1), nil)
	sp := oneSpan(t, d.exchange(0, frameRequest(fetchRequest(12), 2), frameResponse(fetchResponse(12, batchV2(0, 0, 0, recordV2(0, ""))), 2)))
	checkSpan(t, sp, want{cons, "t", "1", 0, 1, "synth", "g1", "", "", ""})
}

func TestGroupOf(t *testing.T) {
	mk := func(r kmsg.Request, v int16) *reader {
		r.SetVersion(v)
		return &reader{b: r.AppendTo(nil), flex: r.IsFlexible()}
	}
	oc := kmsg.NewPtrOffsetCommitRequest()
	oc.Group = "a"
	of := kmsg.NewPtrOffsetFetchRequest()
	of.Group = "b"
	of8 := kmsg.NewPtrOffsetFetchRequest()
	g := kmsg.NewOffsetFetchRequestGroup()
	g.Group = "c"
	of8.Groups = append(of8.Groups, g)
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey, fc.CoordinatorKeys = "d", []string{"d"}
	fcTxn := kmsg.NewPtrFindCoordinatorRequest()
	fcTxn.CoordinatorKey, fcTxn.CoordinatorType = "txn", 1
	txn := kmsg.NewPtrTxnOffsetCommitRequest()
	txn.TransactionalID, txn.Group = "x", "e"
	cgh := kmsg.NewPtrConsumerGroupHeartbeatRequest()
	cgh.Group = "f"
	for _, c := range []struct {
		key int16
		v   int16
		r   kmsg.Request
		g   string
	}{
		{apiOffsetCommit, 2, oc, "a"}, {apiOffsetCommit, 9, oc, "a"},
		{apiOffsetFetch, 1, of, "b"}, {apiOffsetFetch, 7, of, "b"}, {apiOffsetFetch, 9, of8, "c"},
		{apiFindCoordinator, 0, fc, "d"}, {apiFindCoordinator, 3, fc, "d"}, {apiFindCoordinator, 5, fc, "d"},
		{apiFindCoordinator, 2, fcTxn, ""},
		{apiTxnOffsetCommit, 3, txn, "e"}, {apiConsumerGroupHeartbeat, 0, cgh, "f"},
	} {
		if got := groupOf(c.key, c.v, mk(c.r, c.v)); got != c.g {
			t.Errorf("key %d v%d: %q want %q", c.key, c.v, got, c.g)
		}
	}
}
