package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"github.com/tracer-agent/tracer-agent/probes/sql"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// open runs a startup exchange (database shop).
func open(d *driver) {
	d.feed(probe.Send, startupMsg("user", "app", "database", "shop"), -1)
	d.feed(probe.Recv, cat(authOK(), ready()), -1)
}

func wantNames(t *testing.T, d *driver, want ...string) {
	t.Helper()
	probetest.WantNames(t, d.Spans, want...)
}

func str(s probe.Span, k string) string {
	for _, kv := range s.Attrs {
		if string(kv.Key) == k {
			return kv.Value.Emit()
		}
	}
	return ""
}

func TestSSLAcceptedStopsParsing(t *testing.T) {
	for _, answer := range []string{"S", "G"} {
		d := newDriver()
		req := sslRequest()
		if answer == "G" {
			req = gssencRequest()
		}
		d.feed(probe.Send, req, -1)
		d.feed(probe.Recv, []byte(answer), -1)
		// What follows is TLS/GSS: even bytes that look like queries are ignored.
		d.feed(probe.Send, query("SELECT 1"), -1)
		d.feed(probe.Recv, cat(cmd("SELECT 1"), ready()), -1)
		d.Close()
		wantNames(t, d)
	}
}

func TestSSLRefusedThenStartup(t *testing.T) {
	d := newDriver()
	d.feed(probe.Send, gssencRequest(), -1)
	d.feed(probe.Recv, []byte("N"), -1)
	d.feed(probe.Send, sslRequest(), -1)
	d.feed(probe.Recv, []byte("N"), -1)
	d.feed(probe.Send, startupMsg("user", "alice"), -1) // no database: defaults to the user
	d.feed(probe.Recv, cat(authOK(), ready()), -1)
	d.feed(probe.Send, query("SELECT * FROM t"), -1)
	d.feed(probe.Recv, cat(rowDesc(), dataRow("x"), cmd("SELECT 1"), ready()), -1)
	wantNames(t, d, "SELECT t")
	if ns := str(d.Spans[0], string(semconv.DBNamespaceKey)); ns != "alice" {
		t.Fatalf("namespace %q", ns)
	}
}

func TestDetect(t *testing.T) {
	p := New(sql.Options{})
	if p.Name() != "postgresql" {
		t.Fatal(p.Name())
	}
	yes := [][]byte{
		startupMsg("user", "u", "database", "d"), sslRequest(), gssencRequest(),
		query("SELECT 1"), query("  select now()"), query(""),
		cat(parse("s1", "SELECT $1"), bind("", "s1"), execute("", 0), syncMsg()),
		parse("", "INSERT INTO t VALUES ($1)"),
	}
	for _, b := range yes {
		if !p.Detect(&probe.Chunk{Dir: probe.Send, Data: b, Len: len(b)}) {
			t.Errorf("Detect(%q) = false", b)
		}
	}
	bigQ := query(strings.Repeat("SELECT 1;", 5000))
	if !p.Detect(&probe.Chunk{Dir: probe.Send, Data: bigQ[:8192], Len: len(bigQ)}) {
		t.Error("truncated big query not detected")
	}
	mysqlQuery := cat([]byte{'Q', 1, 0, 0, 3}, []byte("SELECT * FROM users WHERE name = 'x'"), make([]byte, 300))
	no := [][]byte{
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		[]byte("POST /q HTTP/1.1\r\n\r\n"), []byte("PUT /x HTTP/1.1\r\n\r\n"), []byte("PATCH /x HTTP/1.1\r\n\r\n"),
		[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), []byte("QUERY /x HTTP/1.1\r\n\r\n"),
		mysqlQuery[:64], // MySQL COM_QUERY whose length's low byte is 'Q'
		{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc},    // TLS ClientHello
		{0x20, 0, 0, 1, 0x85, 0xa6, 0xff, 0x01, 0, 0, 0, 1, 0x21}, // MySQL handshake response
		query("SELECT 1")[:5], // too short to judge
		cat([]byte{'Q'}, u32(12), []byte("SELECT\x01\x02\x00")), // control bytes
		msg('P', cstr("s"), cstr("SELECT 1"), u16(2)),           // param count disagrees with length
	}
	for _, b := range no {
		if p.Detect(&probe.Chunk{Dir: probe.Send, Data: b, Len: len(b)}) {
			t.Errorf("Detect(%q) = true", b)
		}
	}
	if p.Detect(&probe.Chunk{Dir: probe.Recv, Data: query("SELECT 1"), Len: 14}) {
		t.Error("a received chunk detected")
	}
	if p.Detect(nil) {
		t.Error("nil detected")
	}
}

