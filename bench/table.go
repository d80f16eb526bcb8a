package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// row accumulates one workload's runs; the table shows medians, and ratios
// as the median of per-pair ratios (each pair ran back to back, so slow
// drift of a shared machine cancels within a pair).
type row struct {
	name, conns                 string
	wantSpans                   int
	rpsBase, rpsAgent, rpsRatio []float64
	p50Base, p50Agent           []float64 // ns
	p99Base, p99Agent, p99Ratio []float64
	cpuPerSpan                  []float64 // agent µs per span
	peakRSS                     []float64 // bytes
	ringDrops                   int64
	spans, requests             int64     // agent runs
	procBase, procAgent         []float64 // traced processes' µs per request
	errsBase, errsAgent         int64
	unselBase, unselAgent       []float64           // ns per write(2)
	kcost                       map[string]progCost // summed over agent runs
}

func (r *row) add(base, ag sample) {
	r.rpsBase = append(r.rpsBase, base.load.rps)
	r.rpsAgent = append(r.rpsAgent, ag.load.rps)
	r.rpsRatio = append(r.rpsRatio, ag.load.rps/base.load.rps)
	r.p50Base = append(r.p50Base, float64(base.load.p50))
	r.p50Agent = append(r.p50Agent, float64(ag.load.p50))
	r.p99Base = append(r.p99Base, float64(base.load.p99))
	r.p99Agent = append(r.p99Agent, float64(ag.load.p99))
	r.p99Ratio = append(r.p99Ratio, float64(ag.load.p99)/float64(base.load.p99))
	if ag.spans > 0 {
		r.cpuPerSpan = append(r.cpuPerSpan, float64(ag.agent.cpu.Microseconds())/float64(ag.spans))
	}
	r.peakRSS = append(r.peakRSS, float64(ag.agent.peakRSS))
	r.ringDrops += ag.agent.ringDrops
	r.spans += ag.spans
	r.requests += ag.load.requests
	r.procBase = append(r.procBase, float64(base.procCPU.Microseconds())/float64(base.load.requests))
	r.procAgent = append(r.procAgent, float64(ag.procCPU.Microseconds())/float64(ag.load.requests))
	r.errsBase += base.load.errors
	r.errsAgent += ag.load.errors
	addCosts(&r.kcost, ag.kcost)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func ratios(a, b []float64) []float64 {
	out := make([]float64, 0, len(a))
	for i := range a {
		if i < len(b) && a[i] > 0 {
			out = append(out, b[i]/a[i])
		}
	}
	return out
}

func fmtDur(ns float64) string {
	d := time.Duration(ns)
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	}
}

var header = []string{"workload", "conns", "req/s base", "req/s agent", "ratio", "p50 base", "p50 agent",
	"p99 base", "p99 agent", "p99 ratio", "agent CPU µs/span", "agent peak RSS MiB", "drops (ring+queue)",
	"spans/req (want N)", "traced proc CPU µs/req base→agent"}

