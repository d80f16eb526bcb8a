package procinfo

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"go.opentelemetry.io/otel/attribute"
)

func TestReadFake(t *testing.T) {
	root := t.TempDir()
	procs := []fakeProc{
		{pid: 10, exe: "/usr/bin/python3.12", argv: []string{"python3", "frontend.py", "--port", "80"},
			env: []string{"PATH=/bin", "OTEL_SERVICE_NAME=frontend", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment.name=prod,service.name=ignored"}},
		{pid: 11, exe: "/srv/app (deleted)", argv: []string{"/srv/app"},
			env: []string{"OTEL_RESOURCE_ATTRIBUTES=service.name=from%20attrs, team = a%2Cb ,bad,=x,k=%zz"}},
		{pid: 12, exe: "/opt/bin/worker", argv: []string{"worker"}, noEnv: true},
		{pid: 13, argv: []string{"/usr/sbin/exe-hidden", "-x"}}, // exe unreadable
		{pid: 14}, // kernel thread
		{pid: 15, exe: "/bin/svc", env: []string{"OTEL_SERVICE_NAME=  "}},
	}
	for _, p := range procs {
		writeFakeProc(t, root, p)
	}

	tests := []struct {
		pid  uint32
		want Info
	}{
		{10, Info{PID: 10, ExePath: "/usr/bin/python3.12", ExeName: "python3.12", Command: "python3",
			CommandLine: []string{"python3", "frontend.py", "--port", "80"}, ServiceName: "frontend",
			ResourceAttrs: []attribute.KeyValue{attribute.String("deployment.environment.name", "prod")}}},
		{11, Info{PID: 11, ExePath: "/srv/app", ExeName: "app", Command: "/srv/app", CommandLine: []string{"/srv/app"},
			ServiceName: "from attrs", ResourceAttrs: []attribute.KeyValue{attribute.String("team", "a,b")}}},
		{12, Info{PID: 12, ExePath: "/opt/bin/worker", ExeName: "worker", Command: "worker",
			CommandLine: []string{"worker"}, ServiceName: "worker"}},
		{13, Info{PID: 13, Command: "/usr/sbin/exe-hidden", CommandLine: []string{"/usr/sbin/exe-hidden", "-x"},
			ServiceName: "exe-hidden"}},
		{14, Info{PID: 14, ServiceName: "pid-14"}},
		{15, Info{PID: 15, ExePath: "/bin/svc", ExeName: "svc", ServiceName: "svc"}},
	}
	for _, tt := range tests {
		got, err := Read(root, tt.pid)
		if err != nil {
			t.Errorf("Read(%d): %v", tt.pid, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Read(%d)\n got %+v\nwant %+v", tt.pid, got, tt.want)
		}
	}
}

func TestReadMissing(t *testing.T) {
	_, err := Read(t.TempDir(), 4242)
	if err == nil || err.Error() != "process 4242 not found" || !errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
}

func TestReadEnvironPermissionDenied(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	root := t.TempDir()
	writeFakeProc(t, root, fakeProc{pid: 7, exe: "/bin/x", env: []string{"OTEL_SERVICE_NAME=secret"}, envDeny: true})
	got, err := Read(root, 7)
	if err != nil || got.ServiceName != "x" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestReadSelf(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "ignored-after-start") // environ is the initial one
	pid := uint32(os.Getpid())
	got, err := Read("/proc", pid)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if got.ExePath != exe || got.ExeName != filepath.Base(exe) {
		t.Errorf("exe = %q/%q, want %q", got.ExePath, got.ExeName, exe)
	}
	if !reflect.DeepEqual(got.CommandLine, os.Args) || got.Command != os.Args[0] {
		t.Errorf("cmdline = %q, want %q", got.CommandLine, os.Args)
	}
	// Only the environment the process started with counts.
	want := got.ExeName
	if v := initialEnv("OTEL_SERVICE_NAME"); v != "" {
		want = v
	}
	if initialEnv("OTEL_RESOURCE_ATTRIBUTES") == "" && got.ServiceName != want {
		t.Errorf("service = %q, want %q", got.ServiceName, want)
	}
	if got.PID != pid {
		t.Errorf("pid = %d", got.PID)
	}
}

// initialEnv is the value of name in this process's initial environment.
func initialEnv(name string) string {
	env, _ := Environ("/proc", uint32(os.Getpid()))
	for _, kv := range env {
		if len(kv) > len(name) && kv[:len(name)+1] == name+"=" {
			return kv[len(name)+1:]
		}
	}
	return ""
}

func TestReadDefaultRoot(t *testing.T) {
	if _, err := Read("", uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
}