func TestMidStreamSimpleQuery(t *testing.T) {
	d := newDriver()
	d.feed(probe.Recv, cat(cmd("SELECT 1"), ready()), -1) // before any send: ignored
	d.feed(probe.Send, query("UPDATE accounts SET x = 1"), -1)
	d.feed(probe.Recv, cat(cmd("UPDATE 7"), ready()), -1)
	wantNames(t, d, "UPDATE accounts")
	if r := str(d.Spans[0], string(semconv.DBResponseReturnedRowsKey)); r != "7" {
		t.Fatalf("rows %s", r)
	}
	if ns := str(d.Spans[0], string(semconv.DBNamespaceKey)); ns != "" {
		t.Fatalf("namespace %q", ns)
	}
}

func TestPipelinedSyncs(t *testing.T) {
	d := newDriver()
	open(d)
	ctx := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{2}})
	// Three batches in flight before any reply; the unnamed statement is
	// replaced by each Parse, the named one persists.
	d.feed(probe.Send, cat(parse("named", "SELECT * FROM a WHERE id = $1"), syncMsg()), -1)
	d.feed(probe.Send, cat(parse("", "SELECT * FROM b"), bind("", ""), execute("", 0), syncMsg()), -1)
	start3 := d.Now
	d.Parser.Feed(probe.Chunk{Dir: probe.Send, TID: 99, Start: start3, End: start3.Add(time.Microsecond), Ctx: ctx,
		Data: cat(parse("", "DELETE FROM c"), bind("", ""), execute("", 0), bind("p", "named"), execute("p", 0), syncMsg()),
		Len:  len(cat(parse("", "DELETE FROM c"), bind("", ""), execute("", 0), bind("p", "named"), execute("p", 0), syncMsg()))})
	d.Now = d.Now.Add(time.Millisecond)
	d.feed(probe.Recv, cat(parseComplete(), ready(), parseComplete(), bindComplete(), dataRow("1"), dataRow("2"), cmd("SELECT 2"), ready()), -1)
	wantNames(t, d, "SELECT b")
	_, end := d.feed(probe.Recv, cat(parseComplete(), bindComplete(), cmd("DELETE 4"), bindComplete(), dataRow("x"), cmd("SELECT 1"), ready()), -1)
	wantNames(t, d, "SELECT b", "DELETE c", "SELECT a")
	for i, want := range []string{"2", "4", "1"} {
		if r := str(d.Spans[i], string(semconv.DBResponseReturnedRowsKey)); r != want {
			t.Errorf("span %d rows %s want %s", i, r, want)
		}
	}
	s := d.Spans[2]
	if s.TID != 99 || s.Start != start3 || s.End != end || !s.SpanContext.Equal(ctx) {
		t.Errorf("span %+v: want TID 99, Start %v, End %v, ctx %v", s, start3, end, ctx)
	}
	// Later: the named statement is executed again, then closed.
	d.feed(probe.Send, cat(bind("", "named"), execute("", 0), closeMsg('S', "named"), syncMsg()), -1)
	d.feed(probe.Recv, cat(bindComplete(), cmd("SELECT 0"), closeComplete(), ready()), -1)
	d.feed(probe.Send, cat(bind("", "named"), execute("", 0), syncMsg()), -1)
	d.feed(probe.Recv, cat(bindComplete(), cmd("SELECT 0"), ready()), -1)
	wantNames(t, d, "SELECT b", "DELETE c", "SELECT a", "SELECT a", "postgresql")
}

func TestPrepareOnlyNoSpan(t *testing.T) {
	d := newDriver()
	open(d)
	d.feed(probe.Send, cat(parse("s1", "SELECT * FROM t WHERE id = $1"), describe('S', "s1"), syncMsg()), -1)
	d.feed(probe.Recv, cat(parseComplete(), paramDesc(), rowDesc(), ready()), -1)
	d.feed(probe.Send, cat(parse("s2", "INSERT INTO t VALUES ($1)"), describe('S', "s2"), syncMsg()), -1)
	d.feed(probe.Recv, cat(parseComplete(), paramDesc(), noData(), ready()), -1)
	d.Close()
	wantNames(t, d)
}

