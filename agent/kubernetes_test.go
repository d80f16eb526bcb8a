package agent_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tracer-agent/tracer-agent/agent"
	"github.com/tracer-agent/tracer-agent/internal/otlptest"
	"github.com/tracer-agent/tracer-agent/internal/testenv"
)

// TestKubernetesNode: real processes in their own cgroups named like a
// pod's containers are traced while the (fake) API says their namespace is
// labelled, and stop being traced when the label is removed — real
// traffic, real spans.
func TestKubernetesNode(t *testing.T) {
	testenv.RequireBPF(t)
	py := testenv.RequireCommand(t, "python3")
	root := cgroup2Root(t)

	// A pod with one container whose process lives in a cgroup named as
	// the cgroupfs driver names it: kubepods/burstable/pod<uid>/<id>.
	uid := "6d1f8c5e-3f7a-4c1e-9d2b-0a1b2c3d4e5f"
	idb := make([]byte, 32)
	rand.Read(idb)
	cid := hex.EncodeToString(idb)
	dir := filepath.Join(root, "kubepods", "burstable", "pod"+uid, cid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir))
	})
	srv := exec.Command(py, "-m", "http.server", "--bind", "127.0.0.1", "0")
	srv.Dir = t.TempDir()
	out, _ := srv.StdoutPipe()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(srv.Process.Pid)), 0o644); err != nil {
		t.Fatalf("move the server into its container cgroup: %v", err)
	}
	buf := make([]byte, 256)
	n, _ := out.Read(buf) // "Serving HTTP on 127.0.0.1 port N (...)"
	var port int
	fmt.Sscanf(strings.SplitN(string(buf[:n]), "port ", 2)[1], "%d", &port)
	if port == 0 {
		t.Fatalf("no port in %q", buf[:n])
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"tracer-agent/instrument": "enabled"}}}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", UID: "6d1f8c5e-3f7a-4c1e-9d2b-0a1b2c3d4e5f",
			Labels: map[string]string{"app.kubernetes.io/name": "web"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "app"}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "app", ContainerID: "containerd://" + cid, Ready: true}}},
	}
	client := fake.NewSimpleClientset(ns, pod)

	rcv := otlptest.Start(t)
	for _, kv := range rcv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Config{Kubernetes: true, NodeName: "node-1", KubeClient: client,
			Output: "otlp", CaptureBytes: 4096, ProcRoot: "/proc", Rescan: time.Second})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	get := func() {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
		}
	}
	// Selected: spans with the pod's identity.
	spans := waitSpans(t, rcv, get, 1)
	s := spans[0]
	for k, want := range map[string]any{
		"service.name": "web", "k8s.namespace.name": "shop", "k8s.pod.name": "web-0",
		"k8s.pod.uid": uid, "k8s.container.name": "app", "k8s.node.name": "node-1",
	} {
		if s.Resource[k] != want {
			t.Errorf("resource %s = %v, want %v", k, s.Resource[k], want)
		}
	}

	// The namespace label is removed: no more spans.
	ns.Labels = nil
	if _, err := client.CoreV1().Namespaces().Update(context.Background(), ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // deselection, then the in-flight flush
	rcv.Reset()
	for i := 0; i < 3; i++ {
		get()
	}
	time.Sleep(2 * time.Second)
	if got := rcv.Spans(); len(got) != 0 {
		t.Errorf("%d spans after the namespace label was removed:\n%s", len(got), otlptest.Dump(got))
	}

	// Labelled again: traced again, live.
	ns.Labels = map[string]string{"tracer-agent/instrument": "enabled"}
	if _, err := client.CoreV1().Namespaces().Update(context.Background(), ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSpans(t, rcv, get, 1)
}

// waitSpans drives traffic until at least n spans arrive.
func waitSpans(t *testing.T, rcv *otlptest.Receiver, drive func(), n int) []otlptest.Span {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		drive()
		time.Sleep(300 * time.Millisecond)
		if s := rcv.Spans(); len(s) >= n {
			return s
		}
	}
	t.Fatalf("no spans within 30s")
	return nil
}

// cgroup2Root is where the cgroup v2 hierarchy is mounted.
func cgroup2Root(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	if testenv.Required() {
		t.Fatal("no cgroup v2 hierarchy mounted")
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}
