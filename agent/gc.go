package agent

import (
	"os"
	"runtime/debug"
)

// gcPercent replaces the default GOGC=100. The agent's live heap is small
// (a few MiB: connection state, spans waiting for their batch) but every
// span allocates, so at 100 the collector runs several times a second and
// takes a good part of the agent's CPU. 200 halves that for ~5 MiB more
// RSS (of the 100 MiB budget, the data ring's double mapping and the
// program text take ~50 MiB); 400 would save a few % more CPU for ~10 MiB.
const gcPercent = 200

// tuneGC applies gcPercent once the programs are loaded (loading peaks
// higher, a larger GOGC then would raise the peak RSS). GOGC in the
// environment wins.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}
