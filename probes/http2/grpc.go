package http2

import (
	"strconv"
	"time"
)

// grpcCodes are the gRPC status names by number (grpc/doc/statuscodes.md),
// the form semconv v1.43 wants in rpc.response.status_code.
var grpcCodes = [...]string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
	"NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
}

// grpcCodeName turns a grpc-status value into its name; values outside the
// table are kept as sent (digits only, bounded) so nothing is invented.
func grpcCodeName(raw string) string {
	n, err := strconv.Atoi(raw)
	if err == nil && n >= 0 && n < len(grpcCodes) {
		return grpcCodes[n]
	}
	if err == nil && len(raw) <= 10 {
		return raw
	}
	return "UNKNOWN"
}

// grpcServerError lists the codes semconv (gRPC conventions) counts as a
// server-side failure; the others are the caller's problem.
func grpcServerError(code string) bool {
	switch code {
	case "UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS":
		return true
	}
	return false
}

// grpcFromHTTP maps an HTTP status of a response without grpc-status
// (grpc/doc/http-grpc-status-mapping.md).
func grpcFromHTTP(status int) string {
	switch status {
	case 400:
		return "INTERNAL"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "UNIMPLEMENTED"
	case 429, 502, 503, 504:
		return "UNAVAILABLE"
	}
	return "UNKNOWN"
}

// h2Errors are the HTTP/2 error code names (RFC 9113 §7).
var h2Errors = [...]string{
	"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
	"CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
	"INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
}

func h2ErrorName(code uint32) string {
	if int(code) < len(h2Errors) {
		return h2Errors[code]
	}
	return "0x" + strconv.FormatUint(uint64(code), 16)
}

// grpcFromRST maps RST_STREAM codes to the status a gRPC peer reports
// (grpc/doc/PROTOCOL-HTTP2.md, "Errors").
func grpcFromRST(code uint32) string {
	switch code {
	case 7: // REFUSED_STREAM
		return "UNAVAILABLE"
	case 8: // CANCEL
		return "CANCELLED"
	case 11: // ENHANCE_YOUR_CALM
		return "RESOURCE_EXHAUSTED"
	case 12: // INADEQUATE_SECURITY
		return "PERMISSION_DENIED"
	}
	return "INTERNAL"
}

// parseGRPCTimeout parses "1S", "100m", ... (at most 8 digits and a unit).
func parseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[s[len(s)-1]]
	if unit == 0 {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// decodeGRPCMessage undoes grpc-message percent-encoding; malformed escapes
// stay as they are.
func decodeGRPCMessage(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}
