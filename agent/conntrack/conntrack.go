// Package conntrack keeps per-connection state for traced processes: it
// recognises each connection's protocol from its first bytes, feeds its
// chunks in order to that protocol's parser, and flushes parsers when the
// connection closes, goes idle or its process exits.
package conntrack

import (
	"sync"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// detectBudget is how many data chunks a connection may show without a
// recognisable message start before it is ignored (it may have been opened
// before the agent, mid-message).
const detectBudget = 16

type key struct {
	pid  uint32
	sock uint64
}

type conn struct {
	info     probe.Conn
	parser   probe.Parser // nil until a probe recognises the connection
	misses   int          // chunks seen while undetected
	ignored  bool         // no probe recognised it within detectBudget
	lastSeen time.Time
}

// Stats are cumulative counters, for the agent's self-report.
type Stats struct {
	Conns, Ignored, Evicted uint64
}

// Tracker routes chunks to per-connection parsers. It is safe for
// concurrent use; the data path calls it from one goroutine.
type Tracker struct {
	mu       sync.Mutex
	probes   []probe.Probe
	emit     func(probe.Span)
	conns    map[key]*conn
	maxConns int
	stats    Stats
	// free holds forgotten conns for reuse: many clients open a connection
	// per request.
	free []*conn
	// detecting is the chunk being offered to the probes' Detect.
	detecting probe.Chunk
}

// New builds a tracker that tries probes in order and hands finished spans
// to emit. maxConns bounds memory: beyond it the least recently seen
// connection is flushed and forgotten.
func New(probes []probe.Probe, maxConns int, emit func(probe.Span)) *Tracker {
	return &Tracker{probes: probes, emit: emit, conns: map[key]*conn{}, maxConns: maxConns}
}

// Data feeds one syscall's bytes on a connection.
func (t *Tracker) Data(c probe.Conn, ch probe.Chunk) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{c.PID, c.ID}
	cn := t.conns[k]
	if cn == nil {
		if len(t.conns) >= t.maxConns {
			t.evictOldest()
		}
		cn = t.newConn(c)
		t.conns[k] = cn
		t.stats.Conns++
	}
	cn.lastSeen = ch.End
	if cn.ignored {
		return
	}
	if cn.parser == nil {
		// Detect through the tracker's copy: taking ch's address would move
		// every call's chunk to the heap.
		t.detecting = ch
		p := t.detect(&t.detecting)
		t.detecting = probe.Chunk{}
		if p == nil {
			if cn.misses++; cn.misses >= detectBudget {
				cn.ignored = true
				t.stats.Ignored++
			}
			return
		}
		cn.parser = p.NewParser(cn.info)
	}
	t.emitAll(cn.parser.Feed(ch))
}

func (t *Tracker) detect(ch *probe.Chunk) probe.Probe {
	if len(ch.Data) == 0 {
		return nil
	}
	for _, p := range t.probes {
		if p.Detect(ch) {
			return p
		}
	}
	return nil
}

// Closed flushes and forgets a connection whose socket was closed.
func (t *Tracker) Closed(pid uint32, sock uint64, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{pid, sock}
	if cn := t.conns[k]; cn != nil {
		t.forget(k, cn, at)
	}
}

// ForgetPID flushes and forgets every connection of an exited process.
func (t *Tracker) ForgetPID(pid uint32, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, cn := range t.conns {
		if k.pid == pid {
			t.forget(k, cn, at)
		}
	}
}

// Sweep flushes connections idle since before cutoff: their close may have
// happened outside what the kernel reports (e.g. the process was
// deselected, or the fd was closed by another process).
func (t *Tracker) Sweep(cutoff, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, cn := range t.conns {
		if cn.lastSeen.Before(cutoff) {
			t.forget(k, cn, now)
		}
	}
}

// FlushAll flushes every connection (agent shutdown).
func (t *Tracker) FlushAll(now time.Time) {
	t.Sweep(now.Add(time.Hour), now)
}

// Stats returns cumulative counters and the number of open connections.
func (t *Tracker) Stats() (Stats, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats, len(t.conns)
}

func (t *Tracker) evictOldest() {
	var (
		oldest key
		cn     *conn
	)
	for k, c := range t.conns {
		if cn == nil || c.lastSeen.Before(cn.lastSeen) {
			oldest, cn = k, c
		}
	}
	if cn != nil {
		t.forget(oldest, cn, cn.lastSeen)
		t.stats.Evicted++
	}
}

// maxFree bounds the conns kept for reuse.
const maxFree = 256

func (t *Tracker) newConn(c probe.Conn) *conn {
	if n := len(t.free); n > 0 {
		cn := t.free[n-1]
		t.free = t.free[:n-1]
		cn.info = c
		return cn
	}
	return &conn{info: c}
}

// forget flushes a connection's parser, drops it from the table and
// recycles what can be.
func (t *Tracker) forget(k key, cn *conn, at time.Time) {
	delete(t.conns, k)
	if cn.parser != nil {
		t.emitAll(cn.parser.Close(at))
		if r, ok := cn.parser.(probe.Recycler); ok {
			r.Recycle()
		}
	}
	*cn = conn{}
	if len(t.free) < maxFree {
		t.free = append(t.free, cn)
	}
}

func (t *Tracker) emitAll(spans []probe.Span) {
	for _, s := range spans {
		t.emit(s)
	}
}
