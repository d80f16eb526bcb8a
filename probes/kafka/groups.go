package kafka

// groupOf returns the consumer group a request names, if it is one of the
// group APIs (their group_id comes first, or right after a transactional id).
func groupOf(key, v int16, r *reader) string {
	var g string
	var ok bool
	switch key {
	case apiOffsetCommit, apiJoinGroup, apiHeartbeat, apiLeaveGroup, apiSyncGroup, apiConsumerGroupHeartbeat:
		g, ok = r.str()
	case apiOffsetFetch:
		if v >= 8 {
			if r.array() < 1 {
				return ""
			}
		}
		g, ok = r.str()
	case apiTxnOffsetCommit:
		r.str() // transactional id
		g, ok = r.str()
	case apiFindCoordinator:
		if v >= 4 {
			if r.int8() != 0 || r.array() < 1 {
				return ""
			}
			g, ok = r.str()
			break
		}
		g, ok = r.str()
		if v >= 1 && r.int8() != 0 {
			return "" // a transactional id, not a group
		}
	}
	if !ok || r.bad || len(g) > 255 {
		return ""
	}
	return g
}
