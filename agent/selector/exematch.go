package selector

import (
	"path/filepath"
	"strings"

	"github.com/tracer-agent/tracer-agent/agent/procinfo"
	"github.com/tracer-agent/tracer-agent/internal/glob"
)

// matchExe reports whether any glob matches the process. Globs are matched
// (internal/glob: '*' also crosses '/') against several names of the program, because users
// know it by different names: the executable path and its basename, argv[0]
// and its basename (a symlinked or renamed launcher), and for interpreters
// the script or module they run (--exe 'frontend.py' for `python3
// frontend.py`).
//
// A process with neither exe nor argv (a kernel thread, a zombie) never
// matches.
func matchExe(globs []*glob.Glob, exe string, argv []string) bool {
	if len(globs) == 0 || (exe == "" && len(argv) == 0) {
		return false
	}
	for _, name := range candidates(exe, argv) {
		for _, g := range globs {
			if g.Match(name) {
				return true
			}
		}
	}
	return false
}

// candidates lists the names a process is known by (may repeat).
func candidates(exe string, argv []string) []string {
	var out []string
	add := func(name string) {
		if name == "" {
			return
		}
		out = append(out, name)
		if strings.Contains(name, "/") {
			out = append(out, filepath.Base(name))
		}
	}
	add(exe)
	var arg0 string
	if len(argv) > 0 {
		arg0 = argv[0]
		add(arg0)
	}
	interp := procinfo.Interpreter(exe)
	if interp == "" {
		interp = procinfo.Interpreter(arg0)
	}
	if interp != "" && len(argv) > 1 {
		for _, name := range procinfo.ScriptNames(interp, argv[1:]) {
			add(name)
		}
	}
	return out
}

// compileGlobs compiles validated --exe patterns (invalid ones are skipped:
// Criteria.Validate reports them).
func compileGlobs(patterns []string) []*glob.Glob {
	var out []*glob.Glob
	for _, p := range patterns {
		if g, err := glob.Compile(p); err == nil {
			out = append(out, g)
		}
	}
	return out
}
