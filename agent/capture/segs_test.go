package capture

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/tracer-agent/tracer-agent/bpf"
)

// The kernel's segment event body: byte records and stream records
// (bpf/h2_seg.h, bpf/h2_stream.h) come apart; a record that does not fit
// ends the list; a stream record of another size, or neither a SERVER
// (a Go server's read) nor a CLIENT context (a Go writer's stream),
// yields nothing.
func TestDecodeSegs(t *testing.T) {
	rec := func(off, n uint32, b []byte) []byte {
		h := make([]byte, 8)
		binary.LittleEndian.PutUint32(h, off)
		binary.LittleEndian.PutUint32(h[4:], n)
		return append(h, b...)
	}
	var k bpf.CaptureTraceCtx
	k.Kind = 1 // CTX_SERVER
	k.CtxFlags = 1
	k.TraceFlags = 1
	for i := range k.TraceId {
		k.TraceId[i] = byte(i + 1)
	}
	copy(k.SpanId[:], "spanid01")
	copy(k.ParentId[:], "parent01")
	ctx := unsafe.Slice((*byte)(unsafe.Pointer(&k)), unsafe.Sizeof(k))
	var body []byte
	body = append(body, rec(100, 3, []byte("abc"))...)
	body = append(body, rec(7, recStream|uint32(len(ctx)), ctx)...)
	body = append(body, rec(200, 2, []byte("de"))...)
	client := k
	client.Kind = 2
	body = append(body, rec(9, recStream|uint32(len(ctx)), unsafe.Slice((*byte)(unsafe.Pointer(&client)), len(ctx)))...)
	none := k
	none.Kind = 0
	body = append(body, rec(11, recStream|uint32(len(ctx)), unsafe.Slice((*byte)(unsafe.Pointer(&none)), len(ctx)))...)
	body = append(body, rec(300, 50, []byte("short"))...) // does not fit
	segs, streams := decodeSegs(body)
	if len(segs) != 2 || segs[0].Off != 100 || string(segs[0].Data) != "abc" || segs[1].Off != 200 || string(segs[1].Data) != "de" {
		t.Errorf("segments %+v", segs)
	}
	if len(streams) != 2 || streams[1].ID != 9 || streams[1].Parent.IsRemote() {
		t.Fatalf("streams %+v, want streams 7 and 9 (its parent in-process)", streams)
	}
	s := streams[0]
	if s.ID != 7 || s.Ctx.SpanID().String() != "7370616e69643031" || s.Parent.SpanID().String() != "706172656e743031" ||
		s.Ctx.TraceID() != s.Parent.TraceID() || !s.Ctx.IsSampled() || !s.Parent.IsRemote() {
		t.Errorf("stream %+v", s)
	}
	if _, st := decodeSegs(rec(5, recStream|8, make([]byte, 8))); st != nil {
		t.Errorf("a stream record of 8 bytes decoded: %+v", st)
	}
}
