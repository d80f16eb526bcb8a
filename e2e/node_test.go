package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testdb"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

var listeningLine = regexp.MustCompile(`(?m)^listening (\d+)$`)

// startNodeApp starts script of the npm project testdata/<dir>, whose
// node_modules must hold module, with args; it prints "listening <port>".
func startNodeApp(t *testing.T, service, dir, module, script string, args ...string) server {
	t.Helper()
	if _, err := os.Stat(filepath.Join("testdata", dir, "node_modules", module)); err != nil {
		t.Fatalf("%s is not installed: run npm ci in e2e/testdata/%s (.ci/run does): %v", module, dir, err)
	}
	p := start(t, []string{"OTEL_SERVICE_NAME=" + service}, testenv.RequireCommand(t, "node"),
		append([]string{filepath.Join("testdata", dir, script)}, args...)...)
	// Not waitOutput's first "listening ": the inspector prints "Debugger
	// listening on ..." when the helper attaches early.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := listeningLine.FindStringSubmatch(p.Output()); m != nil {
			port, _ := strconv.Atoi(m[1])
			return server{proc: p, Lang: "node", Port: port}
		}
	}
	t.Fatalf("%s did not print its port:\n%s", service, p.Output())
	return server{}
}

// TestChainNode: Python → Node.js → Python with the Node.js runtime helper,
// one exact trace per request at 1, 16 and 64 in flight, for Node's http
// client on a pool of 4 keep-alive sockets (requests wait for a socket
// that another request's response frees) and on new connections, express
// + axios, fetch (bundled undici), undici.request on a pool of 4, and a
// handler that awaits a PostgreSQL query (pg pool of 4) before its call;
// in http mode the process also sends the kernel malformed and forged
// tracker statements (/junk) before and during the load.
func TestChainNode(t *testing.T) {
	requireE2E(t)
	var pgURL string
	for _, mode := range []string{"http", "http-new", "express", "fetch", "undici", "fetch-pool", "mixed"} {
		t.Run(mode, func(t *testing.T) {
			var extra []string
			if mode == "mixed" {
				if pgURL == "" {
					pg := testdb.StartPostgres(t)
					pgURL = pg.DSN
				}
				extra = []string{pgURL}
			}
			for _, inflight := range []int{1, 16, 64} {
				t.Run(fmt.Sprintf("inflight%d", inflight), func(t *testing.T) {
					c := &chain{rcv: otlptest.Start(t), inflight: inflight}
					back := startServer(t, "python", "hop2-python", 0)
					mid := startNodeApp(t, "hop1-node", "nodechain", "express", "server.js", append([]string{"0", mode}, extra...)...)
					front := startServer(t, "python", "hop0-python", 0)
					c.hops = []server{front, mid, back}
					if mode == "mixed" {
						// pg writes a query that waited for a pooled connection
						// from the callback of the query before it: unproven,
						// so unlinked (a root), never linked wrongly.
						c.dbHops, c.dbOptional = map[int]bool{1: true}, true
					}
					c.ag = startAgent(t, c.rcv, "--pid", strconv.Itoa(front.Pid()), "--pid", strconv.Itoa(mid.Pid()),
						"--pid", strconv.Itoa(back.Pid()))
					c.ag.waitOutput(t, "node helper loaded", 10*time.Second)
					ids := seq(1000, 5*inflight)
					if inflight == 1 {
						ids = seq(1000, 20)
					}
					if mode == "http" {
						// Forged and malformed statements from the process
						// itself, before and during the load, change nothing.
						curl(t, mid.URL("/junk"))
						go func() {
							if r, err := http.Get(mid.URL("/junk")); err == nil {
								r.Body.Close()
							}
						}()
					}
					c.drive(t, ids, nil)
					if mode == "fetch-pool" {
						assertNoWrongLinks(t, c, ids)
						return
					}
					spans := otlptest.Filter(c.collect(t, len(ids)), func(s otlptest.Span) bool { return s.Attrs["url.path"] != "/junk" })
					if mode == "mixed" {
						spans = dropRootQueries(t, spans)
					}
					c.assertChains(t, spans, ids, newRoot)
					assertUniqueSpanIDs(t, c.rcv.Spans())
				})
			}
		})
	}
}

// assertNoWrongLinks: every span arrives and no trace joins two requests;
// links may be missing (fetch requests that waited for a pool's
// connection: nothing proves their caller), and how many are is logged.
func assertNoWrongLinks(t *testing.T, c *chain, ids []int) {
	t.Helper()
	spans := c.collect(t, len(ids))
	if want := len(ids) * (2*len(c.hops) - 1); len(spans) != want {
		t.Errorf("%d spans, want %d", len(spans), want)
	}
	byTrace, tracesOf, problems := byRequest(spans)
	whole := 0
	for _, id := range ids {
		if len(tracesOf[id]) == 1 {
			whole++
		}
	}
	t.Logf("%d requests, %d traces, %d whole (the rest unlinked, never wrongly)", len(ids), len(byTrace), whole)
	reportProblems(t, problems, len(ids), len(spans))
}

