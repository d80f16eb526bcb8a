package agent

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

const (
	btfPath     = "/sys/kernel/btf/vmlinux"
	tracefsPath = "/sys/kernel/tracing"
	capPerfmon  = 38
	capBPF      = 39
)

// preflight turns the usual environment problems into one-line errors
// before the kernel returns a bare EPERM.
func preflight() error {
	if !hasCaps(capBPF, capPerfmon) && !hasCaps(unix.CAP_SYS_ADMIN) {
		return errors.New("tracer-agent needs root (or CAP_BPF and CAP_PERFMON): run it with sudo")
	}
	if _, err := os.Stat(btfPath); err != nil {
		return fmt.Errorf("kernel BTF not found at %s: the kernel must be built with CONFIG_DEBUG_INFO_BTF=y", btfPath)
	}
	return ensureTracefs()
}

// ensureTracefs mounts tracefs when neither of its usual places has it:
// tracepoint ids are read from there.
func ensureTracefs() error {
	for _, p := range []string{tracefsPath + "/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	if err := unix.Mount("tracefs", tracefsPath, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it at %s failed: %v (mount -t tracefs tracefs %s)", tracefsPath, err, tracefsPath)
	}
	return nil
}

func hasCaps(caps ...uint) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	for _, c := range caps {
		if data[c/32].Effective&(1<<(c%32)) == 0 {
			return false
		}
	}
	return true
}
