package http

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// errNotObserved is error.type for a request whose response never showed up.
const errNotObserved = "response_not_observed"

// maxAttrs bounds the attributes of one span (a server span of an _OTHER
// method with a query, a body, a failure and every address has 18).
const maxAttrs = 20

// buildSpan turns a request (answered or not) into a span ending at end.
func (p *parser) buildSpan(r *pending, end time.Time) probe.Span {
	conn, h := &p.conn, &r.h
	if end.Before(r.from.start) {
		end = r.from.start
	}
	sp := probe.Span{
		PID:   conn.PID,
		TID:   r.from.tid,
		Kind:  r.kind,
		Start: r.from.start,
		End:   end,
	}
	t := splitTarget(h.method, h.target)

	// Appended to the parser's arena, reused from one Feed to the next:
	// Attrs live as long as the returned spans (probe.Parser). Allocated
	// per span they were nine tenths of the agent's allocated bytes, and
	// with their pointers most of its GC work.
	from := len(p.attrs)
	attrs := slices.Grow(p.attrs, maxAttrs)
	method := h.method
	if isKnownMethod(method) {
		attrs = append(attrs, semconv.HTTPRequestMethodKey.String(method))
	} else {
		attrs = append(attrs, semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginalKey.String(method))
		method = "HTTP" // semconv span name for _OTHER
	}
	var route string
	sp.Name, route = p.spanName(method, t)

	attrs = append(attrs, semconv.URLSchemeKey.String("http"))
	if t.hasPath {
		attrs = append(attrs, semconv.URLPathKey.String(t.path))
	}
	if t.query != "" {
		attrs = append(attrs, semconv.URLQueryKey.String(RedactQuery(t.query)))
	}
	if h.version != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersionKey.String(h.version))
	}
	if h.userAgent != "" {
		attrs = append(attrs, semconv.UserAgentOriginalKey.String(h.userAgent))
	}
	if r.reqBodyKnown && (h.contentLength >= 0 || h.chunked) {
		attrs = append(attrs, semconv.HTTPRequestBodySizeKey.Int64(r.reqBody))
	}
	if r.answered {
		attrs = append(attrs, semconv.HTTPResponseStatusCodeKey.Int(r.status))
		if r.respBodyKnown {
			attrs = append(attrs, semconv.HTTPResponseBodySizeKey.Int64(r.respBody))
		}
	}

	// The authority the client asked for: Host header, else an absolute
	// target's authority, else the socket address.
	authority := h.host
	if authority == "" {
		authority = t.authority
	}
	peer, peerAddr := conn.Remote, p.peerAddr()
	if r.kind == trace.SpanKindServer {
		attrs = AppendServerAddr(attrs, authority, "http", conn.Local)
		if route != "" {
			attrs = append(attrs, semconv.HTTPRouteKey.String(route))
		}
		if peer.IsValid() {
			attrs = append(attrs,
				semconv.ClientAddressKey.String(peerAddr),
				semconv.ClientPortKey.Int(int(peer.Port())))
		}
		if r.from.ctx.IsValid() {
			// The kernel parsed the same header (or started the trace) and
			// propagates these ids downstream: they win.
			sp.SpanContext, sp.Parent = r.from.ctx, WithTraceState(r.from.parent, h.tracestate)
		} else {
			sp.Parent = WithTraceState(h.traceparent, h.tracestate)
		}
	} else {
		attrs = AppendServerAddr(attrs, authority, "http", conn.Remote)
		if full := p.urlFull(t, authority); full != "" {
			attrs = append(attrs, semconv.URLFullKey.String(full))
		}
		if route != "" {
			attrs = append(attrs, semconv.URLTemplateKey.String(route))
		}
		// The kernel's ids: the span it injected (or would have) and the
		// server span this call is made for.
		sp.SpanContext, sp.Parent = r.from.ctx, r.from.parent
		if h.tpSeen && !r.from.fwd {
			// The process propagated a context itself (the kernel then never
			// injects): this client span is the parent the downstream server
			// sees.
			if sc := WithTraceState(h.traceparent, h.tracestate); sc.IsValid() {
				sp.SpanContext = sc.WithRemote(false)
				if sp.Parent.TraceID() != sc.TraceID() {
					sp.Parent = trace.SpanContext{}
				}
			}
		}
	}
	if peer.IsValid() {
		attrs = append(attrs,
			semconv.NetworkPeerAddressKey.String(peerAddr),
			semconv.NetworkPeerPortKey.Int(int(peer.Port())))
	}

	switch {
	case !r.answered:
		sp.Error = true
		sp.StatusMessage = "response not observed"
		attrs = append(attrs, semconv.ErrorTypeKey.String(errNotObserved))
	case r.status >= 500 || (r.kind == trace.SpanKindClient && r.status >= 400):
		sp.Error = true
		attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(r.status)))
	}
	p.attrs = attrs
	sp.Attrs = attrs[from:len(attrs):len(attrs)] // an append by the consumer copies
	return sp
}

// spanName is "METHOD route" (route "" when the target has no path), made
// without allocating for the routes seen lately.
func (p *parser) spanName(method string, t target) (name, route string) {
	if !t.hasPath {
		return method, ""
	}
	last := &p.lastName
	if t.path != last.path || method != last.method { // usually the same (cached) strings: cheap
		b := append(p.scratch[:0], method...)
		b = append(b, ' ')
		b = appendRoute(b, t.path)
		p.scratch = b
		last.method, last.path, last.name = method, t.path, p.names.get(b)
	}
	return last.name, last.name[len(method)+1:]
}