// dropRootQueries removes database spans without a parent (unlinked
// queries) and logs how many there were.
func dropRootQueries(t *testing.T, spans []otlptest.Span) []otlptest.Span {
	t.Helper()
	var out []otlptest.Span
	roots := 0
	for _, s := range spans {
		if s.Attrs["db.system.name"] != nil && s.ParentID == "" {
			roots++
			continue
		}
		out = append(out, s)
	}
	t.Logf("%d database spans unlinked (roots)", roots)
	return out
}

// TestNodeHelperSafety: the helper leaves no port or fd behind in the
// process, never signals a process that handles SIGUSR1 itself (the real
// handler read from the kernel), and stays out with --no-runtime-helpers.
func TestNodeHelperSafety(t *testing.T) {
	requireE2E(t)
	node := testenv.RequireCommand(t, "node")
	t.Run("no-trace-left", func(t *testing.T) {
		srv := startNodeApp(t, "helper-node", "nodechain", "express", "server.js", "0", "http")
		before, fdsBefore := openOf(t, srv.Pid())
		ag := startAgent(t, otlptest.Start(t), "--pid", strconv.Itoa(srv.Pid()))
		ag.waitOutput(t, "node helper loaded", 10*time.Second)
		after, fdsAfter := openOf(t, srv.Pid())
		if after != before || fdsAfter != fdsBefore {
			t.Errorf("after the helper: listening %q, %d fds; before: %q, %d fds", after, fdsAfter, before, fdsBefore)
		}
		// A second agent (a restart) finds the tracker loaded.
		ag.stop(t)
		ag2 := startAgent(t, otlptest.Start(t), "--pid", strconv.Itoa(srv.Pid()))
		ag2.waitOutput(t, "node helper loaded", 10*time.Second)
		curl(t, srv.URL("/users/1"))
	})
	t.Run("at-exec", func(t *testing.T) {
		// Picked up at exec, before node installed its SIGUSR1 handler:
		// the helper waits for it instead of giving up (or signalling a
		// process whose SIGUSR1 still kills it).
		ag := startAgent(t, otlptest.Start(t), "--exe", "*/node")
		srv := startNodeApp(t, "helper-node", "nodechain", "express", "server.js", "0", "http")
		ag.waitOutput(t, fmt.Sprintf("node helper loaded\" pid=%d", srv.Pid()), 10*time.Second)
		curl(t, srv.URL("/users/1"))
	})
	t.Run("own-handler", func(t *testing.T) {
		p := start(t, nil, node, "-e", `process.on('SIGUSR1', () => console.log('got SIGUSR1'));
require('http').createServer((q, s) => s.end('ok')).listen(0, '127.0.0.1', function () { console.log('listening ' + this.address().port) })`)
		p.waitOutput(t, "listening ", 10*time.Second)
		ag := startAgent(t, otlptest.Start(t), "--pid", strconv.Itoa(p.Pid()))
		ag.waitOutput(t, "not node's inspector handler", 10*time.Second)
		time.Sleep(200 * time.Millisecond)
		if strings.Contains(p.Output(), "got SIGUSR1") {
			t.Error("the application's SIGUSR1 handler ran: the helper signalled it")
		}
	})
	t.Run("off", func(t *testing.T) {
		srv := startNodeApp(t, "helper-node", "nodechain", "express", "server.js", "0", "http")
		ag := startAgent(t, otlptest.Start(t), "--pid", strconv.Itoa(srv.Pid()), "--no-runtime-helpers")
		ag.waitOutput(t, "--no-runtime-helpers", 10*time.Second)
		time.Sleep(300 * time.Millisecond)
		if strings.Contains(srv.Output(), "Debugger listening") {
			t.Error("the inspector opened with --no-runtime-helpers")
		}
	})
}

// openOf: pid's listening TCP ports (from its namespace's table, by the
// inodes of its fds) and its number of fds.
func openOf(t *testing.T, pid int) (string, int) {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.Trim(l[len("socket:"):], "[]")] = true
		}
	}
	var ports []string
	for _, tab := range []string{"tcp", "tcp6"} {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, tab))
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 9 && f[3] == "0A" && inodes[f[9]] {
				ports = append(ports, f[1])
			}
		}
	}
	return strings.Join(ports, ","), len(ents)
}