func TestExtendedErrorSkipsToSync(t *testing.T) {
	d := newDriver()
	open(d)
	d.feed(probe.Send, cat(bind("", "unknown_stmt"), execute("", 0),
		parse("", "SELECT * FROM x"), bind("", ""), execute("", 0), syncMsg()), -1)
	d.feed(probe.Recv, cat(errResp("26000", `prepared statement "unknown_stmt" does not exist`), ready()), -1)
	// The next batch is matched normally.
	d.feed(probe.Send, cat(parse("", "SELECT * FROM y"), bind("", ""), execute("", 2), syncMsg()), -1)
	d.feed(probe.Recv, cat(parseComplete(), bindComplete(), dataRow("1"), dataRow("2"), suspended(), ready()), -1)
	d.feed(probe.Send, cat(parse("", ""), bind("", ""), execute("", 0), syncMsg()), -1)
	d.feed(probe.Recv, cat(parseComplete(), bindComplete(), emptyQuery(), ready()), -1)
	wantNames(t, d, "postgresql", "SELECT y", "postgresql")
	if c := str(d.Spans[0], string(semconv.DBResponseStatusCodeKey)); c != "26000" || !d.Spans[0].Error {
		t.Errorf("error span: code %q", c)
	}
	if r := str(d.Spans[1], string(semconv.DBResponseReturnedRowsKey)); r != "2" {
		t.Errorf("suspended portal rows %q", r)
	}
}

func TestIncompleteOnClose(t *testing.T) {
	d := newDriver()
	open(d)
	d.feed(probe.Send, query("SELECT pg_sleep(100)"), -1)
	d.feed(probe.Send, cat(parse("", "SELECT 1"), bind("", ""), execute("", 0), syncMsg()), -1)
	at := d.Close()
	wantNames(t, d, "SELECT", "SELECT")
	for _, s := range d.Spans {
		if !s.Error || s.End != at || str(s, string(semconv.ErrorTypeKey)) != "response_not_observed" {
			t.Errorf("span %+v not incomplete", s)
		}
	}
	if sp := d.Parser.Feed(probe.Chunk{Dir: probe.Send, Data: query("SELECT 1"), Len: 14}); len(sp) != 0 {
		t.Error("spans after Close")
	}
}

func TestDiscardAll(t *testing.T) {
	d := newDriver()
	open(d)
	d.feed(probe.Send, cat(parse("s", "SELECT * FROM t"), syncMsg()), -1)
	d.feed(probe.Recv, cat(parseComplete(), ready()), -1)
	d.feed(probe.Send, query("DISCARD ALL"), -1)
	d.feed(probe.Recv, cat(cmd("DISCARD ALL"), ready()), -1)
	d.feed(probe.Send, cat(bind("", "s"), execute("", 0), syncMsg()), -1)
	d.feed(probe.Recv, cat(bindComplete(), cmd("SELECT 0"), ready()), -1)
	wantNames(t, d, "DISCARD", "postgresql")
}

func TestRawQueryText(t *testing.T) {
	d := newDriverWith(sql.Options{RawQueryText: true})
	open(d)
	d.feed(probe.Send, query("SELECT * FROM t WHERE name = 'bob'"), -1)
	d.feed(probe.Recv, cat(cmd("SELECT 0"), ready()), -1)
	if q := str(d.Spans[0], string(semconv.DBQueryTextKey)); q != "SELECT * FROM t WHERE name = 'bob'" {
		t.Fatal(q)
	}
}

