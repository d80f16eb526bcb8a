package http

import (
	"net/netip"
	"strings"
)

// idPlaceholder replaces path segments that look like identifiers.
const idPlaceholder = "{id}"

// Route guesses a low-cardinality route from a request path: segments
// that look like identifiers (numbers, UUIDs, hex ids, long mixed tokens,
// emails, IP addresses) become "{id}". The query is dropped; an empty path
// is "/"; a trailing slash is kept as sent.
func Route(path string) string {
	path = routePath(path)
	if !hasID(path) {
		return path // most paths have no id: return them as they are, without building
	}
	return string(appendRoute(make([]byte, 0, len(path)+len(idPlaceholder)), path))
}

// routePath is the part of path a route is made of.
func routePath(path string) string {
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return "/"
	}
	return path
}

// appendRoute appends Route(path) to dst, for callers that build a span
// name around it without allocating.
func appendRoute(dst []byte, path string) []byte {
	path = routePath(path)
	done := 0 // path[:done] is already in dst
	forSegments(path, func(start, end int) {
		if looksLikeID(path[start:end]) {
			dst = append(dst, path[done:start]...)
			dst = append(dst, idPlaceholder...)
			done = end
		}
	})
	return append(dst, path[done:]...)
}

func hasID(path string) bool {
	found := false
	forSegments(path, func(start, end int) { found = found || looksLikeID(path[start:end]) })
	return found
}

// forSegments calls fn with the bounds of each '/'-separated segment.
func forSegments(path string, fn func(start, end int)) {
	for start := 0; start <= len(path); {
		end := strings.IndexByte(path[start:], '/')
		if end < 0 {
			end = len(path)
		} else {
			end += start
		}
		fn(start, end)
		start = end + 1
	}
}

func looksLikeID(s string) bool {
	if s == "" {
		return false
	}
	return allDigits(s) || isUUID(s) || isHexID(s) || isMixedToken(s) || isEmail(s) || isIP(s)
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isUUID matches 8-4-4-4-12 hex.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isHexID: hex of length >= 8 with a digit (so words like "deadbeef"
// stay, while commit hashes and object ids go).
func isHexID(s string) bool {
	if len(s) < 8 {
		return false
	}
	digit := false
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
		digit = digit || s[i] <= '9'
	}
	return digit
}

// isMixedToken: >= 16 chars of letters, digits, '-' and '_' with both a
// letter and a digit (API keys, base64url ids, slugs with ids).
func isMixedToken(s string) bool {
	if len(s) < 16 {
		return false
	}
	letter, digit := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			digit = true
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
			letter = true
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	return letter && digit
}

func isEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 {
		// also percent-encoded '@'
		at = strings.Index(s, "%40")
		if at <= 0 {
			return false
		}
		s = s[:at] + "@" + s[at+3:]
	}
	dot := strings.LastIndexByte(s, '.')
	return dot > at+1 && dot < len(s)-1
}

func isIP(s string) bool {
	if strings.IndexByte(s, '.') < 0 && strings.IndexByte(s, ':') < 0 {
		return false
	}
	_, err := netip.ParseAddr(s)
	return err == nil
}
