package http2

import (
	"fmt"
	"testing"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
)

// kernelSegs does in Go what bpf/h2_seg.h does per direction: it follows
// the frame position across chunks and gives, past each chunk's captured
// prefix, every byte but DATA payload as records of at most 4096 bytes.
type kernelSegs struct {
	pos [2]struct {
		skip    int
		typ     uint8
		hdr     []byte
		started bool
	}
}

func (k *kernelSegs) segments(client bool) func(dir probe.Direction, b []byte, captured int) []probe.Segment {
	return func(dir probe.Direction, b []byte, captured int) []probe.Segment {
		st := &k.pos[dir]
		if !st.started {
			st.started = true
			if (dir == probe.Send) == client { // client → server: the preface first
				st.skip = len(clientPreface)
			}
		}
		var out []probe.Segment
		put := func(off, n int) {
			for ; n > 0; n = 0 {
				lo, hi := max(off, captured), off+n
				for ; lo < hi; lo += 4096 {
					end := min(hi, lo+4096)
					if l := len(out); l > 0 && out[l-1].Off+len(out[l-1].Data) == lo && len(out[l-1].Data)+end-lo <= 4096 {
						out[l-1].Data = b[out[l-1].Off:end] // the kernel would make two records: same bytes
						continue
					}
					out = append(out, probe.Segment{Off: lo, Data: b[lo:end]})
				}
			}
		}
		for p := 0; p < len(b); {
			if st.skip > 0 {
				n := min(st.skip, len(b)-p)
				if st.typ != frameData {
					put(p, n)
				}
				st.skip -= n
				p += n
				continue
			}
			n := min(frameHeaderLen-len(st.hdr), len(b)-p)
			st.hdr = append(st.hdr, b[p:p+n]...)
			put(p, n)
			p += n
			if len(st.hdr) == frameHeaderLen {
				st.skip = int(st.hdr[0])<<16 | int(st.hdr[1])<<8 | int(st.hdr[2])
				st.typ = st.hdr[3]
				// The preface's skip had type 0 too: no bytes recorded.
				st.hdr = st.hdr[:0]
			}
		}
		return out
	}
}

// TestCapturesSegments: every capture, in every split, with prefixes cut
// to a few bytes but the kernel's segments past them: the spans, their
// times and the HPACK state are exactly those of the whole capture.
func TestCapturesSegments(t *testing.T) {
	// A fresh splitter per replay: the random one must cut both alike.
	splits := map[string]func() probetest.Splitter{
		"whole":   func() probetest.Splitter { return probetest.Whole },
		"bytes":   func() probetest.Splitter { return probetest.Bytewise },
		"random1": func() probetest.Splitter { return probetest.Random(1) },
	}
	for _, limit := range []int{9, 24, 40, 200} {
		for _, c := range captures {
			recs := probetest.LoadCapture(t, c.file)
			for _, client := range []bool{false, true} {
				for sname, split := range splits {
					t.Run(fmt.Sprintf("%s/limit=%d/client=%v/%s", c.file, limit, client, sname), func(t *testing.T) {
						whole, _ := replay(recs, client, split(), nil)
						whole.Close()
						ks := &kernelSegs{}
						d, _ := replayWith(recs, client, split(), func(int, probetest.Record) int { return limit }, ks.segments(client))
						d.Close()
						if got, want := probetest.Names(d.Spans), probetest.Names(whole.Spans); fmt.Sprint(got) != fmt.Sprint(want) {
							t.Fatalf("spans %q, want %q", got, want)
						}
						for i := range d.Spans {
							if d.Spans[i].Start != whole.Spans[i].Start || d.Spans[i].End != whole.Spans[i].End ||
								fmt.Sprint(d.Spans[i].Attrs) != fmt.Sprint(whole.Spans[i].Attrs) {
								t.Errorf("span %d: %+v, want %+v", i, d.Spans[i], whole.Spans[i])
							}
						}
						p := d.Parser.(*parser)
						for k := range p.dirs {
							if h := p.dirs[k].hp; h == nil || h.degraded || h.lost != 0 {
								t.Errorf("dir %d: hpack %+v, want whole", k, h)
							}
						}
					})
				}
			}
		}
	}
}

// Segments the framer cannot use (out of order, past the syscall) end
// what it knows of that chunk, as a gap would: no panic, no wrong name.
func TestSegmentsMalformed(t *testing.T) {
	for _, c := range captures {
		recs := probetest.LoadCapture(t, c.file)
		t.Run(c.file, func(t *testing.T) {
			bad := func(_ probe.Direction, b []byte, captured int) []probe.Segment {
				if len(b) < 20 {
					return nil
				}
				return []probe.Segment{{Off: 12, Data: b[12:15]}, {Off: 3, Data: b[3:9]}, {Off: len(b) - 2, Data: []byte("xxxx")}}
			}
			d, _ := replayWith(recs, false, probetest.Whole, func(int, probetest.Record) int { return 5 }, bad)
			d.Close()
			probetest.CheckTimes(t, d.Spans)
			for _, sp := range d.Spans {
				if _, ok := allowedName(sp.Name, c.spans); !ok {
					t.Errorf("unexpected span name %q", sp.Name)
				}
			}
		})
	}
}
