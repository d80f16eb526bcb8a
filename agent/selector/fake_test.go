package selector

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tracer-agent/tracer-agent/agent/procinfo"
)

// fakeProc is one process of a fake /proc tree.
type fakeProc struct {
	pid  uint32
	exe  string   // "" = no exe link (kernel thread)
	argv []string // nil = empty cmdline
	fds  []string // fd symlink targets
}

func fakeRoot(t *testing.T, procs []fakeProc, tcp, tcp6 string) string {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range procs {
		dir := filepath.Join(root, strconv.FormatUint(uint64(p.pid), 10))
		must(os.MkdirAll(filepath.Join(dir, "fd"), 0o755))
		if p.exe != "" {
			must(os.Symlink(p.exe, filepath.Join(dir, "exe")))
		}
		var cmd strings.Builder
		for _, a := range p.argv {
			cmd.WriteString(a + "\x00")
		}
		must(os.WriteFile(filepath.Join(dir, "cmdline"), []byte(cmd.String()), 0o644))
		for i, target := range p.fds {
			must(os.Symlink(target, filepath.Join(dir, "fd", strconv.Itoa(i))))
		}
	}
	must(os.MkdirAll(filepath.Join(root, "net"), 0o755))
	if tcp != "" {
		must(os.WriteFile(filepath.Join(root, "net", "tcp"), []byte(tcp), 0o644))
	}
	if tcp6 != "" {
		must(os.WriteFile(filepath.Join(root, "net", "tcp6"), []byte(tcp6), 0o644))
	}
	must(os.MkdirAll(filepath.Join(root, "self"), 0o755)) // non-numeric entries are ignored
	return root
}

func fakeTree(t *testing.T) string {
	return fakeRoot(t, []fakeProc{
		{pid: 1, exe: "/sbin/init", argv: []string{"/sbin/init"}},
		{pid: 2}, // kthreadd
		{pid: 100, exe: "/usr/bin/sleep", argv: []string{"sleep", "30"}},
		{pid: 101, exe: "/usr/bin/python3.12", argv: []string{"python3", "frontend.py"}, fds: []string{"/dev/null", "socket:[557]"}},
		{pid: 103, exe: "/usr/sbin/nginx", argv: []string{"nginx: master process"}, fds: []string{"pipe:[1]", "socket:[555]"}},
		{pid: 104, exe: "/usr/sbin/nginx", argv: []string{"nginx: worker process"}, fds: []string{"socket:[555]", "socket:[556]"}},
		{pid: 105, exe: "/usr/bin/curl", argv: []string{"curl"}, fds: []string{"socket:[556]"}},
		{pid: 106, exe: "/opt/grafana", argv: []string{"grafana"}, fds: []string{"socket:[777]"}},
	}, tcpTable, tcp6Table)
}

func TestFakeTree(t *testing.T) {
	root := fakeTree(t)
	tests := []struct {
		c    Criteria
		want []uint32
	}{
		{Criteria{ExeGlobs: []string{"sleep", "frontend.py"}}, []uint32{100, 101}},
		{Criteria{ExeGlobs: []string{"*"}}, []uint32{1, 100, 101, 103, 104, 105, 106}}, // not the kernel thread
		{Criteria{ExeGlobs: []string{"/usr/sbin/*"}}, []uint32{103, 104}},
		{Criteria{Ports: []uint16{8080}}, []uint32{103, 104}}, // shared listener; 105 only has the established socket
		{Criteria{Ports: []uint16{9090}}, []uint32{106}},      // tcp6
		{Criteria{Ports: []uint16{80}}, []uint32{101}},
		{Criteria{Ports: []uint16{1234}}, nil},
		{Criteria{Ports: []uint16{9090}, ExeGlobs: []string{"grafana", "curl"}}, []uint32{105, 106}},
	}
	for _, tt := range tests {
		s := New(root, tt.c)
		got, err := s.Rescan()
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Rescan(%+v) = %v, %v; want %v", tt.c, got, err, tt.want)
		}
		got, err = s.Initial()
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Initial(%+v) = %v, %v; want %v", tt.c, got, err, tt.want)
		}
	}
}

