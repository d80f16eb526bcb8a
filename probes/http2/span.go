package http2

import (
	"strconv"
	"strings"
	"time"

	httpprobe "github.com/tracer-agent/tracer-agent/probes/http"
	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// errNotObserved is error.type for a stream whose response never showed up.
const errNotObserved = "response_not_observed"

var knownMethods = map[string]bool{
	"GET": true, "HEAD": true, "POST": true, "PUT": true, "DELETE": true,
	"CONNECT": true, "OPTIONS": true, "TRACE": true, "PATCH": true, "QUERY": true,
}

func isGRPC(st *stream) bool {
	if hasGRPCType(st.req.contentType) || hasGRPCType(st.respCT) || st.grpc.code != "" {
		return true
	}
	// Request block decoded only in part (content-type lost): a POST to
	// "/pkg.Service/Method" is gRPC rather than a misleading HTTP route; so
	// is such a path whose method was lost too (gRPC C-core sends :path
	// before :method).
	return !st.reqComplete && st.req.contentType == "" && st.respCT == "" &&
		(st.req.method == "POST" || st.req.method == "") && grpcPath(st.req.path)
}

// grpcPath matches "/pkg.Service/Method" as gRPC forms paths from proto
// names (UpperCamel methods by convention).
func grpcPath(p string) bool {
	svc, m, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
	return ok && strings.HasPrefix(p, "/") && strings.Contains(svc, ".") && m != "" &&
		m[0] >= 'A' && m[0] <= 'Z' && !strings.ContainsAny(m, "/?")
}

func hasGRPCType(ct string) bool {
	return len(ct) >= 16 && strings.EqualFold(ct[:16], "application/grpc")
}

// buildSpan turns a stream (finished or not) into a span ending at end.
func buildSpan(conn probe.Conn, st *stream, end time.Time) probe.Span {
	if end.Before(st.from.start) {
		end = st.from.start
	}
	sp := probe.Span{PID: conn.PID, TID: st.from.tid, Kind: st.kind, Start: st.from.start, End: end}
	attrs := make([]attribute.KeyValue, 0, 20)
	if isGRPC(st) {
		attrs = grpcAttrs(&sp, st, attrs)
	} else {
		attrs = httpAttrs(&sp, st, attrs)
	}
	server := conn.Remote
	if st.kind == trace.SpanKindServer {
		server = conn.Local
	}
	attrs = httpprobe.AppendServerAddr(attrs, st.req.authority, st.req.scheme, server)
	peer := conn.Remote
	if st.kind == trace.SpanKindServer && peer.IsValid() {
		attrs = append(attrs,
			semconv.ClientAddressKey.String(peer.Addr().Unmap().String()),
			semconv.ClientPortKey.Int(int(peer.Port())))
	}
	if peer.IsValid() {
		attrs = append(attrs,
			semconv.NetworkPeerAddressKey.String(peer.Addr().Unmap().String()),
			semconv.NetworkPeerPortKey.Int(int(peer.Port())))
	}
	setContext(&sp, st)
	sp.Attrs = attrs
	return sp
}

// notObserved explains a stream that ended without a final status.
func notObserved(st *stream) string {
	switch {
	case st.rst && st.rstKnown:
		return h2ErrorName(st.rstCode)
	case st.goaway:
		return "goaway"
	}
	return errNotObserved
}

func httpAttrs(sp *probe.Span, st *stream, attrs []attribute.KeyValue) []attribute.KeyValue {
	h := &st.req
	sp.Name = "HTTP" // semconv name when the method is unknown (or unseen)
	path, query, hasPath := h.path, "", h.path != ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path, query = path[:i], path[i+1:]
	}
	route := ""
	if hasPath && h.method != "CONNECT" {
		route = httpprobe.Route(path)
	}
	if h.method != "" {
		if knownMethods[h.method] {
			attrs = append(attrs, semconv.HTTPRequestMethodKey.String(h.method))
			sp.Name = h.method
		} else {
			attrs = append(attrs, semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginalKey.String(h.method))
		}
	}
	if route != "" {
		sp.Name += " " + route
	}
	scheme := h.scheme
	if scheme == "" {
		scheme = "http"
	}
	attrs = append(attrs, semconv.URLSchemeKey.String(scheme))
	if route != "" {
		attrs = append(attrs, semconv.URLPathKey.String(path))
		if query != "" {
			attrs = append(attrs, semconv.URLQueryKey.String(httpprobe.RedactQuery(query)))
		}
	}
	attrs = append(attrs, semconv.NetworkProtocolVersionKey.String("2"))
	if h.userAgent != "" {
		attrs = append(attrs, semconv.UserAgentOriginalKey.String(h.userAgent))
	}
	if st.reqBody > 0 && st.reqBodyKnown {
		attrs = append(attrs, semconv.HTTPRequestBodySizeKey.Int64(st.reqBody))
	}
	if st.status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCodeKey.Int(st.status))
	}
	if st.respBody > 0 && st.respBodyKnown {
		attrs = append(attrs, semconv.HTTPResponseBodySizeKey.Int64(st.respBody))
	}
	if route != "" {
		if st.kind == trace.SpanKindServer {
			attrs = append(attrs, semconv.HTTPRouteKey.String(route))
		} else {
			attrs = append(attrs, semconv.URLTemplateKey.String(route))
			if h.authority != "" {
				u := scheme + "://" + h.authority + path
				if query != "" {
					u += "?" + httpprobe.RedactQuery(query)
				}
				attrs = append(attrs, semconv.URLFullKey.String(u))
			}
		}
	}
	switch {
	case !st.gotResp || (st.rst || st.goaway) && !st.respEnd:
		sp.Error = true
		sp.StatusMessage = "response not observed"
		attrs = append(attrs, semconv.ErrorTypeKey.String(notObserved(st)))
	case st.status >= 500 || st.kind == trace.SpanKindClient && st.status >= 400:
		sp.Error = true
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(st.status)))
	}
	return attrs
}

