package postgres

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// Startup-phase request codes (the int32 after the length).
const (
	codeProtocol3  = 3 << 16  // StartupMessage, protocol 3.x (major in the high half)
	codeCancel     = 80877102 // CancelRequest
	codeSSL        = 80877103 // SSLRequest
	codeGSSENC     = 80877104 // GSSENCRequest
	maxStartupSize = 10000    // the server's own limit (MAX_STARTUP_PACKET_LENGTH)
)

// isStartupPacket reports whether b starts with an untyped startup-phase
// packet: its length must match its code exactly.
func isStartupPacket(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	n := binary.BigEndian.Uint32(b)
	code := binary.BigEndian.Uint32(b[4:])
	switch {
	case code == codeSSL || code == codeGSSENC:
		return n == 8
	case code == codeCancel:
		return n == 16
	case code>>16 == 3 && code&0xffff < 16:
		// user\0name\0...\0: at least one parameter, NUL-terminated.
		if n < 8+2 || n > maxStartupSize {
			return false
		}
		if int(n) <= len(b) && b[n-1] != 0 {
			return false
		}
		return len(b) == 8 || b[8] >= 'a' && b[8] <= 'z' || b[8] == '_'
	}
	return false
}

// isQueryStart reports whether b (the captured prefix of a syscall that
// moved total bytes) starts with a plausible Query ('Q') or Parse ('P')
// message. It is strict so that HTTP or MySQL bytes never pass: a sane
// length that the syscall really moved, SQL-looking text, NUL terminators
// where the message says they are.
func isQueryStart(b []byte, total int) bool {
	if len(b) < 6 || (b[0] != 'Q' && b[0] != 'P') {
		return false
	}
	n := int(binary.BigEndian.Uint32(b[1:]))
	if n < 5 || n > maxMessage || 1+n > max(total, len(b)) {
		return false
	}
	body := b[5:min(len(b), 1+n)]
	whole := 1+n <= len(b)
	if b[0] == 'Q' {
		if whole {
			if body[len(body)-1] != 0 {
				return false
			}
			body = body[:len(body)-1]
		}
		return looksLikeSQL(body, whole)
	}
	// Parse: name\0 query\0 int16 nparams, nparams × int32.
	i := bytes.IndexByte(body, 0)
	if i < 0 || i > 64 || !printable(body[:i]) {
		return false
	}
	rest := body[i+1:]
	j := bytes.IndexByte(rest, 0)
	if j < 0 {
		return !whole && looksLikeSQL(rest, false)
	}
	if !looksLikeSQL(rest[:j], true) {
		return false
	}
	if tail := rest[j+1:]; whole {
		if len(tail) < 2 {
			return false
		}
		np := int(binary.BigEndian.Uint16(tail))
		return len(tail) == 2+4*np
	}
	return true
}

// looksLikeSQL: printable UTF-8 text starting like a statement (a letter,
// a parenthesis, a comment or whitespace). complete: text is all of it.
func looksLikeSQL(b []byte, complete bool) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 {
		return complete && len(b) == 0 // an empty query string is legal
	}
	c := t[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '(' || c == '/' || c == '-') {
		return false
	}
	if !complete {
		// A cut may split a UTF-8 sequence: drop up to 3 trailing bytes.
		for k := 0; k < 3 && len(b) > 0 && !utf8.Valid(b); k++ {
			b = b[:len(b)-1]
		}
	}
	return printable(b) && utf8.Valid(b)
}

// printable rejects control bytes other than tab, CR, LF and NUL-free text.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}
