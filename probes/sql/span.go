package sql

import (
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// Options of the SQL probes.
type Options struct {
	// RawQueryText exports statements with their literals; by default
	// string and number literals become ? (they may hold personal data).
	RawQueryText bool
}

// Call is one database round trip a probe observed: a query (or prepared
// statement execution) and its result.
type Call struct {
	System    string // db.system.name: postgresql, mysql, mariadb
	Namespace string // db.namespace: the database
	Query     Query
	// Operation names calls without text (e.g. a protocol-level ping).
	Operation string
	Start     time.Time
	End       time.Time
	TID       uint32
	// Ctx and Parent are the kernel's ids for the call (probe.Chunk).
	Ctx, Parent trace.SpanContext
	Rows        int64  // rows returned or affected; < 0 unknown
	ErrCode     string // SQLSTATE or server error number; "" on success
	ErrMessage  string
	// Incomplete: the connection ended before the response.
	Incomplete bool
}

// Span turns a call on conn into a CLIENT span named
// "{db.operation.name} {db.collection.name}" (or the summary, the
// operation, or the system as fallbacks).
func (c Call) Span(conn probe.Conn) probe.Span {
	op := c.Query.Operation
	if op == "" {
		op = c.Operation
	}
	name := c.System
	switch {
	case op != "" && c.Query.Collection != "":
		name = op + " " + c.Query.Collection
	case c.Query.Summary != "":
		name = c.Query.Summary
	case op != "":
		name = op
	}
	end := c.End
	if end.Before(c.Start) {
		end = c.Start
	}
	attrs := make([]attribute.KeyValue, 0, 14)
	attrs = append(attrs, semconv.DBSystemNameKey.String(c.System))
	if c.Namespace != "" {
		attrs = append(attrs, semconv.DBNamespaceKey.String(c.Namespace))
	}
	if op != "" {
		attrs = append(attrs, semconv.DBOperationNameKey.String(op))
	}
	if c.Query.Collection != "" {
		attrs = append(attrs, semconv.DBCollectionNameKey.String(c.Query.Collection))
	}
	if c.Query.Text != "" {
		attrs = append(attrs, semconv.DBQueryTextKey.String(c.Query.Text))
	}
	if c.Query.Summary != "" {
		attrs = append(attrs, semconv.DBQuerySummaryKey.String(c.Query.Summary))
	}
	if c.Rows >= 0 {
		attrs = append(attrs, semconv.DBResponseReturnedRowsKey.Int64(c.Rows))
	}
	if r := conn.Remote; r.IsValid() {
		attrs = append(attrs,
			semconv.ServerAddressKey.String(r.Addr().Unmap().String()),
			semconv.ServerPortKey.Int(int(r.Port())),
			semconv.NetworkPeerAddressKey.String(r.Addr().Unmap().String()),
			semconv.NetworkPeerPortKey.Int(int(r.Port())))
	}
	sp := probe.Span{
		PID:         conn.PID,
		TID:         c.TID,
		Kind:        trace.SpanKindClient,
		Name:        name,
		Start:       c.Start,
		End:         end,
		SpanContext: c.Ctx,
		Parent:      c.Parent,
	}
	switch {
	case c.ErrCode != "":
		sp.Error = true
		sp.StatusMessage = c.ErrMessage
		attrs = append(attrs, semconv.DBResponseStatusCodeKey.String(c.ErrCode), semconv.ErrorTypeKey.String(c.ErrCode))
	case c.Incomplete:
		sp.Error = true
		attrs = append(attrs, semconv.ErrorTypeKey.String("response_not_observed"))
	}
	sp.Attrs = attrs
	return sp
}

// Itoa is strconv.Itoa, for probes formatting numeric error codes.
func Itoa(n int) string { return strconv.Itoa(n) }
