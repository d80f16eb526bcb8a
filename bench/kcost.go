package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// progCost is what one kernel program of the agent cost: its runs and the
// time spent in them (BPF run-time statistics, enabled by -kcost).
type progCost struct {
	runs uint64
	time time.Duration
}

// enableKernelStats turns on BPF run-time statistics until the returned
// closer is closed (BPF_ENABLE_STATS: no sysctl left behind).
func enableKernelStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		return nil, fmt.Errorf("-kcost: enable BPF statistics: %w", err)
	}
	return c, nil
}

// agentProgCosts reads the statistics of the programs the agent pid holds
// (found through its fds, so other agents on the machine do not count),
// summed by program name.
func agentProgCosts(pid int) (map[string]progCost, error) {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]progCost{}
	seen := map[ebpf.ProgramID]bool{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		id, ok := fdinfoProgID(b)
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, ierr := p.Info()
		st, serr := p.Stats()
		p.Close()
		if ierr != nil || serr != nil {
			continue
		}
		c := out[info.Name]
		c.runs += st.RunCount
		c.time += st.Runtime
		out[info.Name] = c
	}
	return out, nil
}

// fdinfoProgID is the "prog_id:" of a BPF program fd's fdinfo.
func fdinfoProgID(b []byte) (ebpf.ProgramID, bool) {
	_, rest, ok := bytes.Cut(b, []byte("\nprog_id:"))
	if !ok {
		return 0, false
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 10, 32)
	return ebpf.ProgramID(n), err == nil
}

// addCosts accumulates one run's costs into a workload's.
func addCosts(dst *map[string]progCost, src map[string]progCost) {
	if *dst == nil {
		*dst = map[string]progCost{}
	}
	for name, c := range src {
		d := (*dst)[name]
		d.runs += c.runs
		d.time += c.time
		(*dst)[name] = d
	}
}

// printKernelCosts writes, per workload, each program's runs per request,
// ns per run and µs per request (the part of the traced processes' CPU
// spent in the agent's BPF programs), costliest first.
func printKernelCosts(w io.Writer, rows []row) {
	for _, r := range rows {
		if len(r.kcost) == 0 || r.requests == 0 {
			continue
		}
		names := make([]string, 0, len(r.kcost))
		var total time.Duration
		for n, c := range r.kcost {
			if c.runs > 0 {
				names = append(names, n)
				total += c.time
			}
		}
		slices.SortFunc(names, func(a, b string) int { return int(r.kcost[b].time - r.kcost[a].time) })
		req := float64(r.requests)
		fmt.Fprintf(w, "\nKernel programs, %s (%d requests): %.1f µs/req in BPF\n", r.name, r.requests, float64(total.Nanoseconds())/req/1e3)
		fmt.Fprintf(w, "| %-22s | %8s | %8s | %8s |\n", "program", "runs/req", "ns/run", "µs/req")
		for _, n := range names {
			c := r.kcost[n]
			fmt.Fprintf(w, "| %-22s | %8.2f | %8.0f | %8.2f |\n", n, float64(c.runs)/req,
				float64(c.time.Nanoseconds())/float64(c.runs), float64(c.time.Nanoseconds())/req/1e3)
		}
	}
}
