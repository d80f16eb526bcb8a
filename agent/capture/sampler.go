package capture

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Sampler is the head-sampling decision the kernel makes for the traces it
// starts and propagates, from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG
// (the kernel and the exporter must agree: a trace not sampled is never
// exported downstream either).
type Sampler struct {
	Ratio       float64 // of new traces sampled, 0..1
	ParentBased bool    // a parent's sampled flag decides
	set         bool    // made by ParseSampler; the zero Sampler means the default
}

// ParseSampler reads the standard variables; the default is
// parentbased_always_on.
func ParseSampler(name, arg string) (Sampler, error) {
	ratio := 1.0
	if arg != "" {
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 || math.IsNaN(r) {
			return Sampler{}, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio 0..1", arg)
		}
		ratio = r
	}
	s, err := parseSampler(strings.TrimSpace(name), ratio)
	s.set = err == nil
	return s, err
}

func parseSampler(name string, ratio float64) (Sampler, error) {
	switch name {
	case "", "parentbased_always_on":
		return Sampler{Ratio: 1, ParentBased: true}, nil
	case "always_on":
		return Sampler{Ratio: 1}, nil
	case "always_off":
		return Sampler{Ratio: 0}, nil
	case "parentbased_always_off":
		return Sampler{Ratio: 0, ParentBased: true}, nil
	case "traceidratio":
		return Sampler{Ratio: ratio}, nil
	case "parentbased_traceidratio":
		return Sampler{Ratio: ratio, ParentBased: true}, nil
	}
	return Sampler{}, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio or parentbased_* (the kernel decides sampling)", name)
}

// bound is the kernel's threshold, as the OTel SDKs' TraceIDRatioBased
// computes it: sampled when (last 8 bytes of the id, big endian) >> 1 < bound.
func (s Sampler) bound() uint64 {
	if !s.set || s.Ratio >= 1 {
		return 1 << 63
	}
	if s.Ratio <= 0 {
		return 0
	}
	return uint64(s.Ratio * (1 << 63))
}
