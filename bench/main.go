// Command bench measures what tracer-agent costs the processes it traces
// (throughput, latency, their CPU) and what it costs itself (CPU per span,
// peak RSS, ring-buffer drops), and what it costs processes it does not
// trace. Each workload alternates runs without and with the agent
// (A B A B ...) and prints one table of medians. Root, wrk and python3
// needed; run from the repository root: `make bench`.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type config struct {
	duration time.Duration
	pairs    int
	conns    int
	threads  int
	rate     int
	syscalls int
	agent    string
	only     map[string]bool
	verbose  bool
	kcost    bool
}

func main() {
	if v := os.Getenv(syscallChildEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err == nil {
			err = syscallChild(n)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "syscall child:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	var only string
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of each load run")
	flag.IntVar(&cfg.pairs, "pairs", 3, "baseline/agent run pairs per workload (medians are reported)")
	flag.IntVar(&cfg.conns, "conns", 16, "concurrent connections of the load generator")
	flag.IntVar(&cfg.threads, "threads", 2, "wrk threads")
	flag.IntVar(&cfg.rate, "rate", 1000, "request rate of the fixed-rate workload (req/s)")
	flag.IntVar(&cfg.syscalls, "syscalls", 1_000_000, "write(2) calls per run of the unselected workload")
	flag.StringVar(&cfg.agent, "agent", "bin/tracer-agent", "tracer-agent binary")
	flag.StringVar(&only, "only", "", "comma-separated workloads to run (default all): "+strings.Join(workloadNames(1000), ", ")+" (go-1k follows -rate)")
	flag.BoolVar(&cfg.verbose, "v", false, "print each agent's final counters and warnings on stderr")
	flag.BoolVar(&cfg.kcost, "kcost", false, "also report each kernel program's runs and ns per run (enables BPF run-time statistics, which add a little to every run)")
	flag.Parse()
	if cfg.duration <= 0 || cfg.pairs < 1 || cfg.conns < 1 || cfg.threads < 1 || cfg.rate < 1 || cfg.syscalls < 1 {
		return errors.New("-duration, -pairs, -conns, -threads, -rate and -syscalls must be positive")
	}
	if only != "" {
		cfg.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !slicesContains(workloadNames(cfg.rate), s) {
				return fmt.Errorf("-only %q: want one of %s", s, strings.Join(workloadNames(cfg.rate), ", "))
			}
			cfg.only[s] = true
		}
	}
	if err := preflight(&cfg); err != nil {
		return err
	}

	tmp, err := os.MkdirTemp("", "tracer-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	goServer := filepath.Join(tmp, "goserver")
	if out, err := exec.Command("go", "build", "-o", goServer, "./e2e/testdata/goserver").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./e2e/testdata/goserver: %v\n%s", err, out)
	}
	if cfg.kcost {
		stats, err := enableKernelStats()
		if err != nil {
			return err
		}
		defer stats.Close()
	}
	rcv, err := startReceiver()
	if err != nil {
		return err
	}

	total0, steal0 := machineTicks()
	var rows []row
	for _, w := range workloads(cfg) {
		if cfg.only != nil && !cfg.only[w.name] {
			continue
		}
		r, err := runWorkload(cfg, w, goServer, rcv)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		rows = append(rows, r)
	}
	if cfg.only == nil || cfg.only["unselected"] {
		progress("unselected")
		r, err := runUnselected(cfg, rcv)
		if err != nil {
			return fmt.Errorf("unselected: %w", err)
		}
		rows = append(rows, r)
	}
	progress("")
	printTable(os.Stdout, cfg, rows)
	if total1, steal1 := machineTicks(); total1 > total0 {
		fmt.Printf("Hypervisor steal during the runs: %.1f%% of CPU time (compare tables only at similar steal).\n",
			100*float64(steal1-steal0)/float64(total1-total0))
	}
	printKernelCosts(os.Stdout, rows)
	return nil
}

// preflight turns missing prerequisites into one clear error.
func preflight(cfg *config) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root (the agent loads eBPF programs)")
	}
	if _, err := os.Stat("e2e/testdata/goserver"); err != nil {
		return errors.New("run from the repository root (e2e/testdata not found)")
	}
	abs, err := filepath.Abs(cfg.agent)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || fi.IsDir() {
		return fmt.Errorf("-agent %s: not found (make build)", cfg.agent)
	}
	cfg.agent = abs
	need := []string{"go"}
	if cfg.only == nil || cfg.only["go-saturation"] || cfg.only["python-saturation"] {
		need = append(need, "wrk")
	}
	if cfg.only == nil || cfg.only["python-saturation"] {
		need = append(need, "python3")
	}
	for _, c := range need {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found in PATH", c)
		}
	}
	return nil
}

// progress shows the running step on a terminal only (the output is the table).
func progress(s string) {
	if fi, err := os.Stderr.Stat(); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "\r\033[K%s", s)
}

func slicesContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
