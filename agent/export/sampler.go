package export

import (
	"os"
	"strconv"
	"strings"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// samplerFromEnv is the sampler a TracerProvider would build from
// OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK keeps its parser
// private): spans are built without a provider (see span.go), but must be
// sampled exactly as one would. Unknown names and bad arguments fall back
// as the SDK does (the agent refuses them earlier, capture.ParseSampler).
func samplerFromEnv() sdktrace.Sampler {
	name := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() sdktrace.Sampler {
		v, err := strconv.ParseFloat(arg, 64)
		if arg == "" || err != nil || v < 0 || v > 1 {
			v = 1
		}
		return sdktrace.TraceIDRatioBased(v)
	}
	switch name {
	case "always_on":
		return sdktrace.AlwaysSample()
	case "always_off":
		return sdktrace.NeverSample()
	case "traceidratio":
		return ratio()
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample())
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(ratio())
	}
	return parentBasedAlwaysOn{sdktrace.ParentBased(sdktrace.AlwaysSample())} // the default
}

// parentBasedAlwaysOn marks the default sampler, whose decision buildSpan
// takes without building a parent context per span (two allocations).
type parentBasedAlwaysOn struct{ sdktrace.Sampler }

// sample is what ParentBased(AlwaysSample()) decides: a root is sampled, a
// child follows its parent's flag; the parent's trace state is kept.
func (parentBasedAlwaysOn) sample(parent trace.SpanContext) sdktrace.SamplingResult {
	if parent.IsValid() && !parent.IsSampled() {
		return sdktrace.SamplingResult{Decision: sdktrace.Drop, Tracestate: parent.TraceState()}
	}
	return sdktrace.SamplingResult{Decision: sdktrace.RecordAndSample, Tracestate: parent.TraceState()}
}
