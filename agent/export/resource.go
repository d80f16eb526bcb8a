package export

import (
	"context"
	"errors"
	"fmt"
	"os"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

const distroName = "tracer-agent"

// baseResource is what every traced process shares: the SDK identity, the
// host, the distro and the agent's own OTEL_RESOURCE_ATTRIBUTES (so a
// deployment can tag everything the agent emits). Detected once.
func baseResource(ctx context.Context, version string) (*resource.Resource, error) {
	det, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	// A malformed OTEL_RESOURCE_ATTRIBUTES yields a partial resource: keep
	// what parsed rather than refuse to run.
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, err
	}
	attrs := []attribute.KeyValue{semconv.TelemetryDistroName(distroName)}
	if version != "" {
		attrs = append(attrs, semconv.TelemetryDistroVersion(version))
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		attrs = append(attrs, semconv.HostName(h))
	}
	// Schemaless merges never conflict, whatever schema the detectors used.
	return resource.Merge(resource.NewSchemaless(det.Attributes()...), resource.NewSchemaless(attrs...))
}

// processResource layers one process's identity over the base. The
// process's own resource attributes win over the agent's, and the fixed
// identity keys (service.name above all) win over both.
func processResource(base *resource.Resource, info ServiceInfo) *resource.Resource {
	attrs := make([]attribute.KeyValue, 0, base.Len()+len(info.ResourceAttrs)+5)
	attrs = append(attrs, base.Attributes()...)
	attrs = append(attrs, info.ResourceAttrs...)
	name := info.ServiceName
	if name == "" {
		name = fmt.Sprintf("pid-%d", info.PID)
	}
	attrs = append(attrs,
		semconv.ServiceName(name),
		semconv.ProcessPID(int(info.PID)),
	)
	if info.ExecutableName != "" {
		attrs = append(attrs, semconv.ProcessExecutableName(info.ExecutableName))
	}
	if info.ExecutablePath != "" {
		attrs = append(attrs, semconv.ProcessExecutablePath(info.ExecutablePath))
	}
	if info.Command != "" {
		attrs = append(attrs, semconv.ProcessCommand(info.Command))
	}
	// NewWithAttributes keeps the last of duplicate keys: the order above is
	// the precedence.
	return resource.NewWithAttributes(semconv.SchemaURL, attrs...)
}
