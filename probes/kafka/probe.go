// Package kafka turns the Kafka wire protocol of one client connection into
// PRODUCER spans (Produce requests) and CONSUMER spans (Fetch responses that
// returned records). Callers import it as kafkaprobe.
//
// Layout: apis.go knows API keys and flexible versions, wire.go decodes
// primitives, framing.go cuts size-prefixed messages, produce.go, fetch.go,
// metadata.go, groups.go and records.go decode the bodies the spans need,
// parser.go matches responses to requests by correlation id, shared.go
// holds what connections of a probe learn from each other, span.go builds
// spans.
package kafka

import (
	"encoding/binary"

	"github.com/tracer-agent/tracer-agent/probes/probe"
)

// Options configures the Kafka probe. Empty for now; kept so callers need
// not change when options appear.
type Options struct{}

type kafkaProbe struct {
	opts   Options
	shared *shared
}

// New returns the Kafka probe. Its parsers share topic ids learned from
// Metadata responses (Fetch v13+ names topics by id only) and consumer
// groups learned on a client's group connection.
func New(opts Options) probe.Probe { return &kafkaProbe{opts: opts, shared: newShared()} }

func (*kafkaProbe) Name() string { return "kafka" }

// Detect claims a connection whose first captured write is a Kafka request.
func (*kafkaProbe) Detect(c *probe.Chunk) bool {
	if c == nil || c.Dir != probe.Send {
		return false
	}
	return looksLikeRequest(c.Data, c.Len, 2)
}

func (k *kafkaProbe) NewParser(conn probe.Conn) probe.Parser { return newParser(conn, k.shared) }

// minSplitWrite: a first write shorter than its request's size is only
// plausible for big requests the kernel split.
const minSplitWrite = 4096

// looksLikeRequest checks a request header strictly: size, a known API key,
// a version that key has, a non-negative correlation id and a printable
// client id whose length fits the message. depth allows checking the next
// request when one write carries several.
func looksLikeRequest(b []byte, total, depth int) bool {
	if len(b) < 14 || depth <= 0 {
		return false
	}
	size := int(int32(binary.BigEndian.Uint32(b)))
	key := int16(binary.BigEndian.Uint16(b[4:]))
	ver := int16(binary.BigEndian.Uint16(b[6:]))
	corr := int32(binary.BigEndian.Uint32(b[8:]))
	idLen := int(int16(binary.BigEndian.Uint16(b[12:])))
	if size < 10 || size > maxMessage || corr < 0 || !validVersion(key, ver) {
		return false
	}
	if requestHeaderVersion(key, ver) == 0 {
		return false // broker-internal ControlledShutdown v0: not a client
	}
	if idLen < -1 || idLen > size-10 || idLen > 1024 {
		return false
	}
	for i := 0; i < idLen && 14+i < len(b); i++ {
		if c := b[14+i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	switch {
	case size+4 == total:
		return true
	case size+4 > total:
		return total >= minSplitWrite
	case size+4 <= len(b):
		// Several requests in one write: the next one must look right too.
		return looksLikeRequest(b[size+4:], total-size-4, depth-1)
	}
	return false
}
