package procinfo

import (
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

const (
	envServiceName   = "OTEL_SERVICE_NAME"
	envResourceAttrs = "OTEL_RESOURCE_ATTRIBUTES"
)

// otelIdentity extracts the service name and the other resource attributes
// a process declares through the standard OpenTelemetry SDK variables, so
// the spans the agent emits for it carry the identity its own SDK would.
func otelIdentity(env []string) (service string, attrs []attribute.KeyValue) {
	var svcEnv, resEnv string
	for _, kv := range env {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch name {
		case envServiceName:
			svcEnv = val
		case envResourceAttrs:
			resEnv = val
		}
	}
	var resSvc string
	for _, kv := range ParseResourceAttributes(resEnv) {
		if kv.Key == semconv.ServiceNameKey {
			resSvc = kv.Value.AsString()
			continue
		}
		attrs = append(attrs, kv)
	}
	service = strings.TrimSpace(svcEnv)
	if service == "" {
		service = resSvc
	}
	return service, attrs
}

// ParseResourceAttributes parses an OTEL_RESOURCE_ATTRIBUTES value:
// comma-separated key=value pairs, keys and values trimmed and
// percent-decoded. Entries that are malformed (no '=', empty key, bad
// escape) are skipped rather than discarding the whole value: the agent
// prefers a partial identity to none. A later duplicate key wins.
func ParseResourceAttributes(s string) []attribute.KeyValue {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	var out []attribute.KeyValue
	index := map[string]int{}
	for _, entry := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(entry, "=")
		if !ok {
			continue
		}
		key, err := url.PathUnescape(strings.TrimSpace(k))
		if err != nil || key == "" {
			continue
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		kv := attribute.String(key, val)
		if i, dup := index[key]; dup {
			out[i] = kv
			continue
		}
		index[key] = len(out)
		out = append(out, kv)
	}
	return out
}
