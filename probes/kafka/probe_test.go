package kafka

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestName(t *testing.T) {
	if n := New(Options{}).Name(); n != "kafka" {
		t.Fatal(n)
	}
}

// TestDetectCaptures: the first write of every captured connection is a
// Kafka request (ApiVersions, Metadata, ...).
func TestDetectCaptures(t *testing.T) {
	pr := New(Options{})
	for _, c := range captures {
		seen := map[int]bool{}
		for _, r := range loadCapture(t, c.file) {
			if r.dir != '>' || seen[r.conn] {
				continue
			}
			seen[r.conn] = true
			ch := probe.Chunk{Dir: probe.Send, Len: len(r.data), Data: r.data}
			if !pr.Detect(&ch) {
				t.Errorf("%s conn %d: first write % x not detected", c.file, r.conn, r.data[:min(32, len(r.data))])
			}
			ch.Dir = probe.Recv
			if pr.Detect(&ch) {
				t.Errorf("%s conn %d: a read must not be claimed", c.file, r.conn)
			}
			// A short capture prefix of the same write.
			ch = probe.Chunk{Dir: probe.Send, Len: len(r.data), Data: r.data[:min(len(r.data), 20)]}
			if !pr.Detect(&ch) && len(r.data) >= minSplitWrite {
				t.Errorf("%s conn %d: prefix not detected", c.file, r.conn)
			}
		}
	}
}

// TestDetectOtherProtocols: no chunk of the HTTP and SQL captures, in
// either direction, looks like a Kafka request; nor do common preambles.
func TestDetectOtherProtocols(t *testing.T) {
	pr := New(Options{})
	var chunks [][]byte
	files, _ := filepath.Glob("../*/testdata/*.bin")
	more, _ := filepath.Glob("../*/*/testdata/*.bin")
	for _, f := range append(files, more...) {
		if filepath.Base(filepath.Dir(filepath.Dir(f))) == "kafka" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= 5 { // [dir][u32 len][data]
			n := int(binary.BigEndian.Uint32(b[1:5]))
			if 5+n > len(b) {
				break
			}
			chunks = append(chunks, b[5:5+n])
			b = b[5+n:]
		}
	}
	if len(chunks) < 20 {
		t.Logf("only %d chunks of other protocols' captures found", len(chunks))
	}
	chunks = append(chunks,
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		[]byte("POST /api HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
		[]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
		[]byte("*1\r\n$4\r\nPING\r\n"),
		[]byte{0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f},                                                    // PostgreSQL SSLRequest
		append([]byte{0, 0, 0, 41, 0, 3, 0, 0}, "user\x00postgres\x00database\x00shop\x00\x00"...), // StartupMessage
		[]byte{0x16, 3, 1, 0, 0xc8, 1, 0, 0, 0xc4, 3, 3, 0, 0, 0, 0, 0},                            // TLS ClientHello
		[]byte{0xb8, 0, 0, 1, 0x85, 0xa6, 0xff, 1, 0, 0, 0, 1, 0x21, 0, 0, 0},                      // MySQL handshake response
	)
	for _, b := range chunks {
		for _, dir := range []probe.Direction{probe.Send, probe.Recv} {
			c := probe.Chunk{Dir: dir, Len: len(b), Data: b}
			if pr.Detect(&c) {
				t.Errorf("claimed %q", b[:min(len(b), 40)])
			}
		}
	}
	if pr.Detect(nil) {
		t.Error("nil chunk")
	}
}

// TestDetectPipelined: one write with two requests is a Kafka write only
// if both look right.
func TestDetectPipelined(t *testing.T) {
	pr := New(Options{})
	av := kmsg.NewPtrApiVersionsRequest()
	av.SetVersion(3)
	av.ClientSoftwareName, av.ClientSoftwareVersion = "x", "1"
	md := kmsg.NewPtrMetadataRequest()
	md.SetVersion(9)
	two := append(frameRequest(av, 0), frameRequest(md, 1)...)
	if c := (probe.Chunk{Dir: probe.Send, Len: len(two), Data: two}); !pr.Detect(&c) {
		t.Error("two requests not detected")
	}
	bad := append(frameRequest(av, 0), "GET / HTTP/1.1\r\n"...)
	if c := (probe.Chunk{Dir: probe.Send, Len: len(bad), Data: bad}); pr.Detect(&c) {
		t.Error("request + HTTP detected")
	}
}