// A query larger than the capture: its text is a prefix, framing
// continues by length, the kept bytes stay bounded.
func TestHugeQueryTruncated(t *testing.T) {
	d := newDriver()
	open(d)
	big := query("INSERT INTO logs VALUES " + strings.Repeat("('aaaaaaaaaa', 1), ", 20000) + "('z', 2)")
	d.feed(probe.Send, big, 8192)
	d.feed(probe.Recv, cat(cmd("INSERT 0 20001"), ready()), -1)
	wantNames(t, d, "INSERT logs")
	if q := str(d.Spans[0], string(semconv.DBQueryTextKey)); !strings.HasPrefix(q, "INSERT INTO logs VALUES (?, ?), ") || len(q) > 2100 {
		t.Errorf("text %q", q)
	}
	// The same query split into many writes, each captured whole: the kept
	// body is capped at maxKeep.
	pp := newParser(clientConn, sql.Options{})
	pp.Feed(probe.Chunk{Dir: probe.Send, Data: startupMsg("user", "u"), Len: len(startupMsg("user", "u"))})
	for b := big; len(b) > 0; {
		n := min(len(b), 4096)
		pp.Feed(probe.Chunk{Dir: probe.Send, Data: b[:n], Len: n})
		if cap(pp.client.cur.body) > maxKeep {
			t.Fatalf("kept %d bytes", cap(pp.client.cur.body))
		}
		b = b[n:]
	}
	if len(pp.m.queue) != 2 {
		t.Fatalf("queue %d", len(pp.m.queue))
	}
}

// A result larger than the capture loses the reply's framing; the parser
// resynchronises at the next reply (or a chunk ending in ReadyForQuery).
func TestHugeResultTruncated(t *testing.T) {
	var rows []byte
	for i := 0; i < 3000; i++ {
		rows = append(rows, dataRow("row-payload-xxxxxxxxxxxxxxxx")...)
	}
	reply := cat(rowDesc(), rows, cmd("SELECT 3000"), ready())

	// One read holds the whole reply.
	d := newDriver()
	open(d)
	d.feed(probe.Send, query("SELECT * FROM big"), -1)
	_, end1 := d.feed(probe.Recv, reply, 8192)
	d.feed(probe.Send, query("SELECT * FROM small"), -1)
	d.feed(probe.Recv, cat(rowDesc(), dataRow("a"), cmd("SELECT 1"), ready()), -1)
	wantNames(t, d, "SELECT big", "SELECT small")
	if d.Spans[0].End != end1 {
		t.Errorf("big End %v want %v", d.Spans[0].End, end1)
	}

	// Reads of 64 KiB, each captured 8 KiB; the last ends with ReadyForQuery.
	d = newDriver()
	open(d)
	d.feed(probe.Send, query("SELECT * FROM big"), -1)
	var end time.Time
	for b := reply; len(b) > 0; {
		n := min(len(b), 65536)
		_, end = d.feed(probe.Recv, b[:n], 8192)
		b = b[n:]
	}
	// The last read was truncated too: the end shows with the next reply.
	wantNames(t, d)
	d.feed(probe.Send, query("SELECT * FROM small"), -1)
	d.feed(probe.Recv, cat(rowDesc(), dataRow("a"), cmd("SELECT 1"), ready()), -1)
	wantNames(t, d, "SELECT big", "SELECT small")
	if d.Spans[0].End != end {
		t.Errorf("End %v want %v", d.Spans[0].End, end)
	}

	// Reads of 110000 bytes: the last is captured whole and ends the reply.
	d = newDriver()
	open(d)
	d.feed(probe.Send, query("SELECT * FROM big"), -1)
	for b := reply; len(b) > 0; {
		n := min(len(b), 110000)
		_, end = d.feed(probe.Recv, b[:n], 8192)
		b = b[n:]
	}
	wantNames(t, d, "SELECT big")
	if d.Spans[0].End != end {
		t.Errorf("End %v want %v", d.Spans[0].End, end)
	}
}

func TestCopyExtended(t *testing.T) {
	d := newDriver()
	open(d)
	d.feed(probe.Send, cat(parse("", "COPY t FROM STDIN"), bind("", ""), execute("", 0), syncMsg()), -1)
	d.feed(probe.Recv, cat(parseComplete(), bindComplete(), msg('G', []byte{0}, u16(0))), -1)
	d.feed(probe.Send, cat(msg('d', []byte("1\n2\n")), msg('c')), -1)
	d.feed(probe.Recv, cat(cmd("COPY 2"), ready()), -1)
	wantNames(t, d, "COPY t")
	if r := str(d.Spans[0], string(semconv.DBResponseReturnedRowsKey)); r != "2" {
		t.Errorf("rows %s", r)
	}
}
