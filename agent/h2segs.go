package agent

import (
	"github.com/tracer-agent/tracer-agent/agent/capture"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// segJoiner holds the kernel's HTTP/2 segment events (bpf/h2_seg.h) until
// the data event they precede. The kernel sends them from the same program
// run, so they come before that event in the ring; other threads' events
// may come between, and so may the socket's other direction, hence the
// key. Their bytes are copied: the ring
// records they alias may be released before the data event is read.
type segJoiner struct {
	pending map[segKey]*segBatch
	free    []*segBatch
}

type segKey struct {
	sock uint64
	dir  probe.Direction
}

type segBatch struct {
	tid  uint32
	offs []int // record i: Off offs[i], bytes buf[ends[i-1]:ends[i]]
	ends []int
	buf  []byte
	out  []probe.Segment
	strs []probe.StreamCtx
}

// add keeps one EV_H2_SEGS event's records.
func (j *segJoiner) add(ev *capture.Event) {
	if j.pending == nil {
		j.pending = map[segKey]*segBatch{}
	}
	k := segKey{ev.SockID, ev.Dir}
	b := j.pending[k]
	if b != nil && b.tid != ev.TID {
		b.reset() // an older syscall's, whose data event was lost
	}
	if b == nil {
		if n := len(j.free); n > 0 {
			b, j.free = j.free[n-1], j.free[:n-1]
		} else {
			b = &segBatch{}
		}
		j.pending[k] = b
	}
	b.tid = ev.TID
	b.strs = append(b.strs, ev.Streams...) // values: nothing aliases the ring
	for _, s := range ev.Segs {
		b.offs = append(b.offs, s.Off)
		b.buf = append(b.buf, s.Data...)
		b.ends = append(b.ends, len(b.buf))
	}
}

// take returns the segments and stream ids of data event ev (nil if
// none); they are valid until the next add or take.
func (j *segJoiner) take(ev *capture.Event) ([]probe.Segment, []probe.StreamCtx) {
	k := segKey{ev.SockID, ev.Dir}
	b := j.pending[k]
	if b == nil {
		return nil, nil
	}
	delete(j.pending, k)
	j.free = append(j.free, b)
	if b.tid != ev.TID {
		b.reset()
		return nil, nil
	}
	b.out = b.out[:0]
	start := 0
	for i, off := range b.offs {
		b.out = append(b.out, probe.Segment{Off: off, Data: b.buf[start:b.ends[i]]})
		start = b.ends[i]
	}
	out, strs := b.out, b.strs
	b.reset()
	return out, strs
}

// forget drops what a closed socket left pending.
func (j *segJoiner) forget(sock uint64) {
	for _, dir := range []probe.Direction{probe.Recv, probe.Send} {
		if b := j.pending[segKey{sock, dir}]; b != nil {
			b.reset()
			delete(j.pending, segKey{sock, dir})
			j.free = append(j.free, b)
		}
	}
}

func (b *segBatch) reset() {
	b.offs, b.ends, b.buf, b.strs = b.offs[:0], b.ends[:0], b.buf[:0], b.strs[:0]
}
