package export

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// otlpExporter sends spans as OTLP/HTTP protobuf, encoded by otlpEncoder
// (ReadOnlySpans of the SDK's batch processor) or by the OTLP batcher,
// with otlptracehttp's transport behaviour: retries of 429/502/503/504 and
// temporary network errors with exponential backoff that honours
// Retry-After, partial-success responses reported as errors.
type otlpExporter struct {
	cfg    otlpConfig
	client *http.Client
	ua     string

	mu   sync.Mutex // one export at a time owns the buffers
	enc  otlpEncoder
	gz   *gzip.Writer
	gzed bytes.Buffer

	stop     chan struct{} // closed by Shutdown: aborts exports in flight
	stopOnce sync.Once
}

func newOTLPExporter(cfg otlpConfig, version string) *otlpExporter {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if cfg.tls != nil {
		tr.TLSClientConfig = cfg.tls
	}
	ua := "tracer-agent"
	if version != "" {
		ua += "/" + version
	}
	return &otlpExporter{
		cfg:    cfg,
		client: &http.Client{Transport: tr, Timeout: cfg.timeout},
		ua:     ua,
		stop:   make(chan struct{}),
	}
}

var errExporterStopped = errors.New("otlp exporter is shut down")

func (x *otlpExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	return x.export(ctx, func() bool { return x.enc.encode(spans) > 0 })
}

// exportEncoded sends the request that fill appends to the buffer it is
// given (the OTLP batcher's already encoded spans).
func (x *otlpExporter) exportEncoded(ctx context.Context, fill func([]byte) []byte) error {
	return x.export(ctx, func() bool {
		x.enc.buf = fill(x.enc.buf[:0])
		return true
	})
}

// export has encode write one request into x.enc.buf (under x.mu, which
// owns the buffers; false: nothing to send) and posts it.
func (x *otlpExporter) export(ctx context.Context, encode func() bool) error {
	select {
	case <-x.stop:
		return errExporterStopped
	default:
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.trimBuffers()
	if !encode() {
		return nil
	}
	body := x.enc.buf
	if len(body) > x.cfg.maxRequest {
		return fmt.Errorf("traces export: request body too large: exceeded %d bytes", x.cfg.maxRequest)
	}
	if x.cfg.gzip {
		var err error
		if body, err = x.compress(body); err != nil {
			return fmt.Errorf("traces export: %w", err)
		}
	}
	// Shutdown aborts an export in flight: its retries may last a minute.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-x.stop:
			cancel()
		}
	}()
	if err := x.cfg.retry.do(ctx, func() error { return x.post(ctx, body) }); err != nil {
		return fmt.Errorf("traces export: %w", err)
	}
	return nil
}

// keptBuffer is the most buffer capacity kept between exports: a batch
// of 512 typical spans needs ~0.5 MiB; a rare huge one must not stay pinned.
const keptBuffer = 4 << 20

func (x *otlpExporter) trimBuffers() {
	if cap(x.enc.buf) > keptBuffer {
		x.enc.buf = nil
	}
	if x.gzed.Cap() > keptBuffer {
		x.gzed = bytes.Buffer{}
	}
}

func (x *otlpExporter) compress(body []byte) ([]byte, error) {
	x.gzed.Reset()
	if x.gz == nil {
		x.gz = gzip.NewWriter(&x.gzed)
	} else {
		x.gz.Reset(&x.gzed)
	}
	if _, err := x.gz.Write(body); err != nil {
		return nil, err
	}
	if err := x.gz.Close(); err != nil {
		return nil, err
	}
	return x.gzed.Bytes(), nil
}

// post makes one attempt; a retryable failure is a *retryableError.
func (x *otlpExporter) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.cfg.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", x.ua)
	for k, v := range x.cfg.headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	if x.cfg.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := x.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ue.Temporary() {
			return &retryableError{err: err}
		}
		return err
	}
	defer resp.Body.Close()
	data, err := readLimited(resp.Body, x.cfg.maxResponse)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return partialSuccess(resp.Header.Get("Content-Type"), data)
	}
	msg := strings.TrimSpace(string(data))
	if msg == "" {
		msg = "(empty)"
	}
	err = fmt.Errorf("failed to send to %s: %s (body: %s)", x.cfg.url, resp.Status, msg)
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return &retryableError{err: err, after: retryAfter(resp.Header.Get("Retry-After"))}
	}
	return err
}

func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("response body too large: exceeded %d bytes", limit)
	}
	return data, nil
}

// partialSuccess decodes ExportTraceServiceResponse.partial_success
// (rejected_spans 1, error_message 2) and reports it as an error, as the
// SDK exporter does; any other body is success.
func partialSuccess(contentType string, data []byte) error {
	var rejected int64
	var msg string
	switch contentType {
	case "application/x-protobuf":
		ps, ok := protoField(data, 1)
		if !ok {
			return nil
		}
		if v, ok := protoField(ps, 1); ok {
			r, _ := protowire.ConsumeVarint(v)
			rejected = int64(r)
		}
		if v, ok := protoField(ps, 2); ok {
			msg = string(v)
		}
	case "application/json":
		var r struct {
			PartialSuccess *struct {
				RejectedSpans json.Number `json:"rejectedSpans"`
				ErrorMessage  string      `json:"errorMessage"`
			} `json:"partialSuccess"`
		}
		if err := json.Unmarshal(data, &r); err != nil {
			return err
		}
		if r.PartialSuccess == nil {
			return nil
		}
		rejected, _ = strconv.ParseInt(strings.Trim(string(r.PartialSuccess.RejectedSpans), `"`), 10, 64)
		msg = r.PartialSuccess.ErrorMessage
	}
	if rejected == 0 && msg == "" {
		return nil
	}
	if msg == "" {
		msg = "empty message"
	}
	return fmt.Errorf("OTLP partial success: %s (%d spans rejected)", msg, rejected)
}

// protoField returns the last occurrence of field n in a protobuf message:
// a varint's raw bytes, or a length-delimited field's content.
func protoField(b []byte, n protowire.Number) ([]byte, bool) {
	var out []byte
	found := false
	for len(b) > 0 {
		num, typ, tl := protowire.ConsumeTag(b)
		if tl < 0 {
			return nil, false
		}
		b = b[tl:]
		vl := protowire.ConsumeFieldValue(num, typ, b)
		if vl < 0 {
			return nil, false
		}
		if num == n {
			out, found = b[:vl], true
			if typ == protowire.BytesType {
				_, hl := protowire.ConsumeVarint(b)
				out = b[hl:vl]
			}
		}
		b = b[vl:]
	}
	return out, found
}

func (x *otlpExporter) Shutdown(ctx context.Context) error {
	x.stopOnce.Do(func() { close(x.stop) })
	x.client.CloseIdleConnections()
	return ctx.Err()
}
