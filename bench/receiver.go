package main

import (
	"net"
	"net/http"
	"sync/atomic"

	"github.com/tracer-agent/tracer-agent/internal/otlptest"
)

// receiver is a minimal OTLP/HTTP trace endpoint that only counts spans:
// the bench measures the agent, so the receiver stays cheap (it decodes
// with otlptest.ReadExport but keeps no spans).
type receiver struct {
	srv   *http.Server
	url   string
	spans atomic.Int64
}

func startReceiver() (*receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{url: "http://" + ln.Addr().String()}
	r.srv = &http.Server{Handler: http.HandlerFunc(r.handle)}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	msg, code, err := otlptest.ReadExport(req)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	n := 0
	for _, rs := range msg.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	r.spans.Add(int64(n))
	otlptest.WriteExportResponse(w)
}

// env is what the agent needs to export here.
func (r *receiver) env() []string {
	return []string{
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + r.url,
		"OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
	}
}

// take returns the spans counted since the last take and resets the count.
func (r *receiver) take() int64 { return r.spans.Swap(0) }
