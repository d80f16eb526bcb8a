package capture

// KafkaCounters are the kernel's counters of Kafka traceparent injection
// (enum kafka_counter in bpf/kafka_inject.h).
type KafkaCounters struct {
	Injected       uint64 // Produce requests given a traceparent record header
	Untouched      uint64 // left as written: outside what the kernel verifies
	HadTraceparent uint64 // left as written: a record already carried one
	Failed         uint64 // left as written: the kernel refused to grow the message
}

// KafkaCounters sums the per-CPU Kafka injection counters.
func (c *Capture) KafkaCounters() (KafkaCounters, error) {
	var out KafkaCounters
	m := c.coll.Maps["kafka_counters"]
	for i, dst := range []*uint64{&out.Injected, &out.Untouched, &out.HadTraceparent, &out.Failed} {
		var vals []uint64
		if err := m.Lookup(uint32(i), &vals); err != nil {
			return out, err
		}
		for _, v := range vals {
			*dst += v
		}
	}
	return out, nil
}
