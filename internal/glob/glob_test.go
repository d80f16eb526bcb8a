package glob

import "testing"

func TestMatch(t *testing.T) {
	cases := []struct {
		p, s string
		want bool
	}{
		{"/health*", "/health", true},
		{"/health*", "/healthz/live", true},
		{"/health*", "/api/health", false},
		{"*/python3*", "/usr/bin/python3.11", true},
		{"*/e2e-goserver", "/tmp/x/y/e2e-goserver", true},
		{"python3", "/usr/bin/python3", false},
		{"node", "node", true},
		{"*", "", true},
		{"/a", "/ab", false},
		{"*/x/*", "/a/b/x/c", true},
		{"/a*c", "/abbbc", true},
		{"/a*c", "/abbbcd", false},
		{"app?", "app1", true},
		{"app[0-9]", "app7", true},
		{"app[!0-9]", "app7", false},
		{"a.b", "axb", false},
		{`\*`, "*", true},
		{"*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
	}
	for _, c := range cases {
		g, err := Compile(c.p)
		if err != nil {
			t.Fatalf("Compile(%q): %v", c.p, err)
		}
		if got := g.Match(c.s); got != c.want {
			t.Errorf("%q ~ %q = %v, want %v", c.p, c.s, got, c.want)
		}
	}
	for _, bad := range []string{"", "[", "[]", `a\`} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%q) accepted", bad)
		}
	}
}
