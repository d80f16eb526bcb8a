package kafka

import "encoding/binary"

// reader decodes Kafka primitive types from a possibly truncated message.
// Any read past the end (or a nonsensical length) sets bad and returns
// zero values, so decoders can read straight through and check bad at the
// points where a truncated message still yields useful fields.
type reader struct {
	b    []byte
	bad  bool
	flex bool // compact strings/arrays and tagged fields (flexible versions)
}

func (r *reader) take(n int) []byte {
	if r.bad || n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) skip(n int) { r.take(n) }

func (r *reader) int8() int8 {
	if b := r.take(1); b != nil {
		return int8(b[0])
	}
	return 0
}

func (r *reader) int16() int16 {
	if b := r.take(2); b != nil {
		return int16(binary.BigEndian.Uint16(b))
	}
	return 0
}

func (r *reader) int32() int32 {
	if b := r.take(4); b != nil {
		return int32(binary.BigEndian.Uint32(b))
	}
	return 0
}

func (r *reader) int64() int64 {
	if b := r.take(8); b != nil {
		return int64(binary.BigEndian.Uint64(b))
	}
	return 0
}

func (r *reader) uvarint() uint64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// varint is the zig-zag signed varint of record fields.
func (r *reader) varint() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// length reads a string/bytes/array length: int16 (strings) or int32
// (bytes, arrays) when not flexible, unsigned varint N+1 when flexible.
// -1 means null.
func (r *reader) length(wide bool) int {
	if r.flex {
		v := r.uvarint()
		if v > 1<<31 {
			r.bad = true
			return -1
		}
		return int(v) - 1
	}
	if wide {
		return int(r.int32())
	}
	return int(r.int16())
}

// str reads a (nullable, compact when flexible) string.
func (r *reader) str() (string, bool) {
	n := r.length(false)
	if n < 0 || r.bad {
		return "", false
	}
	b := r.take(n)
	return string(b), !r.bad
}

// bytes reads (nullable, compact when flexible) BYTES/RECORDS without copying.
// A value cut by truncation returns the prefix that is there, with cut set.
func (r *reader) bytes() (b []byte, cut bool) {
	n := r.length(true)
	if n < 0 || r.bad {
		return nil, false
	}
	if n > len(r.b) {
		b = r.b
		r.bad, r.b = true, nil
		return b, true
	}
	return r.take(n), false
}

// array reads an array length; it returns 0 for null and refuses lengths
// that could not fit in what is left (each element is at least one byte),
// so a garbage count never drives a long loop.
func (r *reader) array() int {
	n := r.length(true)
	if n < 0 || r.bad {
		return 0
	}
	if n > len(r.b) {
		// A truncated message may legitimately announce more elements
		// than were captured; loops stop at bad.
		return len(r.b) + 1
	}
	return n
}

func (r *reader) uuid() (u [16]byte) {
	copy(u[:], r.take(16))
	return u
}

// tags skips a tagged-field section (flexible versions only).
func (r *reader) tags() {
	if !r.flex || r.bad {
		return
	}
	n := r.uvarint()
	for i := uint64(0); i < n && !r.bad; i++ {
		r.uvarint() // tag
		size := r.uvarint()
		if size > uint64(len(r.b)) {
			r.bad, r.b = true, nil
			return
		}
		r.skip(int(size))
	}
}

// skipInt32Array skips an array of int32 (replica lists).
func (r *reader) skipInt32Array() {
	n := r.array()
	if n > len(r.b)/4+1 {
		r.bad, r.b = true, nil
		return
	}
	r.skip(4 * n)
}
