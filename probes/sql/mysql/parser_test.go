package mysql

import (
	"bytes"
	"strings"
	"testing"

	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
)

// handshake replays the first three records of a real capture (greeting,
// HandshakeResponse41, OK) so later packets run with real capabilities.
func handshake(t *testing.T, d *driver, file string) {
	t.Helper()
	for _, r := range probetest.LoadCapture(t, file)[:3] {
		dir := probe.Recv
		if r.Dir == '>' {
			dir = probe.Send
		}
		d.send(dir, r.Data)
	}
}

func query(seq byte, cmd byte, text string) []byte {
	return pkt(seq, append([]byte{cmd}, text...)...)
}

var (
	okPkt    = []byte{0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00} // 1 affected row
	eofPkt   = []byte{0xfe, 0x00, 0x00, 0x02, 0x00}
	colDef   = append([]byte{3, 'd', 'e', 'f'}, bytes.Repeat([]byte{0}, 20)...)
	testCtx  = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}, TraceFlags: 1})
	testPrnt = trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{3}, TraceFlags: 1})
)

func TestDetect(t *testing.T) {
	recs := probetest.LoadCapture(t, "mariadb-cli")
	chunk := func(dir probe.Direction, b []byte) *probe.Chunk {
		return &probe.Chunk{Dir: dir, Len: len(b), Data: b}
	}
	pr := New(sql.Options{})
	if pr.Name() != "mysql" {
		t.Errorf("Name %q", pr.Name())
	}
	yes := []*probe.Chunk{
		chunk(probe.Recv, recs[0].Data),
		chunk(probe.Send, recs[3].Data), // COM_QUERY
		chunk(probe.Send, query(0, comQuery, "\n  select 1")),
		chunk(probe.Send, query(0, comStmtPrepare, "INSERT INTO t VALUES (?)")),
		{Dir: probe.Send, Len: 4 + 1 + 5000, Data: query(0, comQuery, "SELECT "+strings.Repeat("x", 5000-7))[:100]}, // truncated
	}
	no := []*probe.Chunk{
		nil,
		chunk(probe.Send, recs[0].Data), // greeting written: we are the server
		chunk(probe.Recv, recs[3].Data),
		chunk(probe.Recv, recs[0].Data[:40]), // Len says 40: not the whole packet
		chunk(probe.Send, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")),
		chunk(probe.Send, []byte("POST /q HTTP/1.1\r\n\r\n")),
		chunk(probe.Send, []byte("\x00\x00\x00\x08\x04\xd2\x16\x2f")),                                     // PostgreSQL SSLRequest
		chunk(probe.Send, append([]byte("\x00\x00\x00\x29\x00\x03\x00\x00user\x00bob\x00"), 0)),           // startup
		chunk(probe.Send, append([]byte{'Q', 0, 0, 0, 13}, "SELECT 1;\x00"...)),                           // PostgreSQL query
		chunk(probe.Send, append(query(0, comQuery, "SELECT 1"), query(0, comQuery, "SELECT 2")...)),      // length mismatch
		chunk(probe.Send, query(1, comQuery, "SELECT 1")),                                                 // seq
		chunk(probe.Send, query(0, comQuery, "\x01\x02binary")),                                           // not text
		chunk(probe.Send, query(0, comQuery, "   ")),                                                      // empty
		chunk(probe.Recv, pkt(0, 0x0a, 'v', 1, 0)),                                                        // control char in version
		chunk(probe.Send, []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x00}), // TLS ClientHello
	}
	for i, c := range yes {
		if !pr.Detect(c) {
			t.Errorf("yes[%d] not detected", i)
		}
	}
	for i, c := range no {
		if pr.Detect(c) {
			t.Errorf("no[%d] detected", i)
		}
	}
}

// TestTimingAndContext: Start is the command's first chunk, End the chunk
// completing the response; TID and kernel ids come from the command.
func TestTimingAndContext(t *testing.T) {
	d := newDriver(sql.Options{})
	handshake(t, d, "go-mysql") // CLIENT_DEPRECATE_EOF
	q := query(0, comQuery, "SELECT id FROM users WHERE id = 42")
	first := d.feed(probe.Send, q[:10], -1, testCtx, testPrnt)
	d.send(probe.Send, q[10:])
	resp := append(pkt(1, 1), pkt(2, colDef...)...)
	resp = append(resp, pkt(3, 2, '4', '2')...)
	resp = append(resp, pkt(4, 0xfe, 0, 0, 0x02, 0, 0, 0)...)
	d.send(probe.Recv, resp[:7])
	if len(d.Spans) != 0 {
		t.Fatal("span before the response ended")
	}
	last := d.send(probe.Recv, resp[7:])
	if len(d.Spans) != 1 {
		t.Fatalf("%d spans", len(d.Spans))
	}
	sp := d.Spans[0]
	if sp.Name != "SELECT users" || !sp.Start.Equal(first.Start) || !sp.End.Equal(last.End) || sp.TID != first.TID {
		t.Errorf("span %q %v..%v tid %d; want %v..%v tid %d", sp.Name, sp.Start, sp.End, sp.TID, first.Start, last.End, first.TID)
	}
	if !sp.SpanContext.Equal(testCtx) || !sp.Parent.Equal(testPrnt) || sp.Kind != trace.SpanKindClient || sp.PID != clientConn.PID {
		t.Errorf("ids %v parent %v kind %v pid %d", sp.SpanContext, sp.Parent, sp.Kind, sp.PID)
	}
	probetest.WantStr(t, sp, semconv.DBQueryTextKey, "SELECT id FROM users WHERE id = ?")
	probetest.WantInt(t, sp, semconv.DBResponseReturnedRowsKey, 1)
	probetest.WantStr(t, sp, semconv.DBNamespaceKey, "test")
	probetest.WantStr(t, sp, semconv.ServerAddressKey, "10.0.0.2")
}

