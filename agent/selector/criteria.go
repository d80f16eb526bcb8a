// Package selector decides which processes the agent traces: explicit
// --pid values, processes whose executable matches an --exe glob and
// processes listening on a --port. It answers both from /proc scans (at
// start and periodically) and for kernel events (exec, listen).
package selector

import (
	"errors"
	"fmt"

	"github.com/tracer-agent/tracer-agent/internal/glob"
)

// Criteria is what the user asked to trace. Any match selects a process.
type Criteria struct {
	PIDs     []uint32
	ExeGlobs []string // internal/glob patterns; see matchExe
	Ports    []uint16 // local TCP ports listened on
}

// Validate checks the criteria, returning a one-line error naming the flag.
func (c Criteria) Validate() error {
	if len(c.PIDs) == 0 && len(c.ExeGlobs) == 0 && len(c.Ports) == 0 {
		return errors.New("nothing to trace: give --pid, --exe or --port")
	}
	for _, pid := range c.PIDs {
		if pid == 0 {
			return errors.New("invalid --pid 0")
		}
	}
	for _, g := range c.ExeGlobs {
		if g == "" {
			return fmt.Errorf("invalid --exe %q: empty pattern", g)
		}
		if _, err := glob.Compile(g); err != nil {
			return fmt.Errorf("invalid --exe %q: bad pattern", g)
		}
	}
	for _, p := range c.Ports {
		if p == 0 {
			return errors.New("invalid --port 0")
		}
	}
	return nil
}

// Empty reports whether no criterion was given.
func (c Criteria) Empty() bool { return len(c.PIDs) == 0 && len(c.ExeGlobs) == 0 && len(c.Ports) == 0 }
