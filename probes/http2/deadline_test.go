package http2

import (
	"testing"
	"time"

	"github.com/tracer-agent/tracer-agent/probes/probe"
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// TestServerEnforcedDeadline: a Python (C-core) client calls grpc-go's
// Health/Watch with grpc-timeout 501m; at the deadline grpc-go cancels the
// stream (RST_STREAM CANCEL from the server) before the client does, and
// the client reports DEADLINE_EXCEEDED. A server cancel well before the
// timeout stays CANCELLED.
func TestServerEnforcedDeadline(t *testing.T) {
	recs := probetest.LoadCapture(t, "grpc-python-deadline")
	for _, tc := range []struct {
		wait     time.Duration // before the server's RST_STREAM
		code     string
		srvError bool
	}{
		{505 * time.Millisecond, "DEADLINE_EXCEEDED", true},
		{100 * time.Millisecond, "CANCELLED", false},
	} {
		for _, client := range []bool{false, true} {
			conn := serverConn
			if client {
				conn.Local, conn.Remote = conn.Remote, conn.Local
			}
			d := newDriver(conn)
			for _, r := range recs {
				toServer := r.Dir == '>'
				if !toServer && frameAt(r.Data, frameRSTStream, 0) >= 0 {
					d.Now = d.Now.Add(tc.wait)
				}
				dir := probe.Recv
				if toServer == client {
					dir = probe.Send
				}
				d.Feed(dir, r.Data, -1, trace.SpanContext{}, trace.SpanContext{})
			}
			d.Close()
			probetest.WantNames(t, d.Spans, "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch")
			w := d.Spans[2]
			probetest.WantStr(t, w, semconv.RPCResponseStatusCodeKey, tc.code)
			if want := client || tc.srvError; w.Error != want {
				t.Errorf("wait %v client=%v: Error %v, want %v", tc.wait, client, w.Error, want)
			}
		}
	}
}
