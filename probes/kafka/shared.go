package kafka

import "sync"

// Bounds on what a probe remembers across connections.
const (
	maxTopicIDs = 8192
	maxGroups   = 4096
)

// clientKey identifies one client instance of a process: its connections
// (group coordinator, partition leaders) share client id and process.
type clientKey struct {
	pid      uint32
	clientID string
}

// shared is what the parsers of one probe learn from each other: Fetch
// v13+ and Produce v13+ name topics only by id, learned from Metadata
// responses on another connection; clients such as franz-go talk to the
// group coordinator on a different connection than they fetch on.
type shared struct {
	mu     sync.Mutex
	topics map[[16]byte]string
	groups map[clientKey]string
}

func newShared() *shared {
	return &shared{topics: map[[16]byte]string{}, groups: map[clientKey]string{}}
}

func (s *shared) learnTopic(id [16]byte, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.topics[id]; ok && old == name {
		return
	}
	if len(s.topics) >= maxTopicIDs {
		for k := range s.topics { // drop an arbitrary entry: ids rarely churn
			delete(s.topics, k)
			break
		}
	}
	s.topics[id] = name
}

func (s *shared) topicName(id [16]byte) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.topics[id]
	return n, ok
}

func (s *shared) learnGroup(k clientKey, group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups[k] == group {
		return
	}
	if len(s.groups) >= maxGroups {
		for old := range s.groups {
			delete(s.groups, old)
			break
		}
	}
	s.groups[k] = group
}

func (s *shared) group(k clientKey) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[k]
}
