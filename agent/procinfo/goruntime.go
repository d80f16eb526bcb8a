package procinfo

import (
	"debug/elf"
	"fmt"
)

// IsGoBinary reports whether pid runs a Go program (its executable has the
// .go.buildinfo section every Go binary since 1.13 carries). The kernel
// tracks a Go program's requests per goroutine instead of per thread.
func IsGoBinary(procRoot string, pid uint32) bool {
	f, err := elf.Open(fmt.Sprintf("%s/%d/exe", Root(procRoot), pid))
	if err != nil {
		return false
	}
	defer f.Close()
	return f.Section(".go.buildinfo") != nil
}
