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

// TestGoLayouts: for each grpc-go release, built here from the module
// proxy with this machine's Go, and the go.mod one with the next Go
// (go1.27.3, the toolchain the environment approves), the grpc-go server
// and client layouts and the goroutine lineage layout are found (symbols,
// DWARF offsets, call sites); a build without DWARF says so.
func TestGoLayouts(t *testing.T) {
	src, err := os.ReadFile("testdata/grpcversions/main.go.txt")
	if err != nil {
		t.Fatal(err)
	}
	type build struct{ grpc, toolchain string }
	var builds []build
	for _, v := range grpcReleases {
		builds = append(builds, build{v, ""})
	}
	builds = append(builds, build{"v1.84.0", "go1.27.3"})
	for _, b := range builds {
		v := b.grpc
		t.Run(v+b.toolchain, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644); err != nil {
				t.Fatal(err)
			}
			goCmd := func(args ...string) {
				cmd := exec.Command("go", args...)
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
				if b.toolchain != "" {
					cmd.Env = append(cmd.Env, "GOTOOLCHAIN="+b.toolchain)
				}
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
			lin, err := goLineageLayout(exe)
			if err != nil {
				t.Fatalf("lineage layout: %v", err)
			}
			// The tables for binaries without DWARF agree with the DWARF.
			if o, ok := goReleaseLayouts[goRelease(exe)]; !ok || uint64(o.gM)|uint64(o.mCurg)<<16|uint64(o.startpc)<<32 != lin.cookie ||
				uint64(o.fd) != srv.cookie>>32 {
				t.Errorf("goReleaseLayouts[%q] = %+v, %v; the DWARF says lineage %#x, server %#x", goRelease(exe), o, ok, lin.cookie, srv.cookie)
			}
			if o, ok := grpcReleaseLayouts[grpcRelease(exe)]; !ok || uint64(o.streamID) != srv.cookie&0xffff ||
				uint64(o.conn) != srv.cookie>>16&0xffff || uint64(o.clientStreamID) != cli.cookie {
				t.Errorf("grpcReleaseLayouts[%q] = %+v, %v; the DWARF says server %#x, client %#x", grpcRelease(exe), o, ok, srv.cookie, cli.cookie)
			}
			t.Logf("server cookie %#x, client cookie %#x, call site +%#x; lineage cookie %#x at +%#x",
				srv.cookie, cli.cookie, cli.at["go_grpc_put"], lin.cookie, lin.at["go_spawn"])
			if v != grpcReleases[0] || b.toolchain != "" {
				return
			}
			// A release build: no symbol table, no DWARF: the layouts come
			// from the tables, the call sites from .gopclntab.
			goCmd("build", "-ldflags=-s -w", "-o", "app-stripped", ".")
			stripped := filepath.Join(dir, "app-stripped")
			if sc, err := grpcClientLayout(stripped); err != nil || sc.cookie != cli.cookie || sc.at["go_grpc_put"] != cli.at["go_grpc_put"] {
				t.Errorf("grpc-go client, a release build: %+v, %v; want %+v", sc, err, cli)
			}
			if ss, err := grpcLayout(stripped); err != nil || ss.cookie != srv.cookie {
				t.Errorf("grpc-go server, a release build: %+v, %v; want %+v", ss, err, srv)
			}
			if sl, err := goLineageLayout(stripped); err != nil || sl.cookie != lin.cookie || sl.at["go_spawn"] == 0 {
				t.Errorf("lineage, a release build: %+v, %v; want cookie %#x and a call site", sl, err, lin.cookie)
			}
		})
	}
}
