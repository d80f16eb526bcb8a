package agent

import (
	"fmt"
	"testing"

	"github.com/tracer-agent/tracer-agent/agent/capture"
	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// Segment events join the next data event of their socket, direction and
// thread, across the other direction's and other sockets' events; a
// mismatched thread (the data event was lost) drops them; bytes are
// copies (the ring record they came in may be reused).
func TestSegJoiner(t *testing.T) {
	var j segJoiner
	buf := []byte("abcdefgh")
	seg := func(sock uint64, dir probe.Direction, tid uint32, off int, b []byte) *capture.Event {
		return &capture.Event{Type: capture.H2Segs, SockID: sock, Dir: dir, TID: tid, Segs: []probe.Segment{{Off: off, Data: b}}}
	}
	data := func(sock uint64, dir probe.Direction, tid uint32) *capture.Event {
		return &capture.Event{Type: capture.Data, SockID: sock, Dir: dir, TID: tid}
	}
	j.add(seg(1, probe.Recv, 7, 10, buf[:2]))
	j.add(seg(1, probe.Send, 8, 20, buf[2:4])) // the other direction, between
	j.add(seg(2, probe.Recv, 9, 30, buf[4:6])) // another socket
	last := seg(1, probe.Recv, 7, 12, buf[6:8])
	last.Streams = []probe.StreamCtx{{ID: 3}, {ID: 5}}
	j.add(last)
	copy(buf, "XXXXXXXX")
	got, streams := j.take(data(1, probe.Recv, 7))
	if show(got) != "10:ab 12:gh " || len(streams) != 2 || streams[0].ID != 3 || streams[1].ID != 5 {
		t.Errorf("recv: %s, streams %v", show(got), streams)
	}
	if got, streams := j.take(data(1, probe.Recv, 7)); got != nil || streams != nil {
		t.Errorf("taken twice: %s %v", show(got), streams)
	}
	if got, _ := j.take(data(1, probe.Send, 5)); got != nil {
		t.Errorf("another thread's segments joined: %s", show(got))
	}
	j.forget(2)
	if got, _ := j.take(data(2, probe.Recv, 9)); got != nil {
		t.Errorf("closed socket's segments joined: %s", show(got))
	}
}

func show(segs []probe.Segment) string {
	out := ""
	for _, s := range segs {
		out += fmt.Sprintf("%d:%s ", s.Off, s.Data)
	}
	return out
}
