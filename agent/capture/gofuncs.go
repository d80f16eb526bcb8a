package capture

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
)

// funcRange is a function's code, [entry, end) in virtual addresses.
type funcRange struct{ entry, end uint64 }

// goFuncs finds the functions named in a Go executable: from its symbol
// table, or, in a binary built with -ldflags=-s (no symbol table, the
// usual release build), from the runtime's own function table
// (.gopclntab), which every Go binary keeps. Names not found are absent.
func goFuncs(f *elf.File, names ...string) (map[string]funcRange, error) {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]funcRange{}
	if syms, err := f.Symbols(); err == nil {
		for _, s := range syms {
			if want[s.Name] && s.Size > 0 {
				out[s.Name] = funcRange{s.Value, s.Value + s.Size}
			}
		}
		return out, nil
	}
	tab, err := goFuncTable(f)
	if err != nil {
		return nil, err
	}
	for n := range want {
		if fn := tab.LookupFunc(n); fn != nil && fn.End > fn.Entry {
			out[n] = funcRange{fn.Entry, fn.End}
		}
	}
	return out, nil
}

// goFuncTable reads the runtime's function table of a Go executable.
func goFuncTable(f *elf.File) (*gosym.Table, error) {
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		return nil, fmt.Errorf("no symbol table and no .gopclntab")
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, err
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf(".gopclntab: %w", err)
	}
	return tab, nil
}

// fileOffset is where virtual address addr lies in the file: a uprobe
// placed by address takes the file offset.
func fileOffset(f *elf.File, addr uint64) (uint64, error) {
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && addr >= p.Vaddr && addr < p.Vaddr+p.Filesz {
			return addr - p.Vaddr + p.Off, nil
		}
	}
	return 0, fmt.Errorf("address %#x is in no executable segment", addr)
}
