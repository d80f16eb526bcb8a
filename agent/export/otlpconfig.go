package export

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"
)

// otlpConfig is the OTLP/HTTP exporter's settings, read from the
// OTEL_EXPORTER_OTLP_* variables with otlptracehttp's (v1.47) rules: the
// TRACES_ variant wins over the generic one; a generic endpoint gets
// /v1/traces appended, a traces endpoint is used as is; the scheme picks
// http or https unless _INSECURE says otherwise; headers are
// comma-separated key=value with URL-escaped values; the timeout is in ms.
type otlpConfig struct {
	url         string // full URL of the traces endpoint
	headers     map[string]string
	timeout     time.Duration
	gzip        bool
	json        bool // OTEL_EXPORTER_OTLP_PROTOCOL=http/json: not ours to encode
	tls         *tls.Config
	maxRequest  int
	maxResponse int64
	retry       retryConfig
}

const (
	defaultOTLPHost  = "localhost:4318"
	defaultOTLPPath  = "/v1/traces"
	defaultOTLPTimer = 10 * time.Second
)

func otlpConfigFromEnv(getenv func(string) string) (otlpConfig, error) {
	env := func(name string) (string, bool) {
		for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_" + name, "OTEL_EXPORTER_OTLP_" + name} {
			if v := strings.TrimSpace(getenv(k)); v != "" {
				return v, true
			}
		}
		return "", false
	}
	cfg := otlpConfig{
		timeout:     defaultOTLPTimer,
		maxRequest:  64 << 20,
		maxResponse: 4 << 20,
		retry:       defaultRetry,
	}
	host, urlPath, secure := defaultOTLPHost, defaultOTLPPath, true
	if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")); v != "" {
		u, err := parseEndpoint(v)
		if err != nil {
			return cfg, err
		}
		// Used as is: no path is "/", as in the SDK.
		host, urlPath, secure = u.Host, cleanURLPath(cmp.Or(u.Path, "/")), !isPlainScheme(u.Scheme)
	} else if v := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_ENDPOINT")); v != "" {
		u, err := parseEndpoint(v)
		if err != nil {
			return cfg, err
		}
		host, urlPath, secure = u.Host, cleanURLPath(path.Join(u.Path, defaultOTLPPath)), !isPlainScheme(u.Scheme)
	}
	if v, ok := env("INSECURE"); ok {
		secure = !strings.EqualFold(v, "true")
	}
	scheme := "https"
	if !secure {
		scheme = "http"
	}
	cfg.url = (&url.URL{Scheme: scheme, Host: host, Path: urlPath}).String()

	if v, ok := env("HEADERS"); ok {
		cfg.headers = parseHeaders(v)
	}
	if v, ok := env("TIMEOUT"); ok {
		ms, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("OTLP timeout %q: want milliseconds", v)
		}
		cfg.timeout = time.Duration(ms) * time.Millisecond
	}
	if v, ok := env("COMPRESSION"); ok {
		cfg.gzip = v == "gzip"
	}
	if v, ok := env("PROTOCOL"); ok {
		cfg.json = v == "http/json"
	}
	tc, err := tlsFromEnv(env)
	if err != nil {
		return cfg, err
	}
	if tc != nil && !secure {
		return cfg, errors.New("insecure HTTP endpoint cannot use TLS client configuration")
	}
	cfg.tls = tc
	return cfg, nil
}

func parseEndpoint(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, fmt.Errorf("OTLP endpoint: %w", err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want a URL like http://host:4318", v)
	}
	return u, nil
}

func isPlainScheme(s string) bool {
	return strings.EqualFold(s, "http") || strings.EqualFold(s, "unix")
}

// cleanURLPath is otlptracehttp's: empty → default, relative → absolute.
func cleanURLPath(p string) string {
	p = strings.TrimSpace(p)
	switch {
	case p == "" || p == ".":
		return defaultOTLPPath
	case !path.IsAbs(p):
		return "/" + p
	}
	return p
}

// parseHeaders reads "k1=v1,k2=v2" (values URL-escaped); malformed pairs
// are skipped, as the SDK does.
func parseHeaders(v string) map[string]string {
	h := map[string]string{}
	for _, pair := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsFunc(k, func(r rune) bool { return !isTokenChar(r) }) {
			continue
		}
		val, err := url.PathUnescape(val)
		if err != nil {
			continue
		}
		h[k] = strings.TrimSpace(val)
	}
	return h
}

// isTokenChar: RFC 7230 token characters, what a header name may hold.
func isTokenChar(r rune) bool {
	return r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// tlsFromEnv reads _CERTIFICATE (CA bundle) and _CLIENT_CERTIFICATE +
// _CLIENT_KEY; nil when none is set. Unreadable files are an error (the
// SDK only logs them and then fails every export).
func tlsFromEnv(env func(string) (string, bool)) (*tls.Config, error) {
	var tc tls.Config
	set := false
	if f, ok := env("CERTIFICATE"); ok {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("OTLP certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("OTLP certificate %s: no PEM certificate", f)
		}
		tc.RootCAs, set = pool, true
	}
	cf, okc := env("CLIENT_CERTIFICATE")
	kf, okk := env("CLIENT_KEY")
	if okc && okk {
		crt, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			return nil, fmt.Errorf("OTLP client certificate: %w", err)
		}
		tc.Certificates, set = []tls.Certificate{crt}, true
	}
	if !set {
		return nil, nil
	}
	return &tc, nil
}
