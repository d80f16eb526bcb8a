package http2

import (
	"strings"

	"golang.org/x/net/http2/hpack"
)

const (
	defaultTableSize = 4096     // RFC 9113 §6.5.2 initial SETTINGS_HEADER_TABLE_SIZE
	joinedTableSize  = 64 << 10 // allowed when we never saw the peer's SETTINGS
	maxTableSize     = 1 << 20  // memory cap whatever a peer advertises
	maxStringLen     = 16 << 10 // longest header name/value we decode
	maxValueKept     = 2 << 10  // longest value we keep for a span
)

// headers is what a span needs from one header block; everything else is
// dropped while decoding so memory stays bounded.
type headers struct {
	method, path, authority, scheme, status string
	contentType, userAgent                  string
	traceparent, tracestate                 string
	grpcStatus, grpcMessage, grpcTimeout    string
}

func (h *headers) set(name, value string) {
	if len(value) > maxValueKept {
		value = value[:maxValueKept]
	}
	v := strings.Clone(value)
	switch name {
	case ":method":
		h.method = v
	case ":path":
		h.path = v
	case ":authority":
		h.authority = v
	case ":scheme":
		h.scheme = v
	case ":status":
		h.status = v
	case "content-type":
		h.contentType = v
	case "user-agent":
		h.userAgent = v
	case "traceparent":
		h.traceparent = v
	case "tracestate":
		h.tracestate = v
	case "grpc-status":
		h.grpcStatus = v
	case "grpc-message":
		h.grpcMessage = v
	case "grpc-timeout":
		h.grpcTimeout = v
	case "host":
		if h.authority == "" { // an h2c upgrade or odd client may send Host instead
			h.authority = v
		}
	}
}

// hpackState decodes the header blocks one direction sends.
//
// A lost block (uncaptured bytes, a decoding error, a desync) means the
// peer's dynamic table changed in ways we did not see, so the decoder is
// dropped. The next block is decoded by a fresh decoder with an empty
// table: HPACK indexes the dynamic table from the newest entry, so the
// entries a fresh decoder learns are exactly the peer's newest ones, and a
// reference to an older (unknown) entry is out of range, which the decoder
// reports as an error. Decoding therefore either yields the right headers
// or fails (and the block counts as lost, keeping the fields decoded before
// the failure); it never yields wrong ones. The same holds for a connection
// joined after its preface.
type hpackState struct {
	dec     *hpack.Decoder
	allowed uint32 // largest dynamic table size the encoder may switch to

	cur      headers
	inBlock  bool
	blockBad bool // this block cannot be decoded: its headers are unknown

	lost     int  // header blocks we could not decode
	degraded bool // the table was ever reset after a loss, or started mid-connection
}

func newHPACK(joined bool) *hpackState {
	h := &hpackState{allowed: defaultTableSize}
	if joined {
		h.allowed, h.degraded = joinedTableSize, true
	}
	return h
}

// setAllowed applies the receiver's SETTINGS_HEADER_TABLE_SIZE. Smaller
// values than the default stay at the default: an encoder must announce
// the shrink with a size update, which the decoder honours either way.
func (h *hpackState) setAllowed(v uint32) {
	v = min(max(v, defaultTableSize), maxTableSize)
	if v <= h.allowed {
		return
	}
	h.allowed = v
	if h.dec != nil {
		h.dec.SetAllowedMaxDynamicTableSize(v)
	}
}

// begin starts a header block (HEADERS or PUSH_PROMISE).
func (h *hpackState) begin() {
	h.cur, h.inBlock, h.blockBad = headers{}, true, false
	if h.dec == nil {
		h.dec = hpack.NewDecoder(defaultTableSize, func(f hpack.HeaderField) { h.cur.set(f.Name, f.Value) })
		h.dec.SetAllowedMaxDynamicTableSize(h.allowed)
		h.dec.SetMaxStringLength(maxStringLen)
	}
}

// fragment decodes a piece of the current block.
func (h *hpackState) fragment(b []byte) {
	if !h.inBlock || h.blockBad || len(b) == 0 {
		return
	}
	if _, err := h.dec.Write(b); err != nil {
		h.lose()
	}
}

// lose marks the current block undecodable and drops the table.
func (h *hpackState) lose() {
	if h.inBlock {
		h.blockBad = true
	}
	if h.dec != nil {
		h.dec, h.degraded = nil, true
	}
}

// end finishes the block; complete is false when part of it could not be
// decoded. The fields decoded before a failure are still right (see the
// type comment): a partial block keeps them.
func (h *hpackState) end() (hd headers, complete bool) {
	if !h.inBlock {
		return headers{}, false
	}
	h.inBlock = false
	if !h.blockBad && h.dec != nil {
		if err := h.dec.Close(); err != nil {
			h.lose()
			h.blockBad = true
		}
	}
	if h.blockBad {
		h.lost++
		return h.cur, false
	}
	return h.cur, true
}
