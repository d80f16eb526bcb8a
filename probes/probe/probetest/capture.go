package probetest

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// Record is one proxy read of a capture: Dir '>' client→server, '<' back.
type Record struct {
	Dir  byte
	Data []byte
}

// DecodeCapture parses the capture format of testdata/*.bin: records of
// [dir][len u32 big endian][data]. On a corrupt file it returns the records
// before the damage and false.
func DecodeCapture(b []byte) ([]Record, bool) {
	var recs []Record
	for len(b) >= 5 {
		if b[0] != '>' && b[0] != '<' {
			return recs, false
		}
		n := int(binary.BigEndian.Uint32(b[1:5]))
		if n < 0 || 5+n > len(b) {
			return recs, false
		}
		recs = append(recs, Record{b[0], b[5 : 5+n]})
		b = b[5+n:]
	}
	return recs, len(b) == 0
}

// LoadCapture reads testdata/name.bin, failing the test when it is missing
// or corrupt.
func LoadCapture(t testing.TB, name string) []Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	recs, ok := DecodeCapture(b)
	if !ok {
		t.Fatalf("%s: corrupt capture", name)
	}
	return recs
}
