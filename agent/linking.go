package agent

import (
	"errors"
	"io/fs"
	"log/slog"
	"time"

	"github.com/tracer-agent/tracer-agent/agent/capture"
	"github.com/tracer-agent/tracer-agent/agent/procinfo"
	"github.com/tracer-agent/tracer-agent/agent/runtime/nodejs"
	"github.com/tracer-agent/tracer-agent/agent/runtime/python"
)

// The runtime hand-offs that link a process's client calls to the
// requests it serves: which one each runtime gets, attached and reported.

// attachLinking attaches what proves, for pid's runtime, which request
// its client calls serve, and says which mechanism is active.
func (a *runner) attachLinking(pid uint32, goRuntime bool) string {
	if goRuntime {
		return a.attachGoLinking(pid)
	}
	if nodejs.IsNode(a.cfg.ProcRoot, int(pid)) {
		if a.node == nil {
			return "thread (--no-runtime-helpers: Node.js links only while one request is in flight)"
		}
		go a.attachNode(pid) // the inspector takes a moment: not under the runner's lock
		return "node async context (runtime helper; thread until it is loaded)"
	}
	if python.Looks(a.cfg.ProcRoot, int(pid)) {
		if a.cfg.NoRuntimeHelpers {
			return "thread (--no-runtime-helpers: Python asyncio and thread pools link only while one request is in flight)"
		}
		// Attaching uprobes takes a while: not under the runner's lock,
		// nor in the control events' path.
		go a.attachPython(pid)
		return "python contexts once attached (uprobes on PyContext_CopyCurrent and Context dealloc; thread until then)"
	}
	switch err := a.capt.AttachNginx(pid); {
	case err == nil:
		return "nginx upstream (uprobe ngx_chain_writer)"
	case !errors.Is(err, capture.ErrNotNginx):
		slog.Warn("nginx: upstream requests will link only through a forwarded traceparent", "pid", pid, "err", err)
	}
	return "thread (a request per thread at a time; event loops: only while one request is in flight)"
}

// attachGoLinking attaches the Go hand-offs pid's executable has: each
// one found is a way its goroutines' calls link to the requests they serve.
// grpc-go's needs the executable's DWARF (a moment for a large binary), so
// it is attached apart, not under the runner's lock.
func (a *runner) attachGoLinking(pid uint32) string {
	way := "goroutine (net/http client uprobes"
	if err := a.capt.AttachGo(pid); err != nil {
		slog.Info("go program: net/http client calls will not link to the requests they serve", "pid", pid, "err", err)
		way = "goroutine (no net/http client hand-off"
	}
	go func() {
		switch err := a.attachGoLineage(pid); {
		case a.cfg.NoGoLineage:
		case err == nil:
			slog.Info("go lineage: goroutines a request starts make their calls for it while it is in flight (uprobe on newproc's runqput call)", "pid", pid)
		case !errors.Is(err, fs.ErrNotExist):
			slog.Warn("go lineage: calls from goroutines a request starts will not link to it", "pid", pid, "err", err)
		}
		server, client := a.capt.AttachGRPC(pid)
		switch {
		case server == nil:
			slog.Info("grpc-go server: each stream's handler goroutine serves its RPC (uprobes on handleStream, writeStatus)", "pid", pid)
		case !errors.Is(server, capture.ErrNoGRPC) && !errors.Is(server, fs.ErrNotExist): // (gone: it exited)
			slog.Warn("grpc-go server: handlers' calls will not link to their RPCs", "pid", pid, "err", server)
		}
		switch {
		case client == nil:
			slog.Info("grpc-go client: each call's stream carries the ids of the request its caller serves (uprobes on NewStream's executeAndPut call, clientHeaderHandler)", "pid", pid)
		case !errors.Is(client, capture.ErrNoGRPC) && !errors.Is(client, fs.ErrNotExist):
			slog.Warn("grpc-go client: calls will not link to the requests they serve", "pid", pid, "err", client)
		}
	}()
	lineage := "; goroutine lineage"
	if a.cfg.NoGoLineage {
		lineage = "; no goroutine lineage (--no-go-lineage)"
	}
	return way + lineage + "; grpc-go server and client uprobes when it has them)"
}

// attachPython follows pid's contexts once its interpreter is up (a
// process caught at exec is not yet).
func (a *runner) attachPython(pid uint32) {
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		py, err := python.Inspect(a.cfg.ProcRoot, int(pid))
		if err == nil {
			err = a.capt.AttachPython(pid, py.PythonProcess)
		}
		switch {
		case err == nil:
			slog.Info("python contexts followed", "pid", pid, "version", py.Version)
			return
		case errors.Is(err, python.ErrNotReady) && time.Now().Before(deadline) && procinfo.Exists(a.cfg.ProcRoot, pid):
			continue
		case errors.Is(err, python.ErrNotPython) || !procinfo.Exists(a.cfg.ProcRoot, pid):
			return
		}
		slog.Info("python: contexts not followed: asyncio and thread pools link only while one request is in flight", "pid", pid, "err", err)
		return
	}
}

// attachNode loads the Node.js tracker into pid.
func (a *runner) attachNode(pid uint32) {
	if err := a.node.Attach(int(pid)); err != nil {
		slog.Warn("node helper not loaded: client calls link only while one request is in flight", "pid", pid, "err", err)
		return
	}
	slog.Info("node helper loaded", "pid", pid, "linking", "node async context (tracker through the inspector, closed again)")
}

// attachGoLineage attaches the lineage uprobe unless --no-go-lineage.
func (a *runner) attachGoLineage(pid uint32) error {
	if a.cfg.NoGoLineage {
		return nil
	}
	return a.capt.AttachGoLineage(pid)
}
