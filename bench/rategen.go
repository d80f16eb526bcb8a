package main

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// runFixedRate is an open-loop load generator (wrk cannot rate-limit and
// wrk2 is not installed): request i is due at start + i/rate whatever
// happened before, and its latency is measured from that intended send
// time, so a stall is charged to every request queued behind it (no
// coordinated omission). conns workers share conns keep-alive connections.
func runFixedRate(url string, rate, conns int, d time.Duration) (loadResult, error) {
	n := int(float64(rate) * d.Seconds())
	if n < 1 {
		return loadResult{}, fmt.Errorf("rate %d over %v is no request", rate, d)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	interval := time.Second / time.Duration(rate)
	due := make(chan time.Time, n) // buffered: the schedule never waits for workers
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var errs atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range due {
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode >= 400 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[next.Add(1)-1] = time.Since(t)
			}
		}()
	}
	start := time.Now()
	for i := range n {
		t := start.Add(time.Duration(i) * interval)
		if w := time.Until(t); w > 0 {
			time.Sleep(w)
		}
		due <- t
	}
	close(due)
	wg.Wait()
	elapsed := time.Since(start)

	ok := int(next.Load())
	r := loadResult{requests: int64(ok), errors: errs.Load(), rps: float64(ok) / elapsed.Seconds()}
	if ok == 0 {
		return r, fmt.Errorf("fixed-rate load: every request failed")
	}
	l := lat[:ok]
	slices.Sort(l)
	r.p50 = l[(ok-1)*50/100]
	r.p99 = l[(ok-1)*99/100]
	return r, nil
}