func grpcAttrs(sp *probe.Span, st *stream, attrs []attribute.KeyValue) []attribute.KeyValue {
	attrs = append(attrs, semconv.RPCSystemNameGRPC)
	method := strings.TrimPrefix(st.req.path, "/")
	if i := strings.IndexByte(method, '/'); i <= 0 || i == len(method)-1 {
		method = ""
	}
	code := grpcCode(st, sp.End.Sub(sp.Start))
	// semconv: rpc.method is "_OTHER" for methods the server does not know,
	// and the span is then named after the system.
	sp.Name = "grpc"
	switch {
	case method != "" && code == "UNIMPLEMENTED":
		attrs = append(attrs, semconv.RPCMethodKey.String("_OTHER"), semconv.RPCMethodOriginalKey.String(method))
	case method != "":
		attrs = append(attrs, semconv.RPCMethodKey.String(method))
		sp.Name = method
	}
	switch {
	case code != "":
		attrs = append(attrs, semconv.RPCResponseStatusCodeKey.String(code))
		if st.kind == trace.SpanKindServer && grpcServerError(code) || st.kind == trace.SpanKindClient && code != "OK" {
			sp.Error = true
			attrs = append(attrs, semconv.ErrorTypeKey.String(code))
			sp.StatusMessage = decodeGRPCMessage(st.grpc.message)
		}
	case !st.respEnd:
		sp.Error = true
		sp.StatusMessage = "response not observed"
		attrs = append(attrs, semconv.ErrorTypeKey.String(notObserved(st)))
	}
	return attrs
}

// grpcCode is the status the RPC ended with: grpc-status, else the mapping
// of a non-200 HTTP status, else of the RST_STREAM that cut it ("" when
// unknown, e.g. trailers lost).
func grpcCode(st *stream, elapsed time.Duration) string {
	switch {
	case st.grpc.code != "":
		return grpcCodeName(st.grpc.code)
	case st.status != 0 && st.status != 200:
		return grpcFromHTTP(st.status)
	case st.rst && st.rstKnown && !st.respEnd:
		if st.rstCode == 8 {
			// A client cancels with RST_STREAM(CANCEL) when its deadline
			// passes, and so does a server enforcing it (grpc-go): both
			// report DEADLINE_EXCEEDED. The timeout sent is what was left
			// then: allow some clock slack.
			if d, ok := parseGRPCTimeout(st.req.grpcTimeout); ok && elapsed >= d-d/10 {
				return "DEADLINE_EXCEEDED"
			}
		}
		return grpcFromRST(st.rstCode)
	}
	return ""
}

// setContext links the span like the HTTP/1 probe: the kernel's ids win;
// a server span's parent is the incoming traceparent; a client span that
// carries a traceparent the process set itself is that span.
func setContext(sp *probe.Span, st *stream) {
	h := &st.req
	ctx := st.from.ctx
	if !st.from.exact {
		ctx = StreamSpan(ctx, st.id)
	}
	if st.kind == trace.SpanKindServer {
		if ctx.IsValid() {
			sp.SpanContext, sp.Parent = ctx, httpprobe.WithTraceState(st.from.parent, h.tracestate)
		} else if h.traceparent != "" {
			sp.Parent = probe.ParseTraceparent(h.traceparent, h.tracestate)
		}
		return
	}
	if !st.from.exact && !st.from.parent.IsValid() {
		ctx = RootStreamTrace(ctx, st.id)
	}
	sp.SpanContext, sp.Parent = ctx, st.from.parent
	if h.traceparent == "" {
		return
	}
	if sc := probe.ParseTraceparent(h.traceparent, h.tracestate); sc.IsValid() {
		sp.SpanContext = sc.WithRemote(false)
		if sp.Parent.TraceID() != sc.TraceID() {
			sp.Parent = trace.SpanContext{}
		}
	}
}

// RootStreamTrace is the trace of stream id of a write that serves no
// request: each such stream is a root of its own, its trace id the
// write's with the last 4 bytes XOR id (big endian), as bpf/h2.h injects.
func RootStreamTrace(sc trace.SpanContext, id uint32) trace.SpanContext {
	if !sc.IsValid() {
		return sc
	}
	tid := sc.TraceID()
	xorStream(tid[12:], id)
	return sc.WithTraceID(tid)
}

// StreamSpan is the span context of stream id, given the kernel's ids for
// the syscall its HEADERS frame came in: one syscall may carry several
// streams, so the kernel (bpf/h2.h h2_derive) gives stream id the base span
// id with its last 4 bytes XOR id (big endian), and injects exactly that.
func StreamSpan(base trace.SpanContext, id uint32) trace.SpanContext {
	if !base.IsValid() {
		return base
	}
	sid := base.SpanID()
	xorStream(sid[4:], id)
	if !sid.IsValid() {
		return base
	}
	return base.WithSpanID(sid)
}

// xorStream XORs stream id (big endian) into b's 4 bytes.
func xorStream(b []byte, id uint32) {
	b[0] ^= byte(id >> 24)
	b[1] ^= byte(id >> 16)
	b[2] ^= byte(id >> 8)
	b[3] ^= byte(id)
}
