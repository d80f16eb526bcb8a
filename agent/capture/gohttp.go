package capture

import "errors"

// Go's net/http client writes a request from its connection's writeLoop
// goroutine, not from the handler goroutine that serves the incoming
// request. Two uprobes (bpf/gohttp.h) hand the handler's context to that
// writer; they fire per client request and per connection, never per
// syscall.
var goProbes = &exeProbes{
	name: "go",
	probes: []exeProbe{
		{"net/http.(*persistConn).roundTrip", "go_roundtrip"},
		{"net/http.(*persistConn).writeLoop", "go_writeloop"},
	},
	missing: ErrNoGoHTTP,
	goFuncs: true,
}

// ErrNoGoHTTP: the executable has no net/http client functions (it does
// not use net/http's client, or they were inlined away). Its requests still become spans; only
// cross-goroutine linking of its client calls is missing.
var ErrNoGoHTTP = errors.New("no net/http client symbols")

// AttachGo attaches the net/http uprobes to the executable of Go process
// pid, once per executable file.
func (c *Capture) AttachGo(pid uint32) error { return c.attachExe(pid, goProbes) }
