package probetest

import (
	"strings"
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"go.opentelemetry.io/otel/attribute"
)

// Attr returns span attribute k, if present.
func Attr(sp probe.Span, k attribute.Key) (attribute.Value, bool) {
	for _, kv := range sp.Attrs {
		if kv.Key == k {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// WantStr reports an error unless attribute k is present and emits want.
func WantStr(t testing.TB, sp probe.Span, k attribute.Key, want string) {
	t.Helper()
	v, ok := Attr(sp, k)
	if !ok || v.Emit() != want {
		t.Errorf("%s: %s = %q (present %v), want %q", sp.Name, k, v.Emit(), ok, want)
	}
}

// WantInt reports an error unless attribute k is present and equals want.
func WantInt(t testing.TB, sp probe.Span, k attribute.Key, want int64) {
	t.Helper()
	v, ok := Attr(sp, k)
	if !ok || v.AsInt64() != want {
		t.Errorf("%s: %s = %v (present %v), want %d", sp.Name, k, v.Emit(), ok, want)
	}
}

// WantAbsent reports an error when attribute k is present.
func WantAbsent(t testing.TB, sp probe.Span, k attribute.Key) {
	t.Helper()
	if v, ok := Attr(sp, k); ok {
		t.Errorf("%s: %s = %v, want absent", sp.Name, k, v.Emit())
	}
}

// CheckTimes reports every span that ends before it starts.
func CheckTimes(t testing.TB, spans []probe.Span) {
	t.Helper()
	for _, sp := range spans {
		if sp.End.Before(sp.Start) {
			t.Errorf("%s: End %v before Start %v", sp.Name, sp.End, sp.Start)
		}
	}
}

// Names lists the spans' names in order.
func Names(spans []probe.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

// WantNames stops the test unless the spans are named want, in order.
func WantNames(t testing.TB, spans []probe.Span, want ...string) {
	t.Helper()
	got := Names(spans)
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("spans %q, want %q", got, want)
	}
}
