package postgres

import (
	"bytes"
	"encoding/binary"
	"strconv"
)

// cstring splits a NUL-terminated string off b. ok is false when b holds
// no NUL (the body was cut): the whole rest is then returned.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return b, nil, false
	}
	return b[:i], b[i+1:], true
}

// startupParams reads a StartupMessage body (after the length): the
// protocol code then key\0value\0 pairs.
func startupParams(body []byte) (code uint32, user, database string) {
	if len(body) < 4 {
		return 0, "", ""
	}
	code = binary.BigEndian.Uint32(body)
	rest := body[4:]
	for len(rest) > 0 {
		k, r, ok := cstring(rest)
		if !ok || len(k) == 0 {
			break
		}
		v, r, ok := cstring(r)
		if !ok {
			break
		}
		switch string(k) {
		case "user":
			user = string(v)
		case "database":
			database = string(v)
		}
		rest = r
	}
	return code, user, database
}

// parseMsg reads Parse: statement name, query text (maybe cut).
func parseMsg(body []byte) (name, text string) {
	n, rest, ok := cstring(body)
	if !ok {
		return string(n), ""
	}
	q, _, _ := cstring(rest)
	return string(n), string(q)
}

// bindMsg reads the portal and statement names of a Bind.
func bindMsg(body []byte) (portal, stmt string) {
	p, rest, ok := cstring(body)
	if !ok {
		return string(p), ""
	}
	s, _, _ := cstring(rest)
	return string(p), string(s)
}

// nameMsg reads Describe/Close ('S' statement or 'P' portal, name) and
// Execute (portal name, int32 max rows).
func nameMsg(body []byte, kinded bool) (kind byte, name string) {
	if kinded {
		if len(body) == 0 {
			return 0, ""
		}
		kind, body = body[0], body[1:]
	}
	n, _, _ := cstring(body)
	return kind, string(n)
}

// tagRows reads the row count of a CommandComplete tag: "SELECT 5",
// "INSERT 0 1", "UPDATE 3", "COPY 10"; -1 when the tag has none ("BEGIN").
func tagRows(body []byte) int64 {
	tag, _, _ := cstring(body)
	i := bytes.LastIndexByte(tag, ' ')
	if i < 0 {
		return -1
	}
	switch string(tag[:bytes.IndexByte(tag, ' ')]) {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE":
	default:
		return -1 // "CREATE TABLE AS"-like tags without a count
	}
	n, err := strconv.ParseInt(string(tag[i+1:]), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// errorFields reads SQLSTATE ('C') and message ('M') of an ErrorResponse.
func errorFields(body []byte) (code, msg string) {
	for len(body) > 0 && body[0] != 0 {
		f := body[0]
		v, rest, ok := cstring(body[1:])
		if !ok {
			break // a value cut by the capture would be wrong, not short
		}
		switch f {
		case 'C':
			code = string(v)
		case 'M':
			msg = string(v)
		}
		body = rest
	}
	return code, msg
}
