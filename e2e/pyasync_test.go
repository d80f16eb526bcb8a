package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// debianPython is the distribution's interpreter (stripped, only exported
// symbols), which has the Debian packages the asyncio apps use; "python3"
// on PATH may be a self-built one (pyenv) without them.
const debianPython = "/usr/bin/python3"

// startPyApp starts testdata/pychain.py in mode on interpreter py.
func startPyApp(t *testing.T, py, service, mode string, args ...string) server {
	t.Helper()
	p := start(t, []string{"OTEL_SERVICE_NAME=" + service}, testenv.RequireCommand(t, py),
		append([]string{"testdata/pychain.py", "0", mode}, args...)...)
	line := p.waitOutput(t, "listening ", 20*time.Second)
	port, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "listening ")))
	if err != nil {
		t.Fatalf("pychain printed %q", line)
	}
	return server{proc: p, Lang: "python", Port: port}
}

// pyChain is a chain front → mid → back, the middle one pychain.py in
// mode on interpreter py; front "" is the threaded pyserver.py, else
// pychain.py's mode front (on the Debian interpreter).
type pyChain struct {
	py, mode, front string
	agentArgs       []string
	followed        bool // wait for the middle hop's contexts to be followed
}

func (pc pyChain) run(t *testing.T, inflight int, check func(c *chain, ids []int)) {
	t.Helper()
	c := &chain{rcv: otlptest.Start(t), inflight: inflight}
	back := startServer(t, "python", "hop2-python", 0)
	var midArgs []string
	if pc.mode == "aiohttp-ticker" {
		midArgs = []string{back.URL("/users/0")} // id 0: no request's
	}
	mid := startPyApp(t, pc.py, "hop1-python", pc.mode, midArgs...)
	var front server
	if pc.front == "" {
		front = startServer(t, "python", "hop0-python", 0)
	} else {
		front = startPyApp(t, debianPython, "hop0-python", pc.front)
	}
	c.hops = []server{front, mid, back}
	c.ag = startAgent(t, c.rcv, append([]string{"--pid", strconv.Itoa(front.Pid()), "--pid", strconv.Itoa(mid.Pid()),
		"--pid", strconv.Itoa(back.Pid())}, pc.agentArgs...)...)
	if pc.followed {
		c.ag.waitOutput(t, fmt.Sprintf("python contexts followed\" pid=%d", mid.Pid()), 10*time.Second)
	} else {
		c.ag.waitOutput(t, fmt.Sprintf("pid=%d service=hop1-python", mid.Pid()), 10*time.Second)
	}
	ids := seq(1000, 5*inflight)
	if inflight == 1 {
		ids = seq(1000, 20)
	}
	c.drive(t, ids, nil)
	check(c, ids)
}

// exact: every trace whole and exact, every span id unique.
func exact(t *testing.T) func(c *chain, ids []int) {
	return func(c *chain, ids []int) {
		c.assertChains(t, c.collect(t, len(ids)), ids, newRoot)
		assertUniqueSpanIDs(t, c.rcv.Spans())
	}
}

// TestChainPythonAsync: Python → Python asyncio → Python, one exact trace
// per request at 1, 16 and 64 in flight, with the middle hop's contexts
// followed: aiohttp server + aiohttp client on a pool of 4 keep-alive
// connections (requests wait for one) and on new connections, aiohttp
// with the call in asyncio.to_thread (requests), FastAPI async (uvicorn,
// aiohttp client on a pool of 4) and FastAPI def (anyio's thread pool,
// requests). The outer hops are threaded servers on the self-built
// CPython: their contexts are followed too, and the thread still decides
// there. bg: the call is made by a background task after the response,
// while the front's keep-alive connection (an aiohttp client pool of 4)
// already carries the next request. ticker: a task started with the app
// calls the last hop every 10 ms meanwhile; those calls join no request's
// trace (the thread alone would give them the one request in flight).
func TestChainPythonAsync(t *testing.T) {
	requireE2E(t)
	modes := []pyChain{
		{mode: "aiohttp"}, {mode: "aiohttp-new"}, {mode: "aiohttp-thread"},
		{mode: "fastapi"}, {mode: "fastapi-sync"}, {mode: "aiohttp-bg", front: "aiohttp"},
		{mode: "aiohttp-ticker"},
	}
	for _, pc := range modes {
		pc.py, pc.followed = debianPython, true
		t.Run(pc.mode, func(t *testing.T) {
			for _, inflight := range []int{1, 16, 64} {
				t.Run(fmt.Sprintf("inflight%d", inflight), func(t *testing.T) { pc.run(t, inflight, exact(t)) })
			}
		})
	}
}

// TestChainPythonVersions: the standard library's asyncio in the middle on
// every CPython here: Debian's 3.11 (stripped, static) and self-built
// 3.11, 3.12 and 3.13 (shared libpython): each minor version's layout.
func TestChainPythonVersions(t *testing.T) {
	requireE2E(t)
	for _, py := range []string{debianPython, "python3", "/root/.pyenv/versions/3.12.1/bin/python3",
		"/root/.pyenv/versions/3.13.0/bin/python3"} {
		t.Run(strings.ReplaceAll(strings.TrimPrefix(py, "/"), "/", "_"), func(t *testing.T) {
			for _, inflight := range []int{16, 64} {
				t.Run(fmt.Sprintf("inflight%d", inflight), func(t *testing.T) {
					pyChain{py: py, mode: "asyncio", followed: true}.run(t, inflight, exact(t))
				})
			}
		})
	}
}

// TestPythonUnproven: what nothing proves is not linked, and never
// wrongly: a call in run_in_executor (no context copied into the pool)
// and every asyncio call with the contexts not followed
// (--no-runtime-helpers), at 16 in flight.
func TestPythonUnproven(t *testing.T) {
	requireE2E(t)
	noWrong := func(t *testing.T) func(c *chain, ids []int) {
		return func(c *chain, ids []int) { assertNoWrongLinks(t, c, ids) }
	}
	t.Run("run_in_executor", func(t *testing.T) {
		pyChain{py: debianPython, mode: "aiohttp-exec", followed: true}.run(t, 16, noWrong(t))
	})
	t.Run("off", func(t *testing.T) {
		pyChain{py: debianPython, mode: "fastapi", agentArgs: []string{"--no-runtime-helpers"}}.run(t, 16, noWrong(t))
	})
}