// AppendServerAddr adds server.address/server.port from an HTTP authority
// (Host or :authority; userinfo dropped, port defaulting by scheme) or,
// without one, from the socket address. Shared with probes/http2.
func AppendServerAddr(attrs []attribute.KeyValue, authority, scheme string, sock netip.AddrPort) []attribute.KeyValue {
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		authority = authority[i+1:]
	}
	if authority != "" {
		host, port, ok := splitHostPort(authority)
		if !ok {
			port = 80
			if scheme == "https" {
				port = 443
			}
		}
		if host != "" {
			return append(attrs, semconv.ServerAddressKey.String(host), semconv.ServerPortKey.Int(port))
		}
	}
	if sock.IsValid() {
		attrs = append(attrs,
			semconv.ServerAddressKey.String(sock.Addr().Unmap().String()),
			semconv.ServerPortKey.Int(int(sock.Port())))
	}
	return attrs
}

// target is a request-target split into the parts semconv reports.
type target struct {
	authority string // absolute-form or authority-form (CONNECT) only
	path      string
	hasPath   bool
	query     string
	absolute  bool
	raw       string
}

// splitTarget handles origin-form "/p?q", absolute-form "http://h/p?q"
// (proxies), authority-form "h:443" (CONNECT) and "*" (RFC 9112 §3.2).
func splitTarget(method, s string) target {
	t := target{raw: s}
	if method == "CONNECT" {
		t.authority = s
		return t
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	if i := strings.Index(s, "://"); i > 0 && !strings.HasPrefix(s, "/") {
		t.absolute = true
		rest := s[i+3:]
		j := strings.IndexAny(rest, "/?")
		if j < 0 {
			t.authority, s = rest, "/"
		} else {
			t.authority, s = rest[:j], rest[j:]
			if strings.HasPrefix(s, "?") {
				s = "/" + s
			}
		}
	}
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s, t.query = s[:i], s[i+1:]
	}
	t.path, t.hasPath = s, true
	return t
}

// urlFull rebuilds the URL a client requested, without allocating for
// the URLs seen lately.
func (p *parser) urlFull(t target, authority string) string {
	if t.absolute {
		return redactURL(t.raw)
	}
	if !t.hasPath {
		return ""
	}
	b := append(p.scratch[:0], "http://"...)
	if authority != "" {
		b = append(b, authority...)
	} else if remote := p.conn.Remote; remote.IsValid() {
		b = remote.AppendTo(b)
	} else {
		return ""
	}
	b = append(b, t.path...)
	if t.query != "" {
		b = append(b, '?')
		b = append(b, RedactQuery(t.query)...)
	}
	p.scratch = b
	return p.urls.get(b)
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(s string) (string, int, bool) {
	host, portStr := s, ""
	if strings.HasPrefix(s, "[") {
		i := strings.IndexByte(s, ']')
		if i < 0 {
			return s, 0, false
		}
		host = s[1:i]
		if rest := s[i+1:]; strings.HasPrefix(rest, ":") {
			portStr = rest[1:]
		}
	} else if i := strings.LastIndexByte(s, ':'); i >= 0 && strings.Count(s, ":") == 1 {
		host, portStr = s[:i], s[i+1:]
	}
	if portStr == "" {
		return host, 0, false
	}
	p, err := strconv.Atoi(portStr)
	if err != nil || p <= 0 || p > 65535 {
		return host, 0, false
	}
	return host, p, true
}

// sensitiveParams are the query keys semconv says to redact in url.query
// and url.full.
var sensitiveParams = []string{"AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"}

// RedactQuery replaces the values of sensitiveParams in a query string.
// Shared with probes/http2.
func RedactQuery(q string) string {
	if !mayHaveSensitive(q) {
		return q // the common case, without splitting (allocating)
	}
	parts := strings.Split(q, "&")
	changed := false
	for i, kv := range parts {
		k, _, hasVal := strings.Cut(kv, "=")
		if !hasVal {
			continue
		}
		for _, s := range sensitiveParams {
			if k == s {
				parts[i] = k + "=REDACTED"
				changed = true
			}
		}
	}
	if !changed {
		return q
	}
	return strings.Join(parts, "&")
}

// mayHaveSensitive reports whether q contains a sensitive key followed by
// '=' anywhere: a cheap superset of what RedactQuery redacts.
func mayHaveSensitive(q string) bool {
	for _, s := range sensitiveParams {
		for rest := q; ; {
			i := strings.Index(rest, s)
			if i < 0 {
				break
			}
			if j := i + len(s); j < len(rest) && rest[j] == '=' {
				return true
			}
			rest = rest[i+1:]
		}
	}
	return false
}

func redactURL(u string) string {
	base, q, ok := strings.Cut(u, "?")
	if !ok {
		return u
	}
	return base + "?" + RedactQuery(q)
}

// WithTraceState attaches a request's tracestate to its (kernel-parsed)
// parent. Shared with probes/http2.
func WithTraceState(parent trace.SpanContext, tracestate string) trace.SpanContext {
	if !parent.IsValid() || tracestate == "" {
		return parent
	}
	if ts, err := trace.ParseTraceState(tracestate); err == nil {
		return parent.WithTraceState(ts)
	}
	return parent
}
