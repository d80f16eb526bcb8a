package probetest

import "math/rand"

// Splitter cuts one captured record into syscall-sized pieces, so a test
// can check a parser reassembles whatever the kernel hands it.
type Splitter func(b []byte) [][]byte

// Whole keeps a record as one syscall.
func Whole(b []byte) [][]byte { return [][]byte{b} }

// Bytewise makes every byte its own syscall.
func Bytewise(b []byte) [][]byte {
	out := make([][]byte, len(b))
	for i := range b {
		out[i] = b[i : i+1]
	}
	return out
}

// Random cuts pieces of 1 to 40 bytes, reproducibly from seed.
func Random(seed int64) Splitter { return RandomUpTo(seed, 40) }

// RandomUpTo cuts pieces of 1 to maxPiece (>= 1) bytes, reproducibly from seed.
func RandomUpTo(seed int64, maxPiece int) Splitter {
	r := rand.New(rand.NewSource(seed))
	maxPiece = max(maxPiece, 1)
	return func(b []byte) [][]byte {
		var out [][]byte
		for len(b) > 0 {
			n := 1 + r.Intn(min(len(b), maxPiece))
			out = append(out, b[:n])
			b = b[n:]
		}
		return out
	}
}
