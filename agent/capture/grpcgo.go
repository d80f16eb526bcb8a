package capture

import (
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// grpc-go servers handle each stream on a goroutine other than the one
// that read its HEADERS. Three uprobes (bpf/grpcgo.h), per connection and
// per RPC, hand the stream's kernel-decided ids to its handler goroutine.
var grpcProbes = &exeProbes{
	name: "grpc-go",
	probes: []exeProbe{
		{grpcTransport + "(*http2Server).HandleStreams", "go_grpc_reader"},
		{grpcHandleStream, "go_grpc_handle"},
		{grpcTransport + "(*http2Server).writeStatus", "go_grpc_status"},
	},
	missing: ErrNoGRPC,
	layout:  grpcLayout,
	goFuncs: true,
}

// grpc-go clients queue a call's HEADERS for the connection's loopy-writer
// goroutine, which writes them. Two uprobes (bpf/grpcgo.h), per RPC, give
// the stream the CLIENT ids of the request its caller serves.
var grpcClientProbes = &exeProbes{
	name: "grpc-go client",
	probes: []exeProbe{
		{grpcNewStream, "go_grpc_put"}, // at its call of executeAndPut
		{grpcTransport + "(*loopyWriter).clientHeaderHandler", "go_grpc_hdr"},
	},
	missing: ErrNoGRPC,
	layout:  grpcClientLayout,
	goFuncs: true,
}

// ErrNoGRPC: the executable has no grpc-go server (or client), or no symbols.
var ErrNoGRPC = errors.New("no grpc-go symbols")

// AttachGRPC attaches the grpc-go server and client uprobes to the
// executable of Go process pid, once per executable file: an error for
// each (ErrNoGRPC when it has no such side).
func (c *Capture) AttachGRPC(pid uint32) (server, client error) {
	return c.attachExe(pid, grpcProbes), c.attachExe(pid, grpcClientProbes)
}

const (
	grpcTransport     = "google.golang.org/grpc/internal/transport."
	grpcHandleStream  = "google.golang.org/grpc.(*Server).handleStream"
	grpcNewStream     = grpcTransport + "(*http2Client).NewStream"
	grpcExecuteAndPut = grpcTransport + "(*controlBuffer).executeAndPut"
)

// members reads the offsets of the fields named ("type.field"; a type
// without a package is grpc-go's transport's) from d, those it finds.
func members(d *dwarf.Data, fields ...string) map[string]int64 {
	typeOf := func(w string) (string, string) {
		i := strings.LastIndexByte(w, '.')
		typ := w[:i]
		if !strings.Contains(typ, ".") {
			typ = grpcTransport + typ
		}
		return typ, w[i+1:]
	}
	types := map[string]map[string]int64{}
	for _, w := range fields {
		typ, _ := typeOf(w)
		types[typ] = nil
	}
	structMembers(d, types)
	out := map[string]int64{}
	for _, w := range fields {
		typ, field := typeOf(w)
		if v, ok := types[typ][field]; ok && v >= 0 && v <= 0xffff {
			out[w] = v
		}
	}
	return out
}

// need is the error for the first of fields m lacks.
func need(m map[string]int64, fields ...string) error {
	for _, f := range fields {
		if _, ok := m[f]; !ok {
			return fmt.Errorf("%s not in DWARF (or out of range)", f)
		}
	}
	return nil
}

// grpcLayout and grpcClientLayout are the two sets' layouts, read in one
// pass over the executable (its DWARF takes a while to read) and kept per
// file for the other set's attach.
func grpcLayout(path string) (exeLayout, error) {
	l := grpcLayoutsOf(path)
	return l.server, l.serr
}

func grpcClientLayout(path string) (exeLayout, error) {
	l := grpcLayoutsOf(path)
	return l.client, l.cerr
}

type grpcLayouts struct {
	server, client exeLayout
	serr, cerr     error
}

var grpcMemo struct {
	sync.Mutex
	m map[[2]uint64]*grpcLayouts
}

func grpcLayoutsOf(path string) *grpcLayouts {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return &grpcLayouts{serr: err, cerr: err}
	}
	key := [2]uint64{uint64(st.Dev), st.Ino}
	grpcMemo.Lock()
	defer grpcMemo.Unlock()
	if l := grpcMemo.m[key]; l != nil {
		return l
	}
	l := readGRPCLayouts(path)
	if grpcMemo.m == nil {
		grpcMemo.m = map[[2]uint64]*grpcLayouts{}
	}
	grpcMemo.m[key] = l
	return l
}

// The fields the uprobes read ("type.field"; see members).
var (
	grpcServerFields = []string{"Stream.id", "http2Server.conn", "net.netFD.pfd", "internal/poll.FD.Sysfd"}
	grpcClientFields = []string{"clientHeaders.streamID"}
)

// readGRPCLayouts reads both sides' layouts of the executable at path.
// Server: the attach cookie packs bits 0-15 the stream id in
// handleStream's stream (Stream.id, embedded in ServerStream since 1.69),
// 16-31 http2Server's conn (a net.Conn), 32-47 the fd in a *net.netFD
// (pfd.Sysfd). Client: the cookie is clientHeaders.streamID's offset,
// and go_grpc_put sits on NewStream's call of executeAndPut.
func readGRPCLayouts(path string) *grpcLayouts {
	l := &grpcLayouts{serr: ErrNoGRPC, cerr: ErrNoGRPC}
	f, err := elf.Open(path)
	if err != nil {
		l.serr, l.cerr = err, err
		return l
	}
	defer f.Close()
	syms, err := goFuncs(f, grpcHandleStream, grpcNewStream, grpcExecuteAndPut)
	if err != nil {
		return l // not a Go binary we can read: nothing to attach to either
	}
	_, server := syms[grpcHandleStream]
	_, client := syms[grpcNewStream]
	if !server && !client {
		return l
	}
	var m map[string]int64
	if d, derr := f.DWARF(); derr == nil {
		m = members(d, slices.Concat(grpcServerFields, grpcClientFields, []string{"ServerStream.Stream"})...)
	} else if m, err = grpcTableOffsets(path); err != nil {
		if server {
			l.serr = err
		}
		if client {
			l.cerr = err
		}
		return l
	}
	if server {
		l.serr = need(m, grpcServerFields...)
		// Before 1.69 handleStream takes a *transport.Stream (no ServerStream).
		id := m["Stream.id"] + m["ServerStream.Stream"]
		fd := m["net.netFD.pfd"] + m["internal/poll.FD.Sysfd"]
		if l.serr == nil && (id > 0xffff || fd > 0xffff) {
			l.serr = fmt.Errorf("grpc-go: stream id or fd offset out of range")
		}
		l.server.cookie = uint64(id) | uint64(m["http2Server.conn"])<<16 | uint64(fd)<<32
	}
	if client {
		l.cerr = need(m, grpcClientFields...)
		at, err := callSite(f, syms, grpcNewStream, grpcExecuteAndPut)
		if l.cerr == nil && err != nil {
			l.cerr = fmt.Errorf("grpc-go client: %w", err)
		}
		l.client = exeLayout{cookie: uint64(m["clientHeaders.streamID"]), at: map[string]uint64{"go_grpc_put": at}}
	}
	return l
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
