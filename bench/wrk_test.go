package main

import (
	"os"
	"testing"
	"time"
)

const wrkOut = `Running 3s test @ http://127.0.0.1:4000/call?url=http://127.0.0.1:4001/users/1
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.26ms    3.12ms  32.10ms   80.00%
    Req/Sec     1.34k   100.00     1.50k    70.00%
  Latency Distribution
     50%  850.00us
     75%    7.00ms
     90%    9.00ms
     99%   32.10ms
  8000 requests in 3.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:   2666.50
Transfer/sec:    333.00KB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOut)
	if err != nil {
		t.Fatal(err)
	}
	want := loadResult{requests: 8000, errors: 8, rps: 2666.5, p50: 850 * time.Microsecond, p99: 32100 * time.Microsecond}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
	if _, err := parseWrk("garbage"); err == nil {
		t.Fatal("garbage parsed")
	}
}

func TestProcfs(t *testing.T) {
	if _, err := cpuTime(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if rss, err := peakRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Fatalf("peakRSS = %d, %v", rss, err)
	}
	if _, err := cpuTime(-1); err == nil {
		t.Fatal("cpuTime(-1) succeeded")
	}
}

func TestRingDropsLine(t *testing.T) {
	line := `time=2026-11-25T23:00:00Z level=INFO msg=final events=10 ring_drops=42 ctl_drops=0`
	m := ringDropsRE.FindStringSubmatch(line)
	if m == nil || m[1] != "42" {
		t.Fatalf("got %v", m)
	}
}

func TestMedian(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Fatal(m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Fatal(m)
	}
	if m := median(nil); m != 0 {
		t.Fatal(m)
	}
}
