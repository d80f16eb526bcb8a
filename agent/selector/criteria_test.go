package selector

import "testing"

func TestValidate(t *testing.T) {
	tests := []struct {
		c    Criteria
		want string
	}{
		{Criteria{}, "nothing to trace: give --pid, --exe or --port"},
		{Criteria{PIDs: []uint32{1, 0}}, "invalid --pid 0"},
		{Criteria{ExeGlobs: []string{"ok*", "["}}, `invalid --exe "[": bad pattern`},
		{Criteria{ExeGlobs: []string{"a[b"}}, `invalid --exe "a[b": bad pattern`},
		{Criteria{ExeGlobs: []string{""}}, `invalid --exe "": empty pattern`},
		{Criteria{Ports: []uint16{80, 0}}, "invalid --port 0"},
		{Criteria{PIDs: []uint32{1}}, ""},
		{Criteria{ExeGlobs: []string{"python*", "/usr/bin/[a-z]*"}}, ""},
		{Criteria{Ports: []uint16{8080}}, ""},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("Validate(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}