func (r *row) cells() []string {
	if r.unselBase != nil {
		// Ops here are write(2) calls of an untraced process.
		ob, oa := 1e9/median(r.unselBase), 1e9/median(r.unselAgent)
		return []string{r.name, r.conns,
			fmt.Sprintf("%.0f w/s", ob), fmt.Sprintf("%.0f w/s", oa),
			fmt.Sprintf("%.3f", median(ratios(r.unselAgent, r.unselBase))),
			"-", "-", "-", "-", "-", "-",
			fmt.Sprintf("%.1f", median(r.peakRSS)/(1<<20)), fmt.Sprint(r.ringDrops), "-",
			fmt.Sprintf("%.0f→%.0f ns/write(2) (×%.3f)", median(r.unselBase), median(r.unselAgent), median(ratios(r.unselBase, r.unselAgent)))}
	}
	spr := "-"
	if r.requests > 0 {
		perReq := float64(r.spans) / float64(r.requests)
		// The span rate shows the load the drop count was measured at.
		spr = fmt.Sprintf("%.4f (%d/%d, want %d) at %.0f spans/s", perReq, r.spans, r.requests, r.wantSpans, perReq*median(r.rpsAgent))
	}
	cps := "-"
	if len(r.cpuPerSpan) > 0 {
		cps = fmt.Sprintf("%.1f", median(r.cpuPerSpan))
	}
	return []string{r.name, r.conns,
		fmt.Sprintf("%.0f", median(r.rpsBase)), fmt.Sprintf("%.0f", median(r.rpsAgent)),
		fmt.Sprintf("%.3f", median(r.rpsRatio)),
		fmtDur(median(r.p50Base)), fmtDur(median(r.p50Agent)),
		fmtDur(median(r.p99Base)), fmtDur(median(r.p99Agent)),
		fmt.Sprintf("%.2f", median(r.p99Ratio)),
		cps, fmt.Sprintf("%.1f", median(r.peakRSS)/(1<<20)), fmt.Sprint(r.ringDrops), spr,
		fmt.Sprintf("%.0f→%.0f", median(r.procBase), median(r.procAgent)),
	}
}

// printTable writes the table (Markdown-compatible) and a short legend.
func printTable(w io.Writer, cfg config, rows []row) {
	all := [][]string{header}
	for i := range rows {
		all = append(all, rows[i].cells())
	}
	width := make([]int, len(header))
	for _, c := range all {
		for i, s := range c {
			width[i] = max(width[i], len([]rune(s)))
		}
	}
	line := func(c []string) {
		parts := make([]string, len(c))
		for i, s := range c {
			parts[i] = s + strings.Repeat(" ", width[i]-len([]rune(s)))
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(parts, " | "))
	}
	line(all[0])
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = strings.Repeat("-", width[i])
	}
	line(sep)
	for _, c := range all[1:] {
		line(c)
	}
	fmt.Fprintf(w, "\n%d baseline/agent pairs per workload (A B A B ...), %v per run; medians, ratios = median of per-pair agent/base.\n", cfg.pairs, cfg.duration)
	fmt.Fprintf(w, "Saturation load: wrk -t%d -c%d (latency from wrk). Fixed-rate load: the bench's own open-loop Go generator at %d req/s over %d keep-alive conns (wrk2 not used), latency from each request's intended send time.\n", cfg.threads, cfg.conns, cfg.rate, cfg.conns)
	fmt.Fprintf(w, "Unselected: %d write(2) of 64 B on loopback TCP by a process the agent does not trace, without / with the agent loaded (tracing an idle process); w/s = writes per second.\n", cfg.syscalls)
	fmt.Fprintf(w, "spans/req = spans the agent exported (after SIGINT flush) ÷ responses the load generator completed, over all agent runs; wrk stops with up to conns requests in flight whose spans still count.\n")
	fmt.Fprintf(w, "Agent CPU: utime+stime from ready to exit ÷ spans. Traced proc CPU: front+back utime+stime during the load ÷ completed requests.\n")
	// What the baseline runs alone spread over: a ratio inside this spread
	// is not resolved by the run (this VM's p99 moves most).
	for _, r := range rows {
		if len(r.rpsBase) > 1 && r.unselBase == nil {
			rLo, rHi := slices.Min(r.rpsBase), slices.Max(r.rpsBase)
			pLo, pHi := slices.Min(r.p99Base), slices.Max(r.p99Base)
			fmt.Fprintf(w, "%s noise floor, baseline runs alone: req/s %.0f–%.0f (×%.2f), p99 %s–%s (×%.2f).\n",
				r.name, rLo, rHi, rHi/rLo, fmtDur(pLo), fmtDur(pHi), pHi/pLo)
		}
	}
	for _, r := range rows {
		if r.errsBase+r.errsAgent > 0 {
			fmt.Fprintf(w, "%s: failed requests (socket errors or non-2xx) base %d, agent %d.\n", r.name, r.errsBase, r.errsAgent)
		}
	}
}
