package kafka

// decodeMetadataResponse returns the topic ids and names of a Metadata
// response (ids exist from v10).
func decodeMetadataResponse(r *reader, v int16, learn func(id [16]byte, name string)) {
	if v < 10 {
		return
	}
	r.int32() // throttle (v3+)
	nb := r.array()
	for i := 0; i < nb && !r.bad; i++ {
		r.int32() // node id
		r.str()   // host
		r.int32() // port
		r.str()   // rack
		r.tags()
	}
	r.str()   // cluster id
	r.int32() // controller id
	nt := r.array()
	for i := 0; i < nt && !r.bad; i++ {
		r.int16() // error code
		name, ok := r.str()
		id := r.uuid()
		r.int8() // is internal
		if !r.bad && ok && name != "" && id != ([16]byte{}) {
			learn(id, name)
		}
		np := r.array()
		for j := 0; j < np && !r.bad; j++ {
			r.int16() // error code
			r.int32() // partition
			r.int32() // leader
			r.int32() // leader epoch (v7+)
			r.skipInt32Array()
			r.skipInt32Array()
			r.skipInt32Array() // offline (v5+)
			r.tags()
		}
		r.int32() // topic authorized operations (v8+)
		r.tags()
	}
}