func TestIncompleteOnClose(t *testing.T) {
	d := newDriver(sql.Options{})
	handshake(t, d, "pymysql")
	d.send(probe.Send, query(0, comQuery, "UPDATE items SET price = 2"))
	d.Close()
	if len(d.Spans) != 1 || !d.Spans[0].Error || d.Spans[0].Name != "UPDATE items" {
		t.Fatalf("spans %+v", d.Spans)
	}
	probetest.WantStr(t, d.Spans[0], semconv.ErrorTypeKey, "response_not_observed")
	probetest.WantAbsent(t, d.Spans[0], semconv.DBResponseReturnedRowsKey)
}

func TestRawQueryText(t *testing.T) {
	d := newDriver(sql.Options{RawQueryText: true})
	handshake(t, d, "pymysql")
	d.send(probe.Send, query(0, comQuery, "DELETE FROM items WHERE name = 'pen'"))
	d.send(probe.Recv, pkt(1, okPkt...))
	if len(d.Spans) != 1 {
		t.Fatalf("%d spans", len(d.Spans))
	}
	probetest.WantStr(t, d.Spans[0], semconv.DBQueryTextKey, "DELETE FROM items WHERE name = 'pen'")
	probetest.WantInt(t, d.Spans[0], semconv.DBResponseReturnedRowsKey, 1)
}

// TestSSLRequest: after an SSLRequest the bytes are TLS records.
func TestSSLRequest(t *testing.T) {
	d := newDriver(sql.Options{})
	recs := probetest.LoadCapture(t, "mariadb-cli")
	d.send(probe.Recv, recs[0].Data)
	ssl := make([]byte, 32)
	ssl[0], ssl[1], ssl[2] = 0x8c, 0xaa, 0xbf // ... | CLIENT_SSL | PROTOCOL_41
	d.send(probe.Send, pkt(1, ssl...))
	d.send(probe.Send, query(0, comQuery, "SELECT 1")) // would be a TLS record
	d.send(probe.Recv, pkt(1, okPkt...))
	d.Close()
	if len(d.Spans) != 0 {
		t.Fatalf("spans after TLS: %+v", d.Spans)
	}
}

// TestNoHandshake: a connection opened before the agent, EOF-style result
// set, capabilities unknown.
func TestNoHandshake(t *testing.T) {
	d := newDriver(sql.Options{})
	d.send(probe.Send, query(0, comQuery, "SELECT a FROM t"))
	var resp []byte
	resp = append(resp, pkt(1, 1)...)
	resp = append(resp, pkt(2, colDef...)...)
	resp = append(resp, pkt(3, eofPkt...)...)
	resp = append(resp, pkt(4, 1, 'x')...)
	resp = append(resp, pkt(5, 1, 'y')...)
	resp = append(resp, pkt(6, eofPkt...)...)
	d.send(probe.Recv, resp)
	d.send(probe.Send, query(0, comQuery, "SELECT a FROM empty"))
	resp = append(pkt(1, 1), pkt(2, colDef...)...)
	resp = append(resp, pkt(3, eofPkt...)...)
	resp = append(resp, pkt(4, eofPkt...)...)
	d.send(probe.Recv, resp)
	if len(d.Spans) != 2 {
		t.Fatalf("%d spans", len(d.Spans))
	}
	probetest.WantStr(t, d.Spans[0], semconv.DBSystemNameKey, "mysql")
	probetest.WantAbsent(t, d.Spans[0], semconv.DBNamespaceKey)
	probetest.WantInt(t, d.Spans[0], semconv.DBResponseReturnedRowsKey, 2)
	probetest.WantInt(t, d.Spans[1], semconv.DBResponseReturnedRowsKey, 0)
}

