package export

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// retryConfig is otlptracehttp's default backoff: 5 s initial interval,
// ×1.5 per attempt with ±50 % jitter, at most 30 s apart, giving up after
// a minute; a server's Retry-After is honoured as the minimum wait.
type retryConfig struct {
	initial, maxInterval, maxElapsed time.Duration
}

var defaultRetry = retryConfig{initial: 5 * time.Second, maxInterval: 30 * time.Second, maxElapsed: time.Minute}

// retryableError is a failed attempt worth repeating, after at least after.
type retryableError struct {
	err   error
	after time.Duration
}

func (e *retryableError) Error() string { return "retry-able request failure: " + e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

func (c retryConfig) do(ctx context.Context, attempt func() error) error {
	start := time.Now()
	interval := c.initial
	for {
		err := attempt()
		var re *retryableError
		if err == nil || !errors.As(err, &re) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", context.Cause(ctx), err)
		}
		elapsed := time.Since(start)
		if elapsed > c.maxElapsed || elapsed+re.after > c.maxElapsed {
			return fmt.Errorf("max retry time elapsed: %w", err)
		}
		jitter := time.Duration((rand.Float64() - 0.5) * float64(interval)) // ±50 %
		delay := max(re.after, interval+jitter)
		interval = min(time.Duration(float64(interval)*1.5), c.maxInterval)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", context.Cause(ctx), err)
		case <-t.C:
		}
	}
}

// retryAfter reads Retry-After: delay seconds or an HTTP date.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		if s > int64(1<<63-1)/int64(time.Second) {
			return 1<<63 - 1
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
