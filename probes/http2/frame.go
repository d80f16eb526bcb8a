package http2

import "encoding/binary"

// clientPreface opens every HTTP/2 connection from the client (RFC 9113 §3.4).
const clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

const frameHeaderLen = 9

// Frame types (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9
)

// Frame flags.
const (
	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// Settings identifiers we read or validate (RFC 9113 §6.5.2, RFC 8441, RFC 9218).
const (
	settingHeaderTableSize   = 0x1
	settingEnablePush        = 0x2
	settingInitialWindowSize = 0x4
	settingMaxFrameSize      = 0x5
	settingEnableConnect     = 0x8
	settingNoRFC7540Prio     = 0x9
)

// strictMaxLen bounds frame lengths when recognising a connection without
// its preface: peers may raise SETTINGS_MAX_FRAME_SIZE up to 16 MiB, but
// real frames this large are rare and garbage often looks like huge lengths.
const strictMaxLen = 1 << 20

type frameHeader struct {
	length uint32
	typ    uint8
	flags  uint8
	stream uint32
	rbit   bool // reserved bit of the stream id (must be 0)
}

func parseFrameHeader(b []byte) frameHeader {
	sid := binary.BigEndian.Uint32(b[5:9])
	return frameHeader{
		length: uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		typ:    b[3],
		flags:  b[4],
		stream: sid & 0x7fffffff,
		rbit:   sid&0x80000000 != 0,
	}
}

// allowedFlags are the flags each known type defines; others are unused
// bits that senders must leave zero (RFC 9113 §4.1).
var allowedFlags = [...]uint8{
	frameData:         flagEndStream | flagPadded,
	frameHeaders:      flagEndStream | flagEndHeaders | flagPadded | flagPriority,
	framePriority:     0,
	frameRSTStream:    0,
	frameSettings:     flagAck,
	framePushPromise:  flagEndHeaders | flagPadded,
	framePing:         flagAck,
	frameGoAway:       0,
	frameWindowUpdate: 0,
	frameContinuation: flagEndHeaders,
}

// plausible checks what any well-formed frame of a known type satisfies
// (RFC 9113 §6): stream-0 rules, fixed sizes, padding room. Unknown types
// are extensions: plausible unless strict.
func (h frameHeader) plausible(strict bool) bool {
	if int(h.typ) >= len(allowedFlags) {
		return !strict && !h.rbit
	}
	if h.rbit || (strict && h.flags&^allowedFlags[h.typ] != 0) {
		return false
	}
	if strict && h.length > strictMaxLen {
		return false
	}
	switch h.typ {
	case frameData:
		return h.stream != 0 && (h.flags&flagPadded == 0 || h.length >= 1)
	case frameHeaders:
		min := uint32(0)
		if h.flags&flagPadded != 0 {
			min++
		}
		if h.flags&flagPriority != 0 {
			min += 5
		}
		if strict && min == 0 {
			min = 1 // an empty first fragment is legal but never seen
		}
		return h.stream != 0 && h.length >= min
	case framePriority:
		return h.stream != 0 && h.length == 5
	case frameRSTStream:
		return h.stream != 0 && h.length == 4
	case frameSettings:
		if h.flags&flagAck != 0 {
			return h.stream == 0 && h.length == 0
		}
		return h.stream == 0 && h.length%6 == 0
	case framePushPromise:
		return h.stream != 0 && h.length >= 4
	case framePing:
		return h.stream == 0 && h.length == 8
	case frameGoAway:
		return h.stream == 0 && h.length >= 8
	case frameWindowUpdate:
		return h.length == 4
	case frameContinuation:
		return h.stream != 0
	}
	return true
}

// validSettings checks the values of a SETTINGS payload that RFC 9113
// bounds; unknown identifiers are allowed (they must be ignored).
func validSettings(p []byte) bool {
	for ; len(p) >= 6; p = p[6:] {
		id := binary.BigEndian.Uint16(p)
		v := binary.BigEndian.Uint32(p[2:])
		switch id {
		case settingEnablePush, settingEnableConnect, settingNoRFC7540Prio:
			if v > 1 {
				return false
			}
		case settingInitialWindowSize:
			if v > 1<<31-1 {
				return false
			}
		case settingMaxFrameSize:
			if v < 1<<14 || v > 1<<24-1 {
				return false
			}
		}
	}
	return true
}

// looksLikeFrames reports whether b, read at a frame boundary, is a run of
// plausible HTTP/2 frames: used to recognise (first=true) and re-join
// (first=false) a connection whose preface we did not see. It is strict on
// purpose: HTTP/1, SQL or Kafka bytes must never pass. The last frame may
// run past b when the chunk holds only part of it.
func looksLikeFrames(b []byte, first bool) bool {
	if len(b) < frameHeaderLen {
		return false
	}
	h := parseFrameHeader(b)
	// A connection is claimed on SETTINGS, HEADERS or DATA; also on PING
	// and WINDOW_UPDATE, whose fixed 9-byte shapes are as telling and which
	// grpc-go puts in front of most writes (BDP pings, flow control).
	if first && h.typ != frameSettings && h.typ != frameHeaders && h.typ != frameData && h.typ != framePing && h.typ != frameWindowUpdate {
		return false
	}
	frames := 0
	var block uint32 // stream whose header block is open, 0 when none
	for len(b) >= frameHeaderLen {
		h := parseFrameHeader(b)
		if !h.plausible(true) {
			return false
		}
		if block != 0 && (h.typ != frameContinuation || h.stream != block) {
			return false // a header block must not be interleaved (RFC 9113 §6.10)
		}
		if block == 0 && h.typ == frameContinuation {
			return false
		}
		switch h.typ {
		case frameHeaders, framePushPromise:
			if h.flags&flagEndHeaders == 0 {
				block = h.stream
			}
		case frameContinuation:
			if h.flags&flagEndHeaders != 0 {
				block = 0
			}
		}
		end := frameHeaderLen + int(h.length)
		if h.typ == frameSettings && end <= len(b) && !validSettings(b[frameHeaderLen:end]) {
			return false
		}
		if h.typ == frameData && h.flags&flagPadded != 0 && len(b) > frameHeaderLen && uint32(b[frameHeaderLen]) >= h.length {
			return false
		}
		frames++
		if end > len(b) {
			return true // the chunk ends inside this frame's payload
		}
		b = b[end:]
	}
	// A few trailing bytes of the next header (a read can stop anywhere):
	// what is there must still be a known type.
	return frames > 0 && (len(b) < 4 || int(b[3]) < len(allowedFlags))
}
