package e2e

import (
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// TestSampling: the sampled flag decided at the first hop (incoming flag,
// or the agent's OTEL_TRACES_SAMPLER for new traces) travels in the
// injected traceparent; a trace not sampled is exported by no hop.
func TestSampling(t *testing.T) {
	requireE2E(t)
	rcv := otlptest.Start(t)
	back := startServer(t, "go", "sampled-back", 0)
	front := startServer(t, "python", "sampled-front", 0)
	startAgentEnv(t, rcv, []string{"OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0"},
		"--pid", strconv.Itoa(front.Pid()), "--pid", strconv.Itoa(back.Pid()))

	call := func(id int, traceparent string) {
		args := []string{front.URL(fmt.Sprintf("/call?url=%s", back.URL(fmt.Sprintf("/users/%d", id))))}
		if traceparent != "" {
			args = append([]string{"-H", "traceparent: " + traceparent}, args...)
		}
		curl(t, args...)
	}
	const unsampledTrace = "11111111111111111111111111111111"
	call(1, "")                                          // new trace, ratio 0: not sampled
	call(2, "00-"+unsampledTrace+"-2222222222222222-00") // parent says not sampled
	call(3, "00-"+parentTrace+"-"+parentSpan+"-01")      // parent says sampled: kept end to end

	spans := rcv.WaitFor(t, 20*time.Second, "the sampled trace's 3 spans", func(s []otlptest.Span) bool {
		return len(otlptest.Filter(s, func(x otlptest.Span) bool { return x.TraceID == parentTrace })) >= 3
	})
	time.Sleep(time.Second) // let stragglers of the unsampled traces show up if they were (wrongly) exported
	spans = rcv.Spans()
	for _, s := range spans {
		if s.TraceID != parentTrace {
			t.Errorf("span of an unsampled trace exported: %s", s)
		}
	}
	if n := len(spans); n != 3 {
		t.Errorf("got %d spans, want the sampled trace's 3 (front server, front client, back server):\n%s", n, otlptest.Dump(spans))
	}
}

// TestSockhashOnlySelected: only sockets that traced processes connect are
// in the agent's sockhash; an untraced client's socket never is.
func TestSockhashOnlySelected(t *testing.T) {
	requireE2E(t)
	bpftool := testenv.RequireCommand(t, "bpftool")
	rcv := otlptest.Start(t)
	back := startServer(t, "go", "sh-back", 0)
	front := startServer(t, "python", "sh-front", 0)
	ag := startAgent(t, rcv, "--pid", strconv.Itoa(front.Pid()))

	// This test process is not traced: its connection must stay out.
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", back.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var mine uint64
	raw, _ := conn.(*net.TCPConn).SyscallConn()
	_ = raw.Control(func(fd uintptr) { mine, err = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_COOKIE) })
	if err != nil {
		t.Fatal(err)
	}
	// The traced front keeps a connection to the back open while serving
	// (Python's urllib closes it after; the Go back keeps it until then).
	curl(t, front.URL("/call?url="+back.URL("/users/1")))

	keys := sockhashKeys(t, bpftool)
	for _, k := range keys {
		if k == mine {
			t.Fatalf("the untraced test process's socket (cookie %d) is in the sockhash", mine)
		}
	}
	// The traced front's socket was in it: its request was injected.
	ag.stop(t)
	if n := finalCounter(t, ag.Output(), "injected"); n < 1 {
		t.Errorf("injected=%d: the traced process's client socket never reached the sockhash", n)
	}
}

// finalCounter reads a counter from the agent's final stats line.
func finalCounter(t *testing.T, log, name string) int {
	t.Helper()
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "msg=final") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, name+"="); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
	}
	t.Fatalf("no final %s counter in the agent log:\n%s", name, log)
	return 0
}

// sockhashKeys reads the cookies in every client_socks sockhash loaded.
func sockhashKeys(t *testing.T, bpftool string) []uint64 {
	t.Helper()
	out, err := exec.Command(bpftool, "map", "show", "name", "client_socks").Output()
	if err != nil {
		t.Fatalf("bpftool map show: %v", err)
	}
	var keys []uint64
	for _, line := range strings.Split(string(out), "\n") {
		id, _, ok := strings.Cut(line, ":")
		if !ok || strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(id))
		if err != nil {
			continue
		}
		m, err := ebpf.NewMapFromID(ebpf.MapID(n))
		if err != nil {
			continue
		}
		var k, v uint64
		it := m.Iterate()
		for it.Next(&k, &v) {
			keys = append(keys, k)
		}
		m.Close()
	}
	return keys
}

// TestSplitIncomingHeaders: a request whose traceparent arrives in a later
// read than its request line still joins the caller's trace.
func TestSplitIncomingHeaders(t *testing.T) {
	requireE2E(t)
	for _, lang := range []string{"go", "python"} {
		t.Run(lang, func(t *testing.T) {
			rcv := otlptest.Start(t)
			srv := startServer(t, lang, "split-"+lang, 0)
			startAgent(t, rcv, "--pid", strconv.Itoa(srv.Pid()))
			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", srv.Port))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write([]byte("GET /users/77 HTTP/1.1\r\nHost: x\r\n"))
			time.Sleep(100 * time.Millisecond) // the server reads the first piece alone
			conn.Write([]byte("traceparent: 00-" + parentTrace + "-" + parentSpan + "-01\r\nConnection: close\r\n\r\n"))
			buf := make([]byte, 4096)
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, _ := conn.Read(buf); !strings.Contains(string(buf[:n]), " 200 ") {
				t.Fatalf("response %q", buf[:n])
			}
			spans := rcv.WaitFor(t, 15*time.Second, "the server span", func(s []otlptest.Span) bool {
				return len(serverSpans(s, "split-"+lang)) > 0
			})
			s := serverSpans(spans, "split-"+lang)[0]
			if s.TraceID != parentTrace || s.ParentID != parentSpan {
				t.Errorf("split headers: trace=%s parent=%s, want %s/%s", s.TraceID, s.ParentID, parentTrace, parentSpan)
			}
		})
	}
}
