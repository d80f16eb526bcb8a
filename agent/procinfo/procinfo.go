// Package procinfo reads what the agent needs to know about one process
// from /proc: its executable, command line and OpenTelemetry identity
// (OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES from its environment).
//
// procRoot is a parameter (normally "/proc") so that the agent can run with
// the host's /proc mounted elsewhere and so tests can use a fake tree.
package procinfo

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"go.opentelemetry.io/otel/attribute"
)

// Info is one process's identity.
type Info struct {
	PID         uint32
	ExePath     string   // readlink of /proc/<pid>/exe, "" when unreadable
	ExeName     string   // base of ExePath
	Command     string   // argv[0]
	CommandLine []string // argv
	// ServiceName is OTEL_SERVICE_NAME, else service.name from
	// OTEL_RESOURCE_ATTRIBUTES, else the executable name.
	ServiceName string
	// ResourceAttrs are the OTEL_RESOURCE_ATTRIBUTES entries other than
	// service.name, as string attributes.
	ResourceAttrs []attribute.KeyValue
	// GoRuntime: the executable is a Go program.
	GoRuntime bool
}

// Read collects the Info of pid. The only error is a missing process;
// anything else unreadable (a kernel thread's exe, another user's environ)
// just leaves the corresponding fields empty.
func Read(procRoot string, pid uint32) (Info, error) {
	procRoot = Root(procRoot)
	if !Exists(procRoot, pid) {
		return Info{}, NotFound(pid)
	}
	info := Info{PID: pid}
	info.ExePath, _ = ExePath(procRoot, pid)
	if info.ExePath != "" {
		info.ExeName = filepath.Base(info.ExePath)
	}
	args, err := CommandLine(procRoot, pid)
	if err != nil && !Exists(procRoot, pid) {
		return Info{}, NotFound(pid) // it exited while we were reading
	}
	info.CommandLine = args
	if len(args) > 0 {
		info.Command = args[0]
	}

	info.GoRuntime = IsGoBinary(procRoot, pid)
	env, _ := Environ(procRoot, pid) // permission denied is not fatal
	svc, attrs := otelIdentity(env)
	info.ResourceAttrs = attrs
	info.ServiceName = svc
	if info.ServiceName == "" {
		info.ServiceName = fallbackName(info)
	}
	return info, nil
}

// fallbackName names a process that declared no service name: an
// interpreted program by its script or module ("frontend" for `python3
// frontend.py`), anything else by its executable.
func fallbackName(info Info) string {
	if interp := Interpreter(info.ExePath); interp != "" && len(info.CommandLine) > 1 {
		if names := ScriptNames(interp, info.CommandLine[1:]); len(names) > 0 {
			base := filepath.Base(names[0])
			switch ext := filepath.Ext(base); ext {
			case ".py", ".js", ".mjs", ".cjs", ".ts", ".rb", ".pl", ".php", ".sh", ".jar":
				base = strings.TrimSuffix(base, ext)
			}
			if base != "" && base != "." && base != "/" {
				return base
			}
		}
	}
	if info.ExeName != "" {
		return info.ExeName
	}
	if info.Command != "" {
		if b := filepath.Base(info.Command); b != "." && b != "/" {
			return b
		}
	}
	return fmt.Sprintf("pid-%d", info.PID)
}

// Exec is what the kernel reported of a process at its exec: the path it
// was started from and its argv (possibly cut short). It identifies a
// process that exited before /proc could be read.
type Exec struct {
	Path string
	Argv []string
}

// ParseExec decodes an exec event's payload: the path, a NUL, then argv as
// NUL-separated strings.
func ParseExec(b []byte) Exec {
	path, argv, _ := bytes.Cut(b, []byte{0})
	return Exec{Path: string(path), Argv: splitNUL(argv)}
}

// FromExec describes pid from its exec record alone (no environment, so
// no OTEL_SERVICE_NAME): the fallback for a process already gone.
func FromExec(pid uint32, e Exec) Info {
	info := Info{PID: pid, ExePath: e.Path, CommandLine: e.Argv}
	if e.Path != "" {
		info.ExeName = filepath.Base(e.Path)
	}
	if len(e.Argv) > 0 {
		info.Command = e.Argv[0]
	}
	info.ServiceName = fallbackName(info)
	return info
}
