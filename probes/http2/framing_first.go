package http2

// joinFirst lets a direction whose first bytes arrive in pieces shorter
// than a frame header (a server's SETTINGS, written before the client
// preface is read, then read in parts) still be recognised from its first
// byte: it holds such pieces and returns them joined with the chunk that
// completes a frame header. wait: the bytes are held, nothing to parse yet.
// from0: data starts at the direction's first byte. seen is the count of
// bytes before this chunk.
func (d *direction) joinFirst(data []byte, seen int64, gap int) (out []byte, from0, wait bool) {
	if seen != int64(d.firstN) || seen >= frameHeaderLen {
		return data, false, false // past the start
	}
	if gap == 0 && d.firstN+len(data) < frameHeaderLen {
		d.firstN += copy(d.first[d.firstN:], data)
		return nil, false, true
	}
	if d.firstN > 0 {
		data = append(d.first[:d.firstN:d.firstN], data...)
	}
	d.firstN = frameHeaderLen // decided: hold no more
	return data, true, false
}
