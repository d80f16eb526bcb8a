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
func callSite(f *elf.File, fns map[string]funcRange, fn, target string) (uint64, error) {
	from, ok1 := fns[fn]
	to, ok2 := fns[target]
	if !ok1 || !ok2 {
		return 0, fmt.Errorf("call site: %s or %s not found", fn, target)
	}
	code, err := funcCode(f, from)
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
				from.entry+uint64(next)+uint64(int64(rel)) == to.entry {
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
			if from.entry+uint64(off)+uint64(imm*4) == to.entry {
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

// funcCode reads the bytes of function r.
func funcCode(f *elf.File, r funcRange) ([]byte, error) {
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_PROGBITS || sec.Flags&elf.SHF_EXECINSTR == 0 ||
			r.entry < sec.Addr || r.end > sec.Addr+sec.Size {
			continue
		}
		b := make([]byte, r.end-r.entry)
		if _, err := sec.ReadAt(b, int64(r.entry-sec.Addr)); err != nil {
			return nil, fmt.Errorf("call site: reading %#x: %w", r.entry, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("call site: %#x is in no code section", r.entry)
}
