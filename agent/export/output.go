package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// outputs resolves --output into which sinks to build.
func outputs(output string) (otlp, console bool, err error) {
	switch output {
	case "auto", "":
		if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			return true, false, nil
		}
		return false, true, nil
	case "otlp":
		return true, false, nil
	case "console":
		return false, true, nil
	case "both":
		return true, true, nil
	}
	return false, false, fmt.Errorf("invalid --output %q: want auto, otlp, console or both", output)
}

// buildExporter makes the one exporter all providers share.
func buildExporter(ctx context.Context, otlp, console bool, w io.Writer, quiet time.Duration, version string) (sdktrace.SpanExporter, *consoleExporter, error) {
	var exps []sdktrace.SpanExporter
	var con *consoleExporter
	if otlp {
		e, err := newOTLPSink(ctx, version)
		if err != nil {
			return nil, nil, fmt.Errorf("otlp exporter: %w", err)
		}
		exps = append(exps, e)
	}
	if console {
		con = newConsoleExporter(w, quiet)
		exps = append(exps, con)
	}
	if len(exps) == 1 {
		return exps[0], con, nil
	}
	return teeExporter(exps), con, nil
}

// newOTLPSink builds the agent's own OTLP/HTTP protobuf exporter from
// OTEL_EXPORTER_OTLP_*; for OTEL_EXPORTER_OTLP_PROTOCOL=http/json it falls
// back to the SDK's otlptracehttp, which also reads the variables itself.
func newOTLPSink(ctx context.Context, version string) (sdktrace.SpanExporter, error) {
	cfg, err := otlpConfigFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if cfg.json {
		return otlptracehttp.New(ctx)
	}
	return newOTLPExporter(cfg, version), nil
}

// teeExporter fans one batch out to several exporters (--output both).
type teeExporter []sdktrace.SpanExporter

func (t teeExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	var errs []error
	for _, e := range t {
		errs = append(errs, e.ExportSpans(ctx, spans))
	}
	return errors.Join(errs...)
}

func (t teeExporter) Shutdown(ctx context.Context) error {
	var errs []error
	for _, e := range t {
		errs = append(errs, e.Shutdown(ctx))
	}
	return errors.Join(errs...)
}

// countingExporter counts what the sink accepted and refused, for Stats.
type countingExporter struct {
	next         sdktrace.SpanExporter
	sent, failed atomic.Uint64
}

func (c *countingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := c.next.ExportSpans(ctx, spans)
	if err != nil {
		c.failed.Add(uint64(len(spans)))
	} else {
		c.sent.Add(uint64(len(spans)))
	}
	return err
}

func (c *countingExporter) Shutdown(ctx context.Context) error { return c.next.Shutdown(ctx) }
