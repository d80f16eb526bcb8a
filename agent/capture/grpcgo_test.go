package capture

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// grpcReleases are the grpc-go minors the uprobes are checked against:
// the last four (the e2e tests run the go.mod one).
var grpcReleases = []string{"v1.82.1", "v1.83.2", "v1.84.0", "v1.85.0"}

// TestGRPCLayouts: for each release, built here from the module proxy, the
// server and client layouts are found (symbols, DWARF offsets, the call
// site); a build without DWARF says so.
func TestGRPCLayouts(t *testing.T) {
	src, err := os.ReadFile("testdata/grpcversions/main.go.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range grpcReleases {
		t.Run(v, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
				t.Fatal(err)
			}
			goCmd := func(args ...string) {
				cmd := exec.Command("go", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("go %v: %v\n%s", args, err, out)
				}
			}
			goCmd("mod", "init", "grpcversions")
			goCmd("get", "google.golang.org/grpc@"+v)
			goCmd("build", "-o", "app", ".")
			exe := filepath.Join(dir, "app")
			srv, err := grpcLayout(exe)
			if err != nil {
				t.Fatalf("server layout: %v", err)
			}
			cli, err := grpcClientLayout(exe)
			if err != nil {
				t.Fatalf("client layout: %v", err)
			}
			if srv.cookie&0xffff == 0 || srv.cookie>>16&0xffff == 0 || srv.cookie>>32&0xffff == 0 {
				t.Errorf("server cookie %#x: an offset is 0", srv.cookie)
			}
			if cli.at["go_grpc_put"] == 0 { // (clientHeaders.streamID is its first field)
				t.Errorf("client layout %+v: no call site", cli)
			}
			t.Logf("server cookie %#x, client cookie %#x, call site +%#x", srv.cookie, cli.cookie, cli.at["go_grpc_put"])
			if v != grpcReleases[0] {
				return
			}
			goCmd("build", "-ldflags=-w", "-o", "app-nodwarf", ".")
			if _, err := grpcClientLayout(filepath.Join(dir, "app-nodwarf")); err == nil {
				t.Error("a build without DWARF: no error")
			}
		})
	}
}
