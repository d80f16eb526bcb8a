package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAPITable checks the flexible-version table against franz-go's kmsg,
// which is generated from Kafka's own message definitions.
func TestAPITable(t *testing.T) {
	for key := int16(0); key <= maxAPIKey; key++ {
		req := kmsg.RequestForKey(key)
		if req == nil {
			continue
		}
		a, ok := apiLookup(key)
		if !ok {
			t.Errorf("key %d (%s) unknown", key, kmsg.NameForKey(key))
			continue
		}
		if int(key) < len(apis) && a.maxVersion < req.MaxVersion() {
			t.Errorf("key %d (%s): table max v%d < kmsg v%d", key, kmsg.NameForKey(key), a.maxVersion, req.MaxVersion())
		}
		for v := int16(0); v <= req.MaxVersion(); v++ {
			req.SetVersion(v)
			if got, want := flexible(key, v), req.IsFlexible(); got != want {
				t.Errorf("key %d (%s) v%d: flexible %v, kmsg %v", key, kmsg.NameForKey(key), v, got, want)
			}
			if !validVersion(key, v) {
				t.Errorf("key %d (%s) v%d not valid", key, kmsg.NameForKey(key), v)
			}
		}
	}
}
