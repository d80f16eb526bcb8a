package capture

import (
	"debug/elf"
	"encoding/binary"
	"fmt"

	"golang.org/x/arch/x86/x86asm"
)

// callSite returns the offset, from the start of function fn, of fn's one
// direct call of function target: a uprobe there runs on fn's goroutine with
// the call's arguments in their registers, and only when fn makes that
// call, where a uprobe on target would run for every caller. The offset must
// be an instruction boundary (a uprobe inside an instruction breaks the
// program), so amd64 code is decoded from fn's first byte, not searched;
// arm64 instructions are all 4 bytes. Zero or several such calls, or code
// that does not decode, are an error: no uprobe is better than a wrong one.
func callSite(f *elf.File, syms []elf.Symbol, fn, target string) (uint64, error) {
	var from, to *elf.Symbol
	for i := range syms {
		switch syms[i].Name {
		case fn:
			from = &syms[i]
		case target:
			to = &syms[i]
		}
	}
	if from == nil || to == nil || from.Size == 0 {
		return 0, fmt.Errorf("call site: %s or %s not in the symbol table", fn, target)
	}
	code, err := symbolCode(f, from)
	if err != nil {
		return 0, err
	}
	var sites []uint64
	switch f.Machine {
	case elf.EM_X86_64:
		for off := 0; off < len(code); {
			inst, err := x86asm.Decode(code[off:], 64)
			if err != nil {
				return 0, fmt.Errorf("call site: %s does not decode at +%#x: %w", fn, off, err)
			}
			next := off + inst.Len
			if rel, ok := inst.Args[0].(x86asm.Rel); ok && inst.Op == x86asm.CALL &&
				from.Value+uint64(next)+uint64(int64(rel)) == to.Value {
				sites = append(sites, uint64(off))
			}
			off = next
		}
	case elf.EM_AARCH64:
		for off := 0; off+4 <= len(code); off += 4 {
			w := binary.LittleEndian.Uint32(code[off:])
			if w&0xfc000000 != 0x94000000 { // BL imm26
				continue
			}
			imm := int64(int32(w<<6) >> 6) // sign-extended imm26
			if from.Value+uint64(off)+uint64(imm*4) == to.Value {
				sites = append(sites, uint64(off))
			}
		}
	default:
		return 0, fmt.Errorf("call site: no decoder for %v", f.Machine)
	}
	if len(sites) != 1 {
		return 0, fmt.Errorf("call site: %s calls %s %d times, want once", fn, target, len(sites))
	}
	return sites[0], nil
}

// symbolCode reads the bytes of function symbol s.
func symbolCode(f *elf.File, s *elf.Symbol) ([]byte, error) {
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 ||
			s.Value < sec.Addr || s.Value+s.Size > sec.Addr+sec.Size {
			continue
		}
		b := make([]byte, s.Size)
		if _, err := sec.ReadAt(b, int64(s.Value-sec.Addr)); err != nil {
			return nil, fmt.Errorf("call site: reading %s: %w", s.Name, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("call site: %s is in no code section", s.Name)
}
