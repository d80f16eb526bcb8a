package kafka

import (
	"github.com/tracer-agent/tracer-agent/probes/probe/probetest"
	"os"
	"testing"
)

// TestDump prints a capture's spans: KAFKA_DUMP=name go test -run TestDump -v
func TestDump(t *testing.T) {
	name := os.Getenv("KAFKA_DUMP")
	if name == "" {
		t.Skip("set KAFKA_DUMP")
	}
	d := replay(loadCapture(t, name), probetest.Whole, 0)
	for _, sp := range d.spans {
		t.Log(describe(sp))
	}
}
