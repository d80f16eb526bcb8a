package kafka

// fetchPart is one partition of a fetch response.
type fetchPart struct {
	index   int32
	errCode int16
	records recordsInfo
}

type fetchTopic struct {
	key   topicKey
	parts []fetchPart
}

// decodeFetchResponse reads Fetch v0+ responses (v12+ flexible, v13+ topic
// ids). Partitions beyond what was captured are simply missing.
func decodeFetchResponse(r *reader, v int16, cut bool, budget *int) (topics []fetchTopic, topErr int16) {
	if v >= 1 {
		r.int32() // throttle
	}
	if v >= 7 {
		topErr = r.int16()
		r.int32() // session id
	}
	nt := r.array()
	for i := 0; i < nt && !r.bad && len(topics) < maxTopics; i++ {
		var t fetchTopic
		if v >= 13 {
			t.key.id = r.uuid()
		} else {
			t.key.name, _ = r.str()
		}
		np := r.array()
		for j := 0; j < np && !r.bad; j++ {
			fp := fetchPart{index: r.int32(), errCode: r.int16()}
			r.int64() // high watermark
			if v >= 4 {
				r.int64() // last stable offset
			}
			if v >= 5 {
				r.int64() // log start offset
			}
			if v >= 4 {
				na := r.array() // aborted transactions (nullable)
				for a := 0; a < na && !r.bad; a++ {
					r.int64()
					r.int64()
					r.tags()
				}
			}
			if v >= 11 {
				r.int32() // preferred read replica
			}
			recs, recCut := r.bytes()
			if r.bad && recs == nil {
				if len(t.parts) < maxParts && fp.records.count > 0 {
					t.parts = append(t.parts, fp)
				}
				break
			}
			fp.records.addRecords(recs, recCut || cut, budget)
			r.tags()
			if len(t.parts) < maxParts {
				t.parts = append(t.parts, fp)
			}
		}
		r.tags()
		topics = append(topics, t)
	}
	return topics, topErr
}
