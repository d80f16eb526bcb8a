package selector

import (
	"testing"
)

func TestMatchExe(t *testing.T) {
	tests := []struct {
		glob string
		exe  string
		argv []string
		want bool
	}{
		{"sleep", "/usr/bin/sleep", []string{"sleep", "30"}, true},
		{"sl*p", "/usr/bin/sleep", nil, true},
		{"/usr/bin/*", "/usr/bin/sleep", nil, true},
		{"/usr/*", "/usr/bin/sleep", nil, true}, // '*' crosses '/'
		{"*/sleep", "/usr/bin/sleep", nil, true},
		{"*", "/usr/bin/sleep", nil, true},
		{"bin", "/usr/bin/sleep", nil, false},
		// argv[0] names: busybox applets, renamed launchers.
		{"ls", "/bin/busybox", []string{"ls", "-l"}, true},
		{"myapp", "/usr/lib/jvm/bin/java", []string{"/opt/myapp/bin/myapp"}, true},
		{"/opt/myapp/bin/*", "/usr/lib/jvm/bin/java", []string{"/opt/myapp/bin/myapp"}, true},
		// interpreters.
		{"frontend.py", "/usr/bin/python3.12", []string{"python3", "-u", "/srv/frontend.py", "--port", "80"}, true},
		{"/srv/*.py", "/usr/bin/python3.12", []string{"python3", "/srv/frontend.py"}, true},
		{"uvicorn", "/usr/bin/python3.11", []string{"python", "-X", "dev", "-m", "uvicorn", "app:app"}, true},
		{"app:app", "/usr/bin/python3.11", []string{"python", "-m", "uvicorn", "app:app"}, false},
		{"frontend.py", "/usr/bin/python3", []string{"python3", "-c", "frontend.py"}, false},
		{"server.js", "/usr/local/bin/node", []string{"node", "--require", "otel.js", "server.js"}, true},
		{"otel.js", "/usr/local/bin/node", []string{"node", "-r", "otel.js", "server.js"}, false},
		{"app.jar", "/usr/bin/java", []string{"java", "-Xmx1g", "-jar", "/opt/app.jar"}, true},
		{"Main", "/usr/bin/java", []string{"java", "-cp", "lib/*", "com.example.Main", "x"}, true},
		{"run.sh", "/usr/bin/bash", []string{"/bin/bash", "-e", "./run.sh"}, true},
		{"app.rb", "/usr/bin/ruby3.2", []string{"ruby", "-I", "lib", "app.rb"}, true},
		// not an interpreter: arguments are not names of the program.
		{"30", "/usr/bin/sleep", []string{"sleep", "30"}, false},
		// kernel thread / zombie.
		{"*", "", nil, false},
		// exe unreadable but argv present (another user's process).
		{"nginx", "", []string{"nginx: master process"}, false},
		{"nginx*", "", []string{"nginx: master process"}, true},
		{"x", "/x (deleted)", nil, false}, // procinfo strips the suffix, not matchExe
	}
	for _, tt := range tests {
		if got := matchExe(compileGlobs([]string{tt.glob}), tt.exe, tt.argv); got != tt.want {
			t.Errorf("matchExe(%q, %q, %q) = %v, want %v (candidates %q)",
				tt.glob, tt.exe, tt.argv, got, tt.want, candidates(tt.exe, tt.argv))
		}
	}
	if matchExe(nil, "/usr/bin/sleep", nil) {
		t.Error("no globs matched")
	}
}
