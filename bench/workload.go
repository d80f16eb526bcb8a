package main

import (
	"errors"
	"fmt"
	"time"
)

// workload is a front server whose handler makes one outbound call to a
// Go back server, driven by wrk (saturation) or by the fixed-rate generator.
type workload struct {
	name      string
	front     string // "go", "python", "node", "fastapi" or "nginx" (a proxy: no /call)
	rate      int    // 0: saturation with wrk
	wantSpans int    // front SERVER + front CLIENT + back SERVER
	agentArgs []string
}

func workloads(cfg config) []workload {
	return []workload{
		{name: "go-saturation", front: "go", wantSpans: 3},
		{name: fmt.Sprintf("go-%s", rateName(cfg.rate)), front: "go", rate: cfg.rate, wantSpans: 3},
		{name: "python-saturation", front: "python", wantSpans: 3},
		// Node's http server + http.get on a keep-alive agent of 4 sockets,
		// with the runtime helper (two sentinel syscalls per request) and
		// without: the helper's cost side by side.
		{name: "node-saturation", front: "node", wantSpans: 3},
		{name: "node-nohelper-saturation", front: "node", wantSpans: 3, agentArgs: []string{"--no-runtime-helpers"}},
		// FastAPI async endpoint on uvicorn, aiohttp client on a keep-alive
		// pool of 4, with its contexts followed (uprobes on every Context
		// copy and free) and without.
		{name: "fastapi-saturation", front: "fastapi", wantSpans: 3},
		{name: "fastapi-nohelper-saturation", front: "fastapi", wantSpans: 3, agentArgs: []string{"--no-runtime-helpers"}},
		// nginx proxy_pass with upstream keep-alive as the first hop: the
		// ngx_chain_writer uprobe links each upstream request.
		{name: "nginx-saturation", front: "nginx", wantSpans: 3},
	}
}

func workloadNames(rate int) []string {
	return []string{"go-saturation", "go-" + rateName(rate), "python-saturation", "node-saturation", "node-nohelper-saturation",
		"fastapi-saturation", "fastapi-nohelper-saturation", "nginx-saturation", "unselected"}
}

func rateName(rate int) string {
	if rate%1000 == 0 {
		return fmt.Sprintf("%dk", rate/1000)
	}
	return fmt.Sprint(rate)
}

// sample is one run's measurements.
type sample struct {
	load      loadResult
	procCPU   time.Duration // front+back utime+stime during the load
	spans     int64
	agent     agentStats
	kcost     map[string]progCost // -kcost: the agent's programs
	withAgent bool
}

// runOnce starts fresh servers (so every connection is opened under the
// same conditions, and with the agent, after it attached), optionally the
// agent on both, drives the load, and stops everything.
func runOnce(cfg config, w workload, goServer string, rcv *receiver, withAgent bool) (s sample, err error) {
	s.withAgent = withAgent
	back, err := startServer("go", goServer, "bench-back")
	if err != nil {
		return s, err
	}
	defer back.kill()
	var front server
	if w.front == "nginx" {
		front, err = startNginx(back.port)
	} else {
		front, err = startServer(w.front, goServer, "bench-front")
	}
	if err != nil {
		return s, err
	}
	defer front.kill()
	var a *agentRun
	if withAgent {
		if a, err = startAgent(cfg.agent, rcv, w.agentArgs, front.pid(), back.pid()); err != nil {
			return s, err
		}
		defer a.kill() // no-op once stopped
		if ready := map[string]string{"node": "node helper loaded", "fastapi": "python contexts followed"}[w.front]; ready != "" && len(w.agentArgs) == 0 {
			if _, err := a.waitFor(ready, 15*time.Second); err != nil {
				return s, err
			}
		}
	}
	rcv.take()
	pids := append(front.procs(), back.pid())
	cpu0, err := cpuTimes(pids...)
	if err != nil {
		return s, err
	}
	url := front.url("/call?url=" + back.url("/users/1"))
	if w.front == "nginx" {
		url = front.url("/users/1")
	}
	if w.rate > 0 {
		s.load, err = runFixedRate(url, w.rate, cfg.conns, cfg.duration)
	} else {
		s.load, err = runWrk(url, cfg.threads, cfg.conns, cfg.duration)
	}
	if err != nil {
		return s, err
	}
	cpu1, err := cpuTimes(pids...)
	if err != nil {
		return s, err
	}
	s.procCPU = cpu1 - cpu0
	if s.load.requests == 0 {
		return s, errors.New("no request completed")
	}
	if withAgent {
		if cfg.kcost {
			if s.kcost, err = agentProgCosts(a.pid()); err != nil {
				return s, err
			}
		}
		st, err := a.stop() // SIGINT: the agent flushes before exiting
		if err != nil {
			return s, err
		}
		s.agent = st
		s.spans = rcv.take()
		if cfg.verbose {
			logAgent(w.name, a.output(), s.spans, s.load.requests)
		}
	}
	return s, nil
}

// runWorkload alternates baseline and agent runs and collects a row.
func runWorkload(cfg config, w workload, goServer string, rcv *receiver) (row, error) {
	r := row{name: w.name, conns: fmt.Sprint(cfg.conns), wantSpans: w.wantSpans}
	if w.rate > 0 {
		r.name += " (open-loop)"
	}
	for i := range cfg.pairs {
		var pair [2]sample
		for j, withAgent := range []bool{false, true} {
			progress(fmt.Sprintf("%s: pair %d/%d, %s", w.name, i+1, cfg.pairs, map[bool]string{false: "baseline", true: "agent"}[withAgent]))
			s, err := runOnce(cfg, w, goServer, rcv, withAgent)
			if err != nil {
				return r, err
			}
			pair[j] = s
			time.Sleep(500 * time.Millisecond) // let the previous run's sockets settle
		}
		r.add(pair[0], pair[1])
	}
	return r, nil
}
