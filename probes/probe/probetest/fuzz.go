package probetest

import (
	"math/bits"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// The fuzz input is a program: each op is [ctl][n] followed by n payload
// bytes (fewer at the end of the input). ctl bit 0 picks the direction
// (Recv 0, Send 1); the next bits pick the lane (parser) when there are
// several; the remaining high bits add unseen bytes (Len > len(Data)) in
// growing steps, as when the kernel captures only a prefix.

// maxOp is the most payload one op carries.
const maxOp = 255

// Program translates capture records into fuzz ops of up to 255 bytes on
// lane 0: records whose Dir is sendDir become Send, the others Recv.
func Program(recs []Record, sendDir byte) []byte {
	var prog []byte
	for _, r := range recs {
		ctl := byte(probe.Recv)
		if r.Dir == sendDir {
			ctl = byte(probe.Send)
		}
		for data := r.Data; len(data) > 0; {
			k := min(len(data), maxOp)
			prog = append(prog, ctl, byte(k))
			prog = append(prog, data[:k]...)
			data = data[k:]
		}
	}
	return prog
}

// AddCaptureSeeds seeds f with every testdata/*.bin capture as a program
// (see Program); the records of a damaged file up to the damage. maxLen > 0
// cuts longer seeds: big seeds make the fuzzer's minimisation crawl.
func AddCaptureSeeds(f *testing.F, sendDir byte, maxLen int) {
	matches, _ := filepath.Glob("testdata/*.bin")
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		recs, _ := DecodeCapture(b)
		prog := Program(recs, sendDir)
		if maxLen > 0 && len(prog) > maxLen {
			prog = prog[:maxLen]
		}
		f.Add(prog)
	}
}

// Fuzz runs one program against parsers and checks the invariants every
// probe shares: no panic, no span ending before it starts, no parser
// keeping Data after Feed (it is overwritten).
type Fuzz struct {
	// Parsers are the lanes; with n of them, ceil(log2 n) ctl bits after
	// the direction pick one (modulo n).
	Parsers []probe.Parser
	// Span, when set, checks each span returned by Feed or Close.
	Span func(probe.Span)
	// After, when set, runs after every Feed: bounds on parser state.
	After func()
}

// Run executes prog. Failures call t.Fatalf.
func (fz Fuzz) Run(t testing.TB, prog []byte) {
	t.Helper()
	if len(fz.Parsers) == 0 {
		t.Fatal("probetest.Fuzz: no parsers")
	}
	laneBits := bits.Len(uint(len(fz.Parsers) - 1))
	check := func(spans []probe.Span) {
		t.Helper()
		for _, s := range spans {
			if s.End.Before(s.Start) {
				t.Fatalf("span %q ends before it starts", s.Name)
			}
			if fz.Span != nil {
				s.CloneAttrs() // the callback may keep it past the next call
				fz.Span(s)
			}
		}
	}
	now := time.Unix(1000, 0)
	for len(prog) >= 2 {
		ctl, n := prog[0], int(prog[1])
		prog = prog[2:]
		n = min(n, len(prog))
		data := append([]byte(nil), prog[:n]...)
		prog = prog[n:]
		lane := int(ctl>>1&(1<<laneBits-1)) % len(fz.Parsers)
		step := int(ctl >> (1 + laneBits))
		c := probe.Chunk{Dir: probe.Direction(ctl & 1), TID: uint32(n), Start: now, End: now.Add(time.Microsecond), Len: n + step*step*37, Data: data}
		now = now.Add(time.Millisecond)
		check(fz.Parsers[lane].Feed(c))
		clear(data) // the parser must not keep aliases
		if fz.After != nil {
			fz.After()
		}
	}
	for _, p := range fz.Parsers {
		check(p.Close(now))
	}
}
