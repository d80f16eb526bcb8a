package capture

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
)

// grpc-go servers handle each stream on a goroutine other than the one
// that read its HEADERS. Three uprobes (bpf/grpcgo.h), per connection and
// per RPC, hand the stream's kernel-decided ids to its handler goroutine.
var grpcProbes = &exeProbes{
	name: "grpc-go",
	probes: []exeProbe{
		{"google.golang.org/grpc/internal/transport.(*http2Server).HandleStreams", "go_grpc_reader"},
		{grpcHandleStream, "go_grpc_handle"},
		{"google.golang.org/grpc/internal/transport.(*http2Server).writeStatus", "go_grpc_status"},
	},
	missing: ErrNoGRPC,
	cookie:  grpcLayout,
}

// ErrNoGRPC: the executable has no grpc-go server (or no symbols).
var ErrNoGRPC = errors.New("no grpc-go server symbols")

// AttachGRPC attaches the grpc-go server uprobes to the executable of Go
// process pid, once per executable file.
func (c *Capture) AttachGRPC(pid uint32) error { return c.attachExe(pid, grpcProbes) }

const (
	grpcTransport    = "google.golang.org/grpc/internal/transport."
	grpcHandleStream = "google.golang.org/grpc.(*Server).handleStream"
)

// grpcLayout reads from the executable's DWARF the offsets the uprobes
// need (grpc-go and Go move these fields between releases), packed into
// the attach cookie: bits 0-15 the stream id in handleStream's stream
// (Stream.id, embedded in ServerStream since 1.69), 16-31 http2Server's
// conn (a net.Conn), 32-47 the fd in a *net.netFD (pfd.Sysfd).
func grpcLayout(path string) (uint64, error) {
	f, err := elf.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	syms, err := f.Symbols()
	if err != nil {
		return 0, ErrNoGRPC // stripped: nothing to attach to either
	}
	found := false
	for _, s := range syms {
		if s.Name == grpcHandleStream {
			found = true
			break
		}
	}
	if !found {
		return 0, ErrNoGRPC
	}
	d, err := f.DWARF()
	if err != nil {
		return 0, fmt.Errorf("grpc-go: no DWARF to find the stream layout (built with -w?): %w", err)
	}
	want := map[string]map[string]int64{
		grpcTransport + "ServerStream": nil,
		grpcTransport + "Stream":       nil,
		grpcTransport + "http2Server":  nil,
		"net.netFD":                    nil,
		"internal/poll.FD":             nil,
	}
	structMembers(d, want)
	off := func(typ, field string) (int64, error) {
		v, ok := want[typ][field]
		if !ok {
			return 0, fmt.Errorf("grpc-go: %s.%s not in DWARF", typ, field)
		}
		return v, nil
	}
	id, err := off(grpcTransport+"Stream", "id")
	if err != nil {
		return 0, err
	}
	if ss := want[grpcTransport+"ServerStream"]; ss != nil {
		base, ok := ss["Stream"]
		if !ok {
			return 0, fmt.Errorf("grpc-go: ServerStream does not embed Stream")
		}
		id += base
	} // else before 1.69: handleStream takes *transport.Stream
	conn, err := off(grpcTransport+"http2Server", "conn")
	if err != nil {
		return 0, err
	}
	pfd, err := off("net.netFD", "pfd")
	if err != nil {
		return 0, err
	}
	sysfd, err := off("internal/poll.FD", "Sysfd")
	if err != nil {
		return 0, err
	}
	for _, v := range []int64{id, conn, pfd + sysfd} {
		if v < 0 || v > 0xffff {
			return 0, fmt.Errorf("grpc-go: offset %d out of range", v)
		}
	}
	return uint64(id) | uint64(conn)<<16 | uint64(pfd+sysfd)<<32, nil
}

// structMembers fills want[name] with the member offsets of each struct
// type named, reading the DWARF once up to the last one found.
func structMembers(d *dwarf.Data, want map[string]map[string]int64) {
	r := d.Reader()
	for found := 0; found < len(want); {
		e, err := r.Next()
		if err != nil || e == nil {
			return
		}
		if e.Tag != dwarf.TagStructType {
			continue
		}
		name, _ := e.Val(dwarf.AttrName).(string)
		if m, ok := want[name]; !ok || m != nil || !e.Children {
			continue
		}
		members := map[string]int64{}
		for {
			c, err := r.Next()
			if err != nil || c == nil || c.Tag == 0 {
				break
			}
			if c.Tag == dwarf.TagMember {
				n, _ := c.Val(dwarf.AttrName).(string)
				if off, ok := c.Val(dwarf.AttrDataMemberLoc).(int64); ok {
					members[n] = off
				}
			}
			if c.Children {
				r.SkipChildren()
			}
		}
		want[name] = members
		found++
	}
}
