// Command tracer-agent traces unmodified processes from the kernel and
// exports their HTTP calls as OpenTelemetry spans.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"

	"github.com/tracer-agent/tracer-agent/agent"
	"github.com/tracer-agent/tracer-agent/agent/capture"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usageHead = `tracer-agent: zero-code distributed tracing from the kernel (eBPF).

Watches the TCP sockets of the selected processes with syscall tracepoints
(no kprobes, no code changes, any language) and turns their HTTP/1.x,
HTTP/2 and gRPC (h2c), PostgreSQL, MySQL/MariaDB and Kafka traffic into
OpenTelemetry spans: SERVER spans for requests they receive, CLIENT spans
for requests and queries they send, PRODUCER/CONSUMER spans for Kafka.
Requests crossing traced services form one trace: an incoming W3C
traceparent is honoured (or a trace is started), and the kernel inserts a
traceparent into the requests a traced process sends (a header line in
HTTP/1, a literal field in HTTP/2 HEADERS; Kafka record headers with
--kafka-inject), parented by the request it serves (sockops + sk_msg;
--no-inject turns that off).

Usage:
  sudo tracer-agent --pid 1234
  sudo tracer-agent --exe '*/python3*' --port 8080
  sudo OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 tracer-agent --exe '/srv/*'

Flags (select processes with --pid, --exe or --port, at least one; children they
fork are traced too):
`

const usageTail = `
Export: spans go to OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set — the standard OTEL_EXPORTER_OTLP_*,
OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_* and OTEL_RESOURCE_ATTRIBUTES variables
apply — otherwise each finished trace is printed as a waterfall on stdout.
Node.js processes get a runtime helper (a tracker loaded through Node's
own inspector, opened with SIGUSR1 and closed again, never when the
application handles SIGUSR1 itself) so that their client calls link to
the requests they serve under concurrency. CPython 3.11-3.13 processes
(asyncio, aiohttp, FastAPI/uvicorn, thread pools) get uprobes that follow
their contextvars Contexts, for the same reason. --no-runtime-helpers turns
both off. Go programs (amd64, with symbols and DWARF) get uprobes that hand
a request's context to net/http's and grpc-go's writer goroutines and to
the goroutines a request starts (one uprobe hit per goroutine created:
--no-go-lineage turns that one off).
A traced process's own OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES name its
service (default: its executable or script name).

Requires Linux with BTF (/sys/kernel/btf/vmlinux) and root or CAP_BPF+CAP_PERFMON.
`

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "tracer-agent:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	var (
		cfg         = agent.Config{ProcRoot: "/proc", Version: version}
		pids, ports listFlag
		exes, drops listFlag
		logLevel    string
		showVersion bool
	)
	fs := flag.NewFlagSet("tracer-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Var(&pids, "pid", "trace process `PID` and its descendants, current and future (repeatable)")
	fs.Var(&exes, "exe", "trace processes whose executable path, executable name or argv[0] matches `GLOB`, including ones started later (repeatable)")
	fs.Var(&ports, "port", "trace processes listening on TCP `PORT`, including ones that start listening later (repeatable)")
	fs.StringVar(&cfg.Output, "output", "auto", "where spans go: `auto` (otlp if an OTLP endpoint is set, else console), otlp, console, both")
	fs.Var(&drops, "drop-route", "drop HTTP spans whose route or path matches `GLOB`, e.g. '/health*' (repeatable)")
	fs.BoolVar(&cfg.Kubernetes, "kubernetes", false, "DaemonSet mode: trace the processes of this node's pods in namespaces labelled tracer-agent/instrument=enabled (a pod label or annotation tracer-agent/instrument=enabled|disabled opts it in or out); follows relabelling live")
	fs.StringVar(&cfg.NodeName, "node-name", "", "with --kubernetes: this node's name (default: $NODE_NAME)")
	fs.StringVar(&cfg.ProcRoot, "proc-root", "/proc", "where the host's /proc is mounted (e.g. /host/proc in a container)")
	fs.BoolVar(&cfg.NoInject, "no-inject", false, "read-only mode: never insert traceparent into outgoing requests (spans then link within each process, not across services)")
	fs.BoolVar(&cfg.KafkaInject, "kafka-inject", false, "also add a traceparent record header to the Kafka Produce requests traced processes send (kernel rewrite: record and batch lengths, CRC32C; uncompressed batches of one-topic requests up to 4 KiB), so consumers join the producer's trace")
	fs.BoolVar(&cfg.NoGoLineage, "no-go-lineage", false, "do not follow Go goroutines from the request that started them (saves one uprobe hit, several µs of CPU, per goroutine created; calls from such goroutines are then roots)")
	fs.BoolVar(&cfg.NoRuntimeHelpers, "no-runtime-helpers", false, "never load a helper into a traced process nor follow Python's contexts: Node.js and Python asyncio processes then link client calls only while one request is in flight (see README, Runtime helpers)")
	fs.BoolVar(&cfg.RawSQL, "sql-raw-text", false, "export db.query.text with its literal values (default: string and number literals become ?)")
	fs.IntVar(&cfg.CaptureBytes, "capture-bytes", 4096, "payload bytes captured per syscall (1..8192); larger messages are still framed by their lengths")
	fs.DurationVar(&cfg.StatsEvery, "stats-interval", 0, "log capture counters (events, drops, connections) every `DURATION` (0: only at exit)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageHead)
		fs.PrintDefaults()
		fmt.Fprint(stderr, usageTail)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags only; see --help)", fs.Arg(0))
	}
	if showVersion {
		fmt.Println("tracer-agent", version)
		return nil
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl})))

	switch cfg.Output {
	case "auto", "otlp", "console", "both":
	default:
		return fmt.Errorf("--output %q: want auto, otlp, console or both", cfg.Output)
	}
	for _, p := range pids {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 {
			return fmt.Errorf("--pid %q: want a process id", p)
		}
		cfg.Select.PIDs = append(cfg.Select.PIDs, uint32(n))
	}
	for _, p := range ports {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("--port %q: want a TCP port 1..65535", p)
		}
		cfg.Select.Ports = append(cfg.Select.Ports, uint16(n))
	}
	if cfg.CaptureBytes < 1 || cfg.CaptureBytes > capture.MaxCaptureBytes {
		return fmt.Errorf("--capture-bytes %d: want 1..%d", cfg.CaptureBytes, capture.MaxCaptureBytes)
	}
	if cfg.StatsEvery < 0 {
		return fmt.Errorf("--stats-interval %v: want a positive duration or 0", cfg.StatsEvery)
	}
	if cfg.KafkaInject && cfg.NoInject {
		return fmt.Errorf("--kafka-inject needs injection: drop --no-inject")
	}
	cfg.Select.ExeGlobs = exes
	cfg.DropRoutes = drops

	if path := os.Getenv("TRACER_AGENT_CPUPROFILE"); path != "" { // for developers: go tool pprof
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return agent.Run(ctx, cfg)
}

// listFlag collects a repeatable flag; commas also separate values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
