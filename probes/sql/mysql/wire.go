package mysql

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// Command bytes (first payload byte of a client packet with seq 0).
const (
	comQuit             = 0x01
	comInitDB           = 0x02
	comQuery            = 0x03
	comFieldList        = 0x04
	comPing             = 0x0e
	comChangeUser       = 0x11
	comStmtPrepare      = 0x16
	comStmtExecute      = 0x17
	comStmtSendLongData = 0x18
	comStmtClose        = 0x19
	comStmtReset        = 0x1a
	comSetOption        = 0x1b
	comStmtFetch        = 0x1c
	comResetConnection  = 0x1f
	comStmtBulkExecute  = 0xfa // MariaDB
)

const protoV10 = 0x0a

// Capability flags.
const (
	capClientMySQL     = 1 << 0 // CLIENT_LONG_PASSWORD; unset by MariaDB peers using extended caps
	capConnectWithDB   = 1 << 3
	capCompress        = 1 << 5
	capProtocol41      = 1 << 9
	capSSL             = 1 << 11
	capSecureConn      = 1 << 15
	capPluginAuth      = 1 << 19
	capAuthLenencData  = 1 << 21
	capSessionTrack    = 1 << 23
	capDeprecateEOF    = 1 << 24
	capMariaDBCacheMD  = 1 << 36 // MARIADB_CLIENT_CACHE_METADATA (extended caps)
	maxSSLRequestBytes = 32      // SSLRequest is HandshakeResponse41's fixed prefix only
)

// Server status flags.
const (
	statusMoreResults   = 0x0008
	statusCursorExists  = 0x0040
	statusSessionChange = 0x4000
)

// greeting is what the probe uses of the server's Initial Handshake.
type greeting struct {
	version  string
	caps     uint64
	capsFull bool // both capability halves were captured
}

// parseGreeting decodes a protocol v10 handshake (tolerating truncation).
func parseGreeting(b []byte) (greeting, bool) {
	if len(b) < 2 || b[0] != protoV10 {
		return greeting{}, false
	}
	i := bytes.IndexByte(b[1:], 0)
	if i < 0 {
		return greeting{version: printable(b[1:])}, true
	}
	g := greeting{version: printable(b[1 : 1+i])}
	r := b[1+i+1:]
	// conn id(4) auth-data-1(8) filler(1) caps-low(2)
	if len(r) < 15 {
		return g, true
	}
	g.caps = uint64(binary.LittleEndian.Uint16(r[13:15]))
	// charset(1) status(2) caps-high(2) auth-len(1) reserved(6) ext-caps(4)
	if len(r) >= 20 {
		g.caps |= uint64(binary.LittleEndian.Uint16(r[18:20])) << 16
		g.capsFull = true
	}
	if len(r) >= 31 && g.caps&capClientMySQL == 0 {
		g.caps |= uint64(binary.LittleEndian.Uint32(r[27:31])) << 32
	}
	return g, true
}

// handshakeResponse is what the probe uses of HandshakeResponse41.
type handshakeResponse struct {
	caps uint64
	user string
	db   string
	ssl  bool // an SSLRequest: TLS follows
}

func parseHandshakeResponse(b []byte, length int) (handshakeResponse, bool) {
	if len(b) < 4 {
		return handshakeResponse{}, false
	}
	h := handshakeResponse{caps: uint64(binary.LittleEndian.Uint32(b))}
	if h.caps&capProtocol41 == 0 {
		return h, false // pre-4.1 clients: not supported
	}
	if h.caps&capSSL != 0 && length <= maxSSLRequestBytes {
		h.ssl = true
		return h, true
	}
	// caps(4) max-packet(4) charset(1) filler(19) ext-caps(4)
	if len(b) < 32 {
		return h, true
	}
	if h.caps&capClientMySQL == 0 {
		h.caps |= uint64(binary.LittleEndian.Uint32(b[28:32])) << 32
	}
	r := b[32:]
	i := bytes.IndexByte(r, 0)
	if i < 0 {
		return h, true
	}
	h.user = printable(r[:i])
	r = r[i+1:]
	switch {
	case h.caps&capAuthLenencData != 0:
		n, k, ok := lenenc(r)
		if !ok || uint64(len(r)-k) < n {
			return h, true
		}
		r = r[k+int(n):]
	case h.caps&capSecureConn != 0:
		if len(r) < 1 || len(r) < 1+int(r[0]) {
			return h, true
		}
		r = r[1+int(r[0]):]
	default:
		j := bytes.IndexByte(r, 0)
		if j < 0 {
			return h, true
		}
		r = r[j+1:]
	}
	if h.caps&capConnectWithDB != 0 {
		if j := bytes.IndexByte(r, 0); j >= 0 {
			h.db = printable(r[:j])
		}
	}
	return h, true
}

