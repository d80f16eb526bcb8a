package http

import "testing"

func TestRoute(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "/"},
		{"/", "/"},
		{"/users", "/users"},
		{"/users/", "/users/"},
		{"/users/42", "/users/{id}"},
		{"/users/42/", "/users/{id}/"},
		{"/users/42?x=1", "/users/{id}"},
		{"/a/550e8400-e29b-41d4-a716-446655440000/b", "/a/{id}/b"},
		{"/a/550E8400-E29B-41D4-A716-446655440000", "/a/{id}"},
		{"/commits/9fceb02d0ae598e95dc970b74767f19372d61af8", "/commits/{id}"},
		{"/obj/deadbeef", "/obj/deadbeef"},    // hex but no digit: a word
		{"/obj/dead1234", "/obj/{id}"},        // hex with a digit, len 8
		{"/obj/abc123", "/obj/abc123"},        // short
		{"/t/AbCdEf1234567890xyz", "/t/{id}"}, // long mixed token
		{"/t/abcdefghijklmnopqrstu", "/t/abcdefghijklmnopqrstu"},
		{"/t/some-long-slug-with-words", "/t/some-long-slug-with-words"},
		{"/t/tok_9f8a7b6c5d4e3f2a1b0c", "/t/{id}"},
		{"/u/jane.doe@example.com/x", "/u/{id}/x"},
		{"/u/jane%40example.com", "/u/{id}"},
		{"/ip/192.168.1.10", "/ip/{id}"},
		{"/ip/2001:db8::1", "/ip/{id}"},
		{"/v1/api", "/v1/api"},
		{"/v1.2/api", "/v1.2/api"},
		{"/files/report.pdf", "/files/report.pdf"},
		{"//double//slash", "//double//slash"},
		{"*", "*"},
		{"/a#frag", "/a"},
		{"42", "{id}"},
		{"42/x/43", "{id}/x/{id}"},
		{"/1/2/3/", "/{id}/{id}/{id}/"},
		{"/x/1//2", "/x/{id}//{id}"},
	} {
		if got := Route(c.in); got != c.want {
			t.Errorf("Route(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
