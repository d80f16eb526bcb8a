// Package testenv decides whether tests that load real eBPF programs can
// run here. With TRACER_E2E=required (CI) a missing prerequisite fails the
// test instead of skipping it, so CI can never pass without running them.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// Required reports whether eBPF tests must run (CI).
func Required() bool { return os.Getenv("TRACER_E2E") == "required" }

// RequireBPF skips (or, when required, fails) t unless this process can
// load and attach eBPF programs: root, kernel BTF and tracefs.
func RequireBPF(t testing.TB) {
	t.Helper()
	if reason := missing(); reason != "" {
		if Required() {
			t.Fatalf("eBPF tests cannot run (TRACER_E2E=required): %s", reason)
		}
		t.Skipf("eBPF tests need %s (set TRACER_E2E=required to make this a failure)", reason)
	}
}

func missing() string {
	if os.Geteuid() != 0 {
		return "root"
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return "kernel BTF (/sys/kernel/btf/vmlinux)"
	}
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		if err := unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
			return "tracefs at /sys/kernel/tracing (mount failed: " + err.Error() + ")"
		}
	}
	return ""
}

// RequireCommand skips (or fails, when required) unless name is on PATH.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if Required() {
			t.Fatalf("%s is required for this test (TRACER_E2E=required) but not on PATH", name)
		}
		t.Skipf("%s not on PATH", name)
	}
	return p
}

// FreePort asks the kernel for a TCP port on 127.0.0.1 free right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
