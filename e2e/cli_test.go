package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// TestConsoleWaterfall: with no OTLP endpoint the agent prints each trace
// as a waterfall on stdout.
func TestConsoleWaterfall(t *testing.T) {
	requireE2E(t)
	srv := startServer(t, "go", "waterfall-svc", 0)
	ag := &agent{proc: start(t, []string{"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="}, agentBin, "--pid", strconv.Itoa(srv.Pid()))}
	ag.waitOutput(t, "msg=ready", 30*time.Second)
	curl(t, "-H", "traceparent: 00-"+parentTrace+"-"+parentSpan+"-01", srv.URL("/users/9"))
	ag.waitOutput(t, "GET /users/{id}", 15*time.Second)
	ag.stop(t)
	out := ag.Output()
	for _, want := range []string{"trace " + parentTrace, "SERVER", "waterfall-svc", "GET /users/{id}", "200"} {
		if !strings.Contains(out, want) {
			t.Errorf("waterfall lacks %q:\n%s", want, out)
		}
	}
}

// TestCleanDetach: after SIGINT none of the programs the agent loaded
// stays loaded (checked with bpftool).
func TestCleanDetach(t *testing.T) {
	requireE2E(t)
	bpftool := testenv.RequireCommand(t, "bpftool")
	srv := startServer(t, "go", "detach-svc", 0)
	rcv := otlptest.Start(t)
	ag := startAgent(t, rcv, "--pid", strconv.Itoa(srv.Pid()))
	curl(t, srv.URL("/users/1"))
	ids := heldPrograms(t, ag.Pid())
	if len(ids) < 10 {
		t.Fatalf("the running agent holds %d BPF programs, want its capture programs: %v", len(ids), ids)
	}
	for _, id := range ids[:1] {
		if err := exec.Command(bpftool, "prog", "show", "id", id).Run(); err != nil {
			t.Fatalf("bpftool cannot see program %s of the running agent: %v", id, err)
		}
	}
	ag.stop(t)
	for _, id := range ids {
		if out, err := exec.Command(bpftool, "prog", "show", "id", id).CombinedOutput(); err == nil {
			t.Errorf("program %s still loaded after the agent exited: %s", id, out)
		}
	}
}

// heldPrograms lists the ids of BPF programs pid holds file descriptors of.
func heldPrograms(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
				ids = append(ids, strings.TrimSpace(v))
			}
		}
	}
	return ids
}

// TestErrors: bad input and environment give one-line errors and exit 1.
func TestErrors(t *testing.T) {
	requireE2E(t)
	cases := []struct {
		name string
		args []string
		want string
		pre  []string // command prefix (e.g. drop privileges)
	}{
		{"nothing selected", nil, "nothing to trace", nil},
		{"bad pid", []string{"--pid", "abc"}, `--pid "abc"`, nil},
		{"bad port", []string{"--port", "70000"}, `--port "70000"`, nil},
		{"bad output", []string{"--pid", "1", "--output", "kafka"}, `--output "kafka"`, nil},
		{"bad capture size", []string{"--pid", "1", "--capture-bytes", "0"}, "--capture-bytes", nil},
		{"bad glob", []string{"--exe", "["}, `--exe "["`, nil},
		{"kafka-inject without injection", []string{"--pid", "1", "--no-inject", "--kafka-inject"}, "--kafka-inject needs injection", nil},
		{"pid not found", []string{"--pid", "999999999"}, "process 999999999 not found", nil},
		{"not root", []string{"--pid", "1"}, "root", []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			argv := append(append(append([]string{}, tc.pre...), agentBin), tc.args...)
			if tc.pre != nil {
				testenv.RequireCommand(t, tc.pre[0])
			}
			cmd := exec.Command(argv[0], argv[1:]...)
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit: %v, want status 1; output:\n%s", err, out)
			}
			text := strings.TrimSpace(string(out))
			if strings.Count(text, "\n") != 0 {
				t.Errorf("error is not one line:\n%s", text)
			}
			if !strings.HasPrefix(text, "tracer-agent: ") || !strings.Contains(text, tc.want) {
				t.Errorf("error %q does not say %q", text, tc.want)
			}
		})
	}
}
