package capture

import (
	"debug/buildinfo"
	"fmt"
	"strings"
)

// Offsets the uprobes need, for binaries without DWARF (-ldflags=-w or
// -s: the usual release build), by the release the binary was built with
// or against; each was read from the DWARF of a build with that release,
// and TestGoLayouts checks them against it. A release not listed: the
// hand-off is not attached, and the agent says why.

// goReleaseLayout: runtime.g's m, runtime.m's curg, runtime.g's startpc,
// and the fd in a *net.netFD (pfd.Sysfd).
type goReleaseLayout struct{ gM, mCurg, startpc, fd int64 }

var goReleaseLayouts = map[string]goReleaseLayout{
	"go1.26": {0x30, 0xb8, 0x130, 0x10},
	"go1.27": {0x30, 0xb8, 0x130, 0x10},
}

// grpcReleaseLayout: the stream id in handleStream's stream, http2Server's
// conn, clientHeaders' streamID.
type grpcReleaseLayout struct{ streamID, conn, clientStreamID int64 }

var grpcReleaseLayouts = map[string]grpcReleaseLayout{
	"v1.82": {0x6c, 0x10, 0},
	"v1.83": {0x6c, 0x10, 0},
	"v1.84": {0x6c, 0x10, 0},
	"v1.85": {0x6c, 0x10, 0},
}

// goRelease is the Go release ("go1.26") the binary at path was built
// with, "" if unknown.
func goRelease(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	return minorOf(strings.TrimPrefix(bi.GoVersion, "go"), "go")
}

// grpcRelease is the grpc-go minor ("v1.84") the binary at path has.
func grpcRelease(path string) string {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, d := range bi.Deps {
		if d.Path == "google.golang.org/grpc" {
			if d.Replace != nil {
				d = d.Replace
			}
			return minorOf(strings.TrimPrefix(d.Version, "v"), "v")
		}
	}
	return ""
}

// minorOf: "1.26.8" (or "1.27rc1") -> prefix + "1.26".
func minorOf(v, prefix string) string {
	major, rest, ok := strings.Cut(v, ".")
	if !ok {
		return ""
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(rest)
	}
	return prefix + major + "." + rest[:end]
}

// grpcTableOffsets: the fields readGRPCLayouts reads from DWARF, from the
// tables instead.
func grpcTableOffsets(path string) (map[string]int64, error) {
	goRel, grpcRel := goRelease(path), grpcRelease(path)
	g, gv := goReleaseLayouts[goRel]
	r, rv := grpcReleaseLayouts[grpcRel]
	if !gv || !rv {
		return nil, fmt.Errorf("grpc-go: no DWARF (built with -w or -s), and no known layout for %s with grpc-go %s",
			goRel, grpcRel)
	}
	return map[string]int64{
		"Stream.id": r.streamID, "http2Server.conn": r.conn, "clientHeaders.streamID": r.clientStreamID,
		"net.netFD.pfd": g.fd, "internal/poll.FD.Sysfd": 0,
	}, nil
}
