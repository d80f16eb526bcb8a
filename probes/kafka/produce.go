package kafka

// topicKey names a topic by name (older versions) or id (Produce v13+,
// Fetch v13+); resolve turns ids into names.
type topicKey struct {
	name string
	id   [16]byte
}

// producePart is one partition of a produce request and its answer.
type producePart struct {
	index    int32
	records  recordsInfo
	answered bool
	errCode  int16
	offset   int64
}

type produceTopic struct {
	key   topicKey
	parts []producePart
}

type produceReq struct {
	acks   int16
	topics []produceTopic
}

// Bounds on what one request may make us keep (a garbage array count must
// not allocate): topics and partitions beyond these are ignored.
const (
	maxTopics = 64
	maxParts  = 256
)

// decodeProduceRequest reads Produce v0+ (v9+ flexible, v13+ topic ids).
func decodeProduceRequest(r *reader, v int16, cut bool, budget *int) *produceReq {
	p := &produceReq{}
	if v >= 3 {
		r.str() // transactional_id
	}
	p.acks = r.int16()
	r.int32() // timeout
	if r.bad {
		return nil
	}
	nt := r.array()
	for i := 0; i < nt && !r.bad && len(p.topics) < maxTopics; i++ {
		var t produceTopic
		if v >= 13 {
			t.key.id = r.uuid()
		} else {
			t.key.name, _ = r.str()
		}
		if r.bad {
			break
		}
		np := r.array()
		for j := 0; j < np && !r.bad; j++ {
			pp := producePart{index: r.int32()}
			recs, recCut := r.bytes()
			if r.bad && recs == nil {
				break
			}
			pp.records.addRecords(recs, recCut || cut, budget)
			r.tags()
			if len(t.parts) < maxParts {
				t.parts = append(t.parts, pp)
			}
		}
		r.tags()
		p.topics = append(p.topics, t)
	}
	if len(p.topics) == 0 && cut {
		// The capture ends before the first topic: still a send, to an
		// unknown destination.
		p.topics = append(p.topics, produceTopic{})
	}
	return p
}

// decodeProduceResponse fills in error codes and base offsets.
func decodeProduceResponse(r *reader, v int16, p *produceReq) {
	nt := r.array()
	for i := 0; i < nt && !r.bad; i++ {
		var k topicKey
		if v >= 13 {
			k.id = r.uuid()
		} else {
			k.name, _ = r.str()
		}
		t := p.topic(k)
		np := r.array()
		for j := 0; j < np && !r.bad; j++ {
			idx := r.int32()
			code := r.int16()
			off := r.int64()
			if v >= 2 {
				r.int64() // log_append_time
			}
			if v >= 5 {
				r.int64() // log_start_offset
			}
			if v >= 8 {
				ne := r.array()
				for e := 0; e < ne && !r.bad; e++ {
					r.int32() // batch_index
					r.str()   // message
					r.tags()
				}
				r.str() // error_message
			}
			r.tags()
			if r.bad {
				return
			}
			if t != nil {
				if pp := t.part(idx); pp != nil {
					pp.answered, pp.errCode, pp.offset = true, code, off
				}
			}
		}
		r.tags()
	}
}

func (p *produceReq) topic(k topicKey) *produceTopic {
	for i := range p.topics {
		if p.topics[i].key == k {
			return &p.topics[i]
		}
	}
	return nil
}

func (t *produceTopic) part(idx int32) *producePart {
	for i := range t.parts {
		if t.parts[i].index == idx {
			return &t.parts[i]
		}
	}
	return nil
}
