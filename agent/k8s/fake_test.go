package k8s

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"go.opentelemetry.io/otel/attribute"
)

const node = "node-a"

// hexID makes a distinct 64-hex container id.
func hexID(n int) string { return fmt.Sprintf("%064x", n+0xc0ffee) }

// uidOf makes a distinct pod uid.
func uidOf(n int) types.UID { return types.UID(fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n)) }

// ctr is one container of a test pod.
type ctr struct {
	name, id string
	env      []corev1.EnvVar
	init     bool
}

func mkPod(ns, name string, n int, nodeName string, ctrs ...ctr) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uidOf(n), Labels: map[string]string{}, Annotations: map[string]string{}},
		Spec:       corev1.PodSpec{NodeName: nodeName},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	for _, c := range ctrs {
		spec := corev1.Container{Name: c.name, Env: c.env}
		st := corev1.ContainerStatus{Name: c.name, ContainerID: "containerd://" + c.id}
		if c.init {
			p.Spec.InitContainers = append(p.Spec.InitContainers, spec)
			p.Status.InitContainerStatuses = append(p.Status.InitContainerStatuses, st)
		} else {
			p.Spec.Containers = append(p.Spec.Containers, spec)
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, st)
		}
	}
	return p
}

func owned(p *corev1.Pod, kind, name string) *corev1.Pod {
	yes := true
	p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &yes}}
	return p
}

func mkNS(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func mkRS(ns, name, deployment string) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if deployment != "" {
		yes := true
		rs.OwnerReferences = []metav1.OwnerReference{{Kind: "Deployment", Name: deployment, Controller: &yes}}
	}
	return rs
}

var enabled = map[string]string{DefaultLabel: DefaultEnabled}

// harness runs a Watcher against a fake clientset and a fake /proc, and
// keeps the selection its changes describe.
type harness struct {
	t      *testing.T
	client *fake.Clientset
	proc   string
	w      *Watcher

	watches atomic.Int32 // watches established with the fake tracker

	mu      sync.Mutex
	state   map[uint32]Process
	changes []Change
}

func start(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{t: t, client: fake.NewClientset(objs...), proc: t.TempDir(), state: map[uint32]Process{}}
	// The fake clientset has no resource versions: an object created
	// between an informer's list and its watch would be lost. Wait for the
	// three watches before letting a test change anything.
	h.client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		gvr := a.GetResource()
		w, err := h.client.Tracker().Watch(gvr, a.GetNamespace())
		h.watches.Add(1)
		return true, w, err
	})
	h.w = New(h.client, Config{NodeName: node, ProcRoot: h.proc})
	return h
}

// run starts the watcher once the fake /proc is populated.
func (h *harness) run() {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); h.w.Run(ctx, h.onChange) }()
	h.t.Cleanup(func() { cancel(); <-done })
	h.waitSynced()
}

func (h *harness) waitSynced() {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		h.w.mu.Lock()
		ok := h.w.synced
		h.w.mu.Unlock()
		if ok && h.watches.Load() >= 3 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatal("watcher did not sync")
}

func (h *harness) onChange(c Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.changes = append(h.changes, c)
	for _, pid := range c.Deselect {
		if _, ok := h.state[pid]; !ok {
			h.t.Errorf("deselect of unselected pid %d", pid)
		}
		delete(h.state, pid)
	}
	for _, p := range c.Select {
		h.state[p.PID] = p
	}
}

// addProc writes <proc>/<pid>/cgroup.
func (h *harness) addProc(pid uint32, cgroup string) {
	h.t.Helper()
	dir := filepath.Join(h.proc, strconv.FormatUint(uint64(pid), 10))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) removeProc(pid uint32) {
	h.t.Helper()
	if err := os.RemoveAll(filepath.Join(h.proc, strconv.FormatUint(uint64(pid), 10))); err != nil {
		h.t.Fatal(err)
	}
}

// containerProc adds a process of a pod's container (cgroup v2, systemd).
func (h *harness) containerProc(pid uint32, pod types.UID, id string) {
	h.addProc(pid, fmt.Sprintf("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope\n",
		underscored(string(pod)), id))
}

func underscored(s string) string {
	b := []byte(s)
	for i := range b {
		if b[i] == '-' {
			b[i] = '_'
		}
	}
	return string(b)
}

// pids is the current selection, sorted.
func (h *harness) pids() []uint32 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]uint32, 0, len(h.state))
	for pid := range h.state {
		out = append(out, pid)
	}
	sortU32(out)
	return out
}

func (h *harness) proc1(pid uint32) (Process, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, ok := h.state[pid]
	return p, ok
}

// waitPIDs waits until the selection is exactly want.
func (h *harness) waitPIDs(want ...uint32) {
	h.t.Helper()
	sortU32(want)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.pids()
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("selected pids = %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func sortU32(s []uint32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// attrMap flattens resource attributes for comparison.
func attrMap(kvs []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value.Emit()
	}
	return m
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
