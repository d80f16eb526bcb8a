package export

import (
	"context"
	"io"
	"sort"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// maxPendingSpans caps the console's memory: past it the oldest traces are
// printed before their quiet period ends (possibly incomplete).
const maxPendingSpans = 10000

// consoleExporter prints traces as waterfalls. A trace's spans arrive over
// time (each process exports its own side), so a trace is buffered until no
// span for it arrived for the quiet period, then printed whole.
type consoleExporter struct {
	w     io.Writer
	quiet time.Duration
	now   func() time.Time

	mu      sync.Mutex
	traces  map[trace.TraceID]*pendingTrace
	pending int    // spans buffered across all traces
	seq     uint64 // arrival order of traces, to find the oldest
	closed  bool
	early   uint64
	lost    uint64

	outMu sync.Mutex // one waterfall at a time on w
	stop  chan struct{}
	done  chan struct{}
}

type pendingTrace struct {
	id    trace.TraceID
	seq   uint64
	last  time.Time // arrival of the newest span
	spans []spanRow
}

var _ sdktrace.SpanExporter = (*consoleExporter)(nil)

func newConsoleExporter(w io.Writer, quiet time.Duration) *consoleExporter {
	if quiet <= 0 {
		quiet = time.Second
	}
	c := &consoleExporter{
		w:      w,
		quiet:  quiet,
		now:    time.Now,
		traces: map[trace.TraceID]*pendingTrace{},
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go c.loop()
	return c
}

// ExportSpans buffers spans by trace; it never fails.
func (c *consoleExporter) ExportSpans(_ context.Context, spans []sdktrace.ReadOnlySpan) error {
	var evicted []*pendingTrace
	c.mu.Lock()
	if c.closed {
		c.lost += uint64(len(spans))
		c.mu.Unlock()
		return nil
	}
	now := c.now()
	for _, s := range spans {
		tid := s.SpanContext().TraceID()
		t := c.traces[tid]
		if t == nil {
			c.seq++
			t = &pendingTrace{id: tid, seq: c.seq}
			c.traces[tid] = t
		}
		t.last = now
		t.spans = append(t.spans, rowOf(s))
		c.pending++
	}
	if c.pending > maxPendingSpans {
		evicted = c.evictOldest(maxPendingSpans * 9 / 10)
	}
	c.mu.Unlock()
	c.print(evicted)
	return nil
}

// evictOldest removes traces, oldest first, until at most keep spans are
// pending. It frees a tenth of the cap at once so the scan is rare.
func (c *consoleExporter) evictOldest(keep int) []*pendingTrace {
	all := make([]*pendingTrace, 0, len(c.traces))
	for _, t := range c.traces {
		all = append(all, t)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].seq < all[j].seq })
	var out []*pendingTrace
	for _, t := range all {
		if c.pending <= keep {
			break
		}
		delete(c.traces, t.id)
		c.pending -= len(t.spans)
		c.early++
		out = append(out, t)
	}
	return out
}

func (c *consoleExporter) loop() {
	defer close(c.done)
	tick := time.NewTicker(max(c.quiet/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-tick.C:
			c.print(c.takeQuiet(c.now()))
		}
	}
}

// takeQuiet removes the traces that saw no span for the quiet period.
func (c *consoleExporter) takeQuiet(now time.Time) []*pendingTrace {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*pendingTrace
	for id, t := range c.traces {
		if now.Sub(t.last) >= c.quiet {
			delete(c.traces, id)
			c.pending -= len(t.spans)
			out = append(out, t)
		}
	}
	return out
}

// print writes traces ordered by their start, so output is deterministic
// whatever the map order.
func (c *consoleExporter) print(ts []*pendingTrace) {
	if len(ts) == 0 {
		return
	}
	starts := make(map[*pendingTrace]time.Time, len(ts))
	for _, t := range ts {
		starts[t] = traceStart(t.spans)
	}
	sort.Slice(ts, func(i, j int) bool {
		a, b := starts[ts[i]], starts[ts[j]]
		if !a.Equal(b) {
			return a.Before(b)
		}
		return string(ts[i].id[:]) < string(ts[j].id[:])
	})
	c.outMu.Lock()
	defer c.outMu.Unlock()
	for _, t := range ts {
		// A broken terminal or pipe must not stall the batch processor
		// beyond this write; there is nobody to report the error to.
		_, _ = io.WriteString(c.w, renderWaterfall(t.id, t.spans))
	}
}

// Shutdown prints every pending trace and stops the ticker.
func (c *consoleExporter) Shutdown(context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	all := make([]*pendingTrace, 0, len(c.traces))
	for _, t := range c.traces {
		all = append(all, t)
	}
	c.traces = map[trace.TraceID]*pendingTrace{}
	c.pending = 0
	c.mu.Unlock()
	close(c.stop)
	<-c.done
	c.print(all)
	return nil
}

func (c *consoleExporter) counters() (early, lost uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.early, c.lost
}
