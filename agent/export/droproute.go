package export

import (
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracer-agent/tracer-agent/internal/glob"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// routeFilter drops noise such as health checks: SERVER and CLIENT spans
// whose http.route or url.path matches one of the glob patterns.
type routeFilter struct {
	patterns []*glob.Glob
}

func newRouteFilter(patterns []string) (*routeFilter, error) {
	f := &routeFilter{}
	for _, p := range patterns {
		g, err := glob.Compile(p)
		if err != nil {
			return nil, fmt.Errorf("invalid --drop-route %q: %v", p, err)
		}
		f.patterns = append(f.patterns, g)
	}
	return f, nil
}

func (f *routeFilter) drop(s *probe.Span) bool {
	if len(f.patterns) == 0 || (s.Kind != trace.SpanKindServer && s.Kind != trace.SpanKindClient) {
		return false
	}
	for _, kv := range s.Attrs {
		if (kv.Key == semconv.HTTPRouteKey || kv.Key == semconv.URLPathKey) && kv.Value.Type() == attribute.STRING {
			v := kv.Value.AsString()
			for _, p := range f.patterns {
				if p.Match(v) {
					return true
				}
			}
		}
	}
	return false
}
