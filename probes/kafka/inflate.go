package kafka

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"sync"

	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Decompression bounds: record headers are read from at most maxInflate
// bytes of one batch and inflateBudget bytes per message, so a
// compression bomb costs bounded memory and CPU.
const (
	maxInflate    = 64 << 10
	inflateBudget = 256 << 10
)

// Kafka's batch compression codecs (attributes bits 0-2).
const (
	codecGzip   = 1
	codecSnappy = 2
	codecLZ4    = 3
	codecZstd   = 4
)

// xerialMagic starts snappy data framed the way the Java client writes it.
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

// zstdPool holds synchronous (concurrency 1) low-memory decoders. The
// window limit must admit what producers declare (8 MiB is common); only
// the bytes we read are materialized.
var zstdPool = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecoderMaxWindow(32<<20))
	if err != nil {
		return nil
	}
	return d
}}

// inflate returns up to limit bytes of a compressed batch's records; what
// a cut or corrupt input yields before failing is still returned.
func inflate(codec int, src []byte, limit int) []byte {
	if limit <= 0 {
		return nil
	}
	switch codec {
	case codecGzip:
		zr, err := gzip.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil
		}
		return readLimited(zr, limit)
	case codecSnappy:
		return unsnappy(src, limit)
	case codecLZ4:
		return readLimited(lz4.NewReader(bytes.NewReader(src)), limit)
	case codecZstd:
		d, _ := zstdPool.Get().(*zstd.Decoder)
		if d == nil {
			return nil
		}
		defer zstdPool.Put(d)
		if d.Reset(bytes.NewReader(src)) != nil {
			return nil
		}
		out := readLimited(d, limit)
		d.Reset(nil) // drop the reference to src
		return out
	}
	return nil
}

func readLimited(r io.Reader, limit int) []byte {
	out := make([]byte, 0, min(limit, 4096))
	buf := make([]byte, 4096)
	// Streaming decoders may return 0 bytes without an error while they
	// refill; a few of those in a row mean no progress.
	for idle := 0; len(out) < limit && idle < 8; {
		n, err := r.Read(buf[:min(len(buf), limit-len(out))])
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return out
}

// unsnappy decodes a raw snappy block or xerial framing (a header, then
// int32-length-prefixed blocks), block by block while they fit limit. A
// raw block larger than limit cannot be decoded in part and is skipped.
func unsnappy(src []byte, limit int) []byte {
	if !bytes.HasPrefix(src, xerialMagic) {
		if n, err := snappy.DecodedLen(src); err != nil || n > limit {
			return nil
		}
		out, err := snappy.Decode(nil, src)
		if err != nil {
			return nil
		}
		return out
	}
	if len(src) < 16 {
		return nil
	}
	src = src[16:] // magic, version, compatible version
	var out []byte
	for len(src) >= 4 {
		n := int(binary.BigEndian.Uint32(src))
		if n < 0 || n > len(src)-4 {
			break
		}
		block := src[4 : 4+n]
		src = src[4+n:]
		dl, err := snappy.DecodedLen(block)
		if err != nil || dl > limit-len(out) {
			break
		}
		dec, err := snappy.Decode(nil, block)
		if err != nil {
			break
		}
		out = append(out, dec...)
	}
	return out
}
