package procinfo

import (
	"reflect"
	"testing"
)

func TestParseExec(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Exec
	}{
		{"/usr/bin/python3\x00python3\x00frontend.py\x00", Exec{"/usr/bin/python3", []string{"python3", "frontend.py"}}},
		{"/bin/true\x00", Exec{Path: "/bin/true"}},
		{"", Exec{}},
		{"/x/app\x00app\x00-flag\x00trunc", Exec{"/x/app", []string{"app", "-flag", "trunc"}}},
	} {
		if got := ParseExec([]byte(c.in)); !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseExec(%q) = %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestFromExec(t *testing.T) {
	info := FromExec(7, Exec{"/usr/bin/python3.11", []string{"python3", "frontend.py"}})
	if info.ServiceName != "frontend" || info.ExeName != "python3.11" || info.Command != "python3" {
		t.Errorf("FromExec = %+v", info)
	}
	if got := FromExec(8, Exec{Path: "/opt/bin/grpcapp"}).ServiceName; got != "grpcapp" {
		t.Errorf("service name = %q", got)
	}
}
