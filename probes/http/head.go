package http

import (
	"bytes"
	"strconv"
	"strings"
	"unsafe"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/trace"
)

// knownMethods are the methods semconv names; Detect and resync only trust
// these, while an in-sync stream also accepts other token methods (_OTHER).
var knownMethods = [...]string{"GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE"}

const respPrefix = "HTTP/1."

// knownMethodPrefix reports whether b starts with a known method and a space.
func knownMethodPrefix(b []byte) (string, bool) {
	for _, m := range &knownMethods { // &: ranging over the array copies it
		if len(b) > len(m) && b[len(m)] == ' ' && string(b[:len(m)]) == m {
			return m, true
		}
	}
	return "", false
}

func isKnownMethod(m string) bool {
	for _, k := range &knownMethods {
		if m == k {
			return true
		}
	}
	return false
}

// startsMessage reports whether a chunk's captured bytes begin an HTTP
// message: a known method and a space, or "HTTP/1.".
func startsMessage(b []byte) bool {
	_, ok := knownMethodPrefix(b)
	return ok || bytes.HasPrefix(b, []byte(respPrefix))
}

// mayStartMessage is startsMessage that also accepts a tiny syscall that is
// a proper prefix of one ("GE", "HTTP/"). Only used to leave the lost
// state, where a wrong guess costs nothing: the head then fails to parse.
func mayStartMessage(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	if startsMessage(b) || len(b) < len(respPrefix) && strings.HasPrefix(respPrefix, string(b)) {
		return true
	}
	for _, m := range &knownMethods {
		if len(b) <= len(m) && strings.HasPrefix(m, string(b)) {
			return true
		}
	}
	return false
}

// head is the part of a message's start line and headers the probe uses.
type head struct {
	response bool
	method   string // requests
	target   string // requests: request-target as sent
	version  string // "1.0" or "1.1"
	status   int    // responses

	host, userAgent, tracestate string
	// traceparent is the first non-empty traceparent header, parsed (its
	// tracestate is attached when the span is built); tpSeen says there was one.
	traceparent trace.SpanContext
	tpSeen      bool

	contentLength int64 // -1 when absent or unusable
	chunked       bool  // Transfer-Encoding's final coding is chunked
	otherTE       bool  // Transfer-Encoding present but not chunked-final
	partial       bool  // headers were cut short (lost bytes or size cap)
}

// parseHead parses a start line plus header lines. When partial, the last
// unterminated line is ignored: it may be cut in the middle. values turns
// the kept bytes into strings (clients repeat Host, User-Agent and often
// the target).
func parseHead(b []byte, partial bool, values *strCache) (head, bool) {
	h := head{contentLength: -1, partial: partial}
	first := true
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		var line []byte
		if i < 0 {
			if partial && !first {
				break
			}
			line, b = b, nil
			if partial && first {
				// Even a cut start line says which request or status this is.
				line = bytes.TrimSuffix(line, []byte("\r"))
				return h, parseStartLine(&h, line, values) || parseCutStartLine(&h, line, values)
			}
		} else {
			line, b = b[:i], b[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if first {
			if !parseStartLine(&h, line, values) {
				return h, false
			}
			first = false
			continue
		}
		if len(line) == 0 {
			break // end of headers
		}
		h.addHeader(line, values)
	}
	return h, !first
}

func parseStartLine(h *head, line []byte, values *strCache) bool {
	if bytes.HasPrefix(line, []byte(respPrefix)) {
		// HTTP/1.x SP 3DIGIT [SP reason]
		if len(line) < 12 || line[8] != ' ' || (len(line) > 12 && line[12] != ' ') {
			return false
		}
		v, ok := version(line[:8])
		if !ok {
			return false
		}
		code := 0
		for _, c := range line[9:12] {
			if c < '0' || c > '9' {
				return false
			}
			code = code*10 + int(c-'0')
		}
		if code < 100 {
			return false
		}
		h.response, h.version, h.status = true, v, code
		return true
	}
	// method SP request-target SP HTTP/1.x
	sp1 := bytes.IndexByte(line, ' ')
	sp2 := bytes.LastIndexByte(line, ' ')
	if sp1 <= 0 || sp2 <= sp1+1 {
		return false
	}
	for _, c := range line[:sp1] {
		if !isTchar(c) {
			return false
		}
	}
	v, ok := version(line[sp2+1:])
	if !ok {
		return false
	}
	h.method = methodString(line[:sp1])
	h.target = values.get(line[sp1+1 : sp2])
	h.version = v
	return true
}

// parseCutStartLine accepts a start line cut short by lost bytes: a
// request needs its method and the start of its target, a response its
// status code. A cut request's version stays unknown ("").
func parseCutStartLine(h *head, line []byte, values *strCache) bool {
	if bytes.HasPrefix(line, []byte(respPrefix)) {
		if len(line) < 12 {
			return false
		}
		if !parseStartLine(h, append(line[:12:12], " x"...), values) {
			return false
		}
		return true
	}
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp+1 >= len(line) {
		return false
	}
	for _, c := range line[:sp] {
		if !isTchar(c) {
			return false
		}
	}
	h.method = methodString(line[:sp])
	target := line[sp+1:]
	if i := bytes.IndexByte(target, ' '); i >= 0 {
		target = target[:i] // version itself was cut
	}
	h.target = values.get(target)
	return true
}

func version(b []byte) (string, bool) {
	switch string(b) {
	case "HTTP/1.1":
		return "1.1", true
	case "HTTP/1.0":
		return "1.0", true
	}
	return "", false
}

// addHeader records the headers that matter for framing and attributes.
// Names are case-insensitive; repeated headers keep the first value except
// where the RFC says how to combine them.
func (h *head) addHeader(line []byte, values *strCache) {
	if line[0] == ' ' || line[0] == '\t' {
		return // obsolete line folding: ignore the continuation
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return
	}
	name := line[:colon]
	raw := bytes.TrimSpace(line[colon+1:]) // a string only for kept values
	switch {
	case eqFold(name, "content-length"):
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 || (h.contentLength >= 0 && h.contentLength != n) {
			h.contentLength = -2 // conflicting or invalid: unusable
			return
		}
		if h.contentLength != -2 {
			h.contentLength = n
		}
	case eqFold(name, "transfer-encoding"):
		last := bytes.TrimSpace(raw[bytes.LastIndexByte(raw, ',')+1:])
		// A later header line overrides: only the final coding decides.
		h.chunked = bytes.EqualFold(last, []byte("chunked"))
		h.otherTE = !h.chunked
	case eqFold(name, "host"):
		setOnce(&h.host, raw, values)
	case eqFold(name, "user-agent"):
		setOnce(&h.userAgent, raw, values)
	case eqFold(name, "traceparent"):
		if !h.tpSeen && len(raw) > 0 {
			h.tpSeen = true
			// A view, not a copy: the parse keeps nothing of its input.
			h.traceparent = probe.ParseTraceparent(unsafe.String(&raw[0], len(raw)), "")
		}
	case eqFold(name, "tracestate"):
		if h.tracestate == "" {
			h.tracestate = string(raw)
		} else if len(raw) > 0 {
			h.tracestate += "," + string(raw) // multiple lines combine per W3C
		}
	}
}

// setOnce sets *dst to v unless already set.
func setOnce(dst *string, v []byte, values *strCache) {
	if *dst == "" {
		*dst = values.get(v)
	}
}

// methodString is the method as a string, without allocating for the
// known ones.
func methodString(b []byte) string {
	for _, m := range &knownMethods {
		if string(b) == m {
			return m
		}
	}
	return string(b)
}

func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
