package agent

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// ownConns are the agent's own connections into traced processes (the
// Node.js helper's to the inspector): the process's side of them is not
// the application's traffic and makes no spans. Keyed by the traced pid
// and both ends (the agent's end alone could be a port another client of
// the process reuses); kept a while after use, for events still in the
// ring.
type ownConns struct {
	n  atomic.Int32
	mu sync.Mutex
	m  map[ownConn]time.Time
}

type ownConn struct {
	pid         uint32
	agent, proc netip.AddrPort
}

const ownConnKeep = 30 * time.Second

func (o *ownConns) add(pid int, agentEnd, procEnd netip.AddrPort) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[ownConn]time.Time{}
	}
	o.m[ownConn{uint32(pid), unmap(agentEnd), unmap(procEnd)}] = time.Now()
	o.n.Store(int32(len(o.m)))
}

// has is cheap when there are none (the common case).
func (o *ownConns) has(pid uint32, local, peer netip.AddrPort) bool {
	if o.n.Load() == 0 {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.m[ownConn{pid, unmap(peer), unmap(local)}]
	return ok
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// expire forgets connections used longer than ownConnKeep ago.
func (o *ownConns) expire(now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, t := range o.m {
		if now.Sub(t) > ownConnKeep {
			delete(o.m, k)
		}
	}
	o.n.Store(int32(len(o.m)))
}