// lenenc decodes a length-encoded integer: value, bytes used, ok.
func lenenc(b []byte) (uint64, int, bool) {
	if len(b) == 0 {
		return 0, 0, false
	}
	switch c := b[0]; {
	case c < 0xfb:
		return uint64(c), 1, true
	case c == 0xfc && len(b) >= 3:
		return uint64(binary.LittleEndian.Uint16(b[1:])), 3, true
	case c == 0xfd && len(b) >= 4:
		return uint64(b[1]) | uint64(b[2])<<8 | uint64(b[3])<<16, 4, true
	case c == 0xfe && len(b) >= 9:
		return binary.LittleEndian.Uint64(b[1:]), 9, true
	}
	return 0, 0, false
}

// lenencString decodes a length-encoded string (truncated to what is there).
func lenencString(b []byte) (string, []byte, bool) {
	n, k, ok := lenenc(b)
	if !ok || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

// okPacket is what the probe uses of an OK (0x00 or 0xfe header) packet.
type okPacket struct {
	affected int64
	status   uint16
	schema   string // new current database from session tracking, if any
}

func parseOK(b []byte) (okPacket, bool) {
	if len(b) < 1 {
		return okPacket{}, false
	}
	var ok okPacket
	aff, k, good := lenenc(b[1:])
	if !good {
		return ok, false
	}
	ok.affected = int64(min(aff, 1<<62))
	r := b[1+k:]
	if _, k, good = lenenc(r); !good {
		return ok, true
	}
	r = r[k:]
	if len(r) < 4 {
		return ok, true
	}
	ok.status = binary.LittleEndian.Uint16(r)
	r = r[4:] // status, warnings
	if ok.status&statusSessionChange != 0 {
		// info<lenenc>, then session state changes<lenenc>: type(1) data<lenenc>.
		if _, rest, good := lenencString(r); good {
			if state, _, good := lenencString(rest); good {
				ok.schema = sessionSchema([]byte(state))
			}
		}
	}
	return ok, true
}

// sessionSchema finds a SESSION_TRACK_SCHEMA (type 1) entry.
func sessionSchema(b []byte) string {
	schema := ""
	for len(b) > 0 {
		typ := b[0]
		data, rest, ok := lenencString(b[1:])
		if !ok {
			break
		}
		if typ == 1 {
			if s, _, ok := lenencString([]byte(data)); ok {
				schema = printable([]byte(s))
			}
		}
		b = rest
	}
	return schema
}

// eofStatus reads the status of an EOF packet (0xfe, warnings, status).
func eofStatus(b []byte) uint16 {
	if len(b) < 5 {
		return 0
	}
	return binary.LittleEndian.Uint16(b[3:5])
}

// errPacket decodes ERR: 0xff, code u16, ['#' sqlstate(5)], message.
type errPacket struct {
	code     uint16
	sqlState string
	message  string
}

func parseErr(b []byte) errPacket {
	var e errPacket
	if len(b) < 3 {
		return e
	}
	e.code = binary.LittleEndian.Uint16(b[1:3])
	r := b[3:]
	if len(r) >= 6 && r[0] == '#' {
		e.sqlState = printable(r[1:6])
		r = r[6:]
	}
	e.message = strings.ToValidUTF8(string(r), "?")
	if len(e.message) > 512 {
		e.message = e.message[:512] + "…"
	}
	return e
}

// printable keeps identifiers safe for attributes.
func printable(b []byte) string {
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, string(b)), "?")
}