func TestFakeInitialPIDs(t *testing.T) {
	root := fakeTree(t)
	s := New(root, Criteria{PIDs: []uint32{105, 2, 100}, ExeGlobs: []string{"sleep"}})
	got, err := s.Initial()
	if want := []uint32{2, 100, 105}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Initial = %v, %v; want %v", got, err, want)
	}
	if pids, _ := s.Rescan(); !reflect.DeepEqual(pids, []uint32{100}) {
		t.Errorf("Rescan = %v, want only --exe matches", pids)
	}

	_, err = New(root, Criteria{PIDs: []uint32{100, 1234}}).Initial()
	if err == nil || err.Error() != "process 1234 not found" {
		t.Errorf("missing pid: err = %v", err)
	}
	self := uint32(os.Getpid())
	_, err = New(root, Criteria{PIDs: []uint32{self}}).Initial()
	if err == nil || !strings.Contains(err.Error(), "agent itself") {
		t.Errorf("self pid: err = %v", err)
	}
	if got, err := New(root, Criteria{PIDs: []uint32{1}}).Rescan(); got != nil || err != nil {
		t.Errorf("Rescan with only --pid = %v, %v", got, err)
	}
}

func TestFakeSelfExcluded(t *testing.T) {
	root := fakeTree(t)
	s := New(root, Criteria{ExeGlobs: []string{"sleep"}, Ports: []uint16{8080}})
	s.self = 100
	if s.OnExec(100, procinfo.Exec{}) || s.OnListen(100, 8080) {
		t.Error("self selected by an event")
	}
	if got, _ := s.Rescan(); !reflect.DeepEqual(got, []uint32{103, 104}) {
		t.Errorf("Rescan = %v", got)
	}
	s.self = 103
	if got, _ := s.Rescan(); !reflect.DeepEqual(got, []uint32{100, 104}) {
		t.Errorf("Rescan = %v", got)
	}
}

func TestFakeEvents(t *testing.T) {
	root := fakeTree(t)
	s := New(root, Criteria{ExeGlobs: []string{"python*"}, Ports: []uint16{8080}})
	if !s.WatchesExec() || !s.WatchesListen() {
		t.Error("watches")
	}
	if !s.OnExec(101, procinfo.Exec{}) || s.OnExec(100, procinfo.Exec{}) || s.OnExec(2, procinfo.Exec{}) || s.OnExec(9999, procinfo.Exec{}) {
		t.Error("OnExec")
	}
	if !s.OnListen(105, 8080) || s.OnListen(105, 80) {
		t.Error("OnListen")
	}
	none := New(root, Criteria{PIDs: []uint32{100}})
	if none.WatchesExec() || none.WatchesListen() || none.OnExec(101, procinfo.Exec{}) || none.OnListen(105, 8080) {
		t.Error("pid-only selector reacts to events")
	}
}

// A process gone before /proc is read is decided by its exec record.
func TestFakeExecRecordOfGoneProcess(t *testing.T) {
	root := fakeTree(t)
	s := New(root, Criteria{ExeGlobs: []string{"grpcapp"}})
	if !s.OnExec(9999, procinfo.Exec{Path: "/tmp/x/grpcapp", Argv: []string{"/tmp/x/grpcapp", "call"}}) {
		t.Error("exec record of a gone process not matched")
	}
	if s.OnExec(9999, procinfo.Exec{Path: "/usr/bin/curl", Argv: []string{"curl"}}) {
		t.Error("unmatching exec record selected")
	}
}

func TestFakeNoTCPTables(t *testing.T) {
	root := fakeRoot(t, []fakeProc{{pid: 5, exe: "/bin/x", argv: []string{"x"}}}, "", "")
	s := New(root, Criteria{Ports: []uint16{80}, ExeGlobs: []string{"x"}})
	got, err := s.Rescan()
	if err == nil || !reflect.DeepEqual(got, []uint32{5}) {
		t.Errorf("Rescan = %v, %v; want the exe match and an error", got, err)
	}
	if _, err := s.Initial(); err == nil {
		t.Error("Initial without socket tables succeeded")
	}
	// tcp6 alone missing (IPv6 disabled) is fine.
	root = fakeRoot(t, []fakeProc{{pid: 5, exe: "/bin/x", fds: []string{"socket:[555]"}}}, tcpTable, "")
	if got, err := New(root, Criteria{Ports: []uint16{8080}}).Rescan(); err != nil || !reflect.DeepEqual(got, []uint32{5}) {
		t.Errorf("Rescan = %v, %v", got, err)
	}
}

func TestMissingProcRoot(t *testing.T) {
	s := New(filepath.Join(t.TempDir(), "nope"), Criteria{ExeGlobs: []string{"x"}})
	if _, err := s.Initial(); err == nil {
		t.Error("no error for missing proc root")
	}
}