// TestMultiPacket: a query of more than 16 MiB arrives as a 0xffffff
// packet plus a continuation; only a bounded prefix is kept, and the
// kernel's truncation (Len > len(Data)) is skipped by length.
func TestMultiPacket(t *testing.T) {
	d := newDriver(sql.Options{})
	handshake(t, d, "go-mysql")
	head := []byte{0xff, 0xff, 0xff, 0}
	body := append([]byte{comQuery}, "INSERT INTO blobs VALUES ('"...)
	body = append(body, bytes.Repeat([]byte("a"), 4000)...)
	// First syscall: the whole 16 MiB packet, of which 4 KiB was captured.
	first := append(append([]byte(nil), head...), body...)
	c := probe.Chunk{Dir: probe.Send, TID: 9, Start: d.Now, End: d.Now, Len: 4 + maxPhysical, Data: first}
	d.Spans = append(d.Spans, d.Parser.Feed(c)...)
	tail := append([]byte{100, 0, 0, 1}, bytes.Repeat([]byte("b"), 98)...)
	tail = append(tail, '\'', ')')
	d.send(probe.Send, tail)
	d.send(probe.Recv, pkt(1, okPkt...))
	if len(d.Spans) != 1 || d.Spans[0].Name != "INSERT blobs" || d.Spans[0].Error {
		t.Fatalf("spans %+v", d.Spans)
	}
	p := d.Parser.(*parser)
	if cap(p.fr[probe.Send].cur.data) > maxKeep {
		t.Errorf("kept %d bytes", cap(p.fr[probe.Send].cur.data))
	}
}

// TestPreparedUnknown: an execution of a statement prepared before the
// agent attached.
func TestPreparedUnknown(t *testing.T) {
	d := newDriver(sql.Options{})
	handshake(t, d, "go-mysql")
	d.send(probe.Send, pkt(0, comStmtExecute, 7, 0, 0, 0, 0, 1, 0, 0, 0))
	d.send(probe.Recv, pkt(1, okPkt...))
	if len(d.Spans) != 1 || d.Spans[0].Name != "EXECUTE" {
		t.Fatalf("spans %+v", d.Spans)
	}
	probetest.WantStr(t, d.Spans[0], semconv.DBOperationNameKey, "EXECUTE")
}

// TestPingAndClose: pings and statement closes make no spans and do not
// disturb matching.
func TestPingAndClose(t *testing.T) {
	d := newDriver(sql.Options{})
	handshake(t, d, "go-mysql")
	d.send(probe.Send, pkt(0, comPing))
	d.send(probe.Recv, pkt(1, okPkt...))
	d.send(probe.Send, pkt(0, comStmtClose, 1, 0, 0, 0))
	d.send(probe.Send, query(0, comQuery, "COMMIT"))
	d.send(probe.Recv, pkt(1, okPkt...))
	if len(d.Spans) != 1 || d.Spans[0].Name != "COMMIT" {
		t.Fatalf("spans %+v", d.Spans)
	}
}

// TestLocalInfile: the server asks for a file, the client uploads it.
func TestLocalInfile(t *testing.T) {
	d := newDriver(sql.Options{})
	handshake(t, d, "go-mysql")
	d.send(probe.Send, query(0, comQuery, "LOAD DATA LOCAL INFILE '/tmp/x' INTO TABLE items"))
	d.send(probe.Recv, pkt(1, append([]byte{0xfb}, "/tmp/x"...)...))
	d.send(probe.Send, pkt(2, []byte("1,pen\n2,ink\n")...))
	d.send(probe.Send, pkt(3))
	d.send(probe.Recv, pkt(4, 0x00, 0x02, 0x00, 0x02, 0x00, 0x00, 0x00))
	if len(d.Spans) != 1 || d.Spans[0].Error {
		t.Fatalf("spans %+v", d.Spans)
	}
	probetest.WantInt(t, d.Spans[0], semconv.DBResponseReturnedRowsKey, 2)
}

// TestLostResponse: a response the kernel captured only a prefix of ends
// at the next command, which is still matched.
func TestLostResponse(t *testing.T) {
	d := newDriver(sql.Options{})
	handshake(t, d, "go-mysql")
	d.send(probe.Send, query(0, comQuery, "SELECT * FROM big"))
	resp := append(pkt(1, 1), pkt(2, colDef...)...)
	for i := 0; i < 100; i++ {
		resp = append(resp, pkt(byte(3+i), 3, 'a', 'b', 'c')...)
	}
	resp = append(resp, pkt(103, 0xfe, 0, 0, 0x02, 0, 0, 0)...)
	last := d.feed(probe.Recv, resp, 50, noCtx, noCtx)
	d.send(probe.Send, query(0, comQuery, "SELECT 1"))
	d.send(probe.Recv, append(append(pkt(1, 1), pkt(2, colDef...)...), append(pkt(3, 1, '1'), pkt(4, 0xfe, 0, 0, 2, 0, 0, 0)...)...))
	if len(d.Spans) != 2 {
		t.Fatalf("%d spans", len(d.Spans))
	}
	if d.Spans[0].Name != "SELECT big" || !d.Spans[0].End.Equal(last.End) || d.Spans[0].Error {
		t.Errorf("lost: %q end %v err %v", d.Spans[0].Name, d.Spans[0].End, d.Spans[0].Error)
	}
	probetest.WantAbsent(t, d.Spans[0], semconv.DBResponseReturnedRowsKey)
	probetest.WantInt(t, d.Spans[1], semconv.DBResponseReturnedRowsKey, 1)
}
