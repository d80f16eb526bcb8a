package procinfo

import (
	"path/filepath"
	"reflect"
	"testing"
)

func TestScriptNames(t *testing.T) {
	tests := []struct {
		interp string
		args   []string
		want   []string
	}{
		{python, []string{"-mhttp.server", "8000"}, []string{"http.server"}},
		{python, []string{"-m"}, nil},
		{python, []string{"--", "x.py"}, []string{"x.py"}},
		{python, []string{"-"}, nil},
		{python, nil, nil},
		{node, []string{"--eval", "1"}, nil},
		{node, []string{"--inspect", "index.js"}, []string{"index.js"}},
		{java, []string{"-m", "mod/com.x.Main"}, []string{"mod/com.x.Main"}},
		{java, []string{"Main"}, []string{"Main"}},
		{java, []string{"com.x."}, []string{"com.x."}},
		{shell, []string{"-c", "echo"}, nil},
		{shell, []string{"+x", "s.sh"}, []string{"s.sh"}},
	}
	for _, tt := range tests {
		if got := ScriptNames(tt.interp, tt.args); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ScriptNames(%s, %q) = %q, want %q", tt.interp, tt.args, got, tt.want)
		}
	}
}

func TestInterpreterOf(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/python3.12": python, "python": python, "/usr/bin/node": node,
		"/usr/lib/jvm/java-21/bin/java": java, "/bin/sleep": "", "": "", "/usr/bin/perl5.36": perl,
		"javac": "",
	} {
		if got := Interpreter(in); got != want {
			t.Errorf("Interpreter(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFallbackNameOfScripts(t *testing.T) {
	for _, tt := range []struct {
		exe  string
		argv []string
		want string
	}{
		{"/usr/bin/python3.11", []string{"python3", "/srv/frontend.py", "8080"}, "frontend"},
		{"/usr/bin/python3.11", []string{"python3", "-m", "http.server"}, "http.server"},
		{"/usr/bin/node", []string{"node", "app/server.js"}, "server"},
		{"/usr/bin/python3.11", []string{"python3"}, "python3.11"},
		{"/usr/local/bin/api", []string{"api", "x.py"}, "api"},
	} {
		info := Info{ExePath: tt.exe, ExeName: filepath.Base(tt.exe), CommandLine: tt.argv, Command: tt.argv[0]}
		if got := fallbackName(info); got != tt.want {
			t.Errorf("fallbackName(%s %q) = %q, want %q", tt.exe, tt.argv, got, tt.want)
		}
	}
}
