package k8s

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var bg = context.Background()

// shop: a labelled namespace with a Deployment's pod (two containers,
// three processes); other: an unlabelled namespace with one pod; a pod of
// another node in shop; a host process.
func shopCluster(t *testing.T) *harness {
	web := owned(mkPod("shop", "web-7d9f8c-x2x4z", 1, node,
		ctr{name: "app", id: hexID(1)}, ctr{name: "envoy", id: hexID(2)}), "ReplicaSet", "web-7d9f8c")
	db := mkPod("other", "db-0", 2, node, ctr{name: "db", id: hexID(3)})
	remote := owned(mkPod("shop", "web-7d9f8c-zzzzz", 3, "node-b", ctr{name: "app", id: hexID(4)}), "ReplicaSet", "web-7d9f8c")
	h := start(t, mkNS("shop", enabled), mkNS("other", nil), mkRS("shop", "web-7d9f8c", "web"), web, db, remote)
	h.containerProc(100, uidOf(1), hexID(1))
	h.containerProc(101, uidOf(1), hexID(1))
	h.containerProc(102, uidOf(1), hexID(2))
	h.containerProc(200, uidOf(2), hexID(3))
	h.containerProc(300, uidOf(3), hexID(4)) // the fake /proc is shared: the other node's container must still be ignored
	h.addProc(1, "0::/init.scope\n")
	h.run()
	return h
}

func TestNamespaceLabelledSelectsItsPods(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)

	p, _ := h.proc1(100)
	if p.ServiceName != "web" {
		t.Errorf("service.name = %q, want the deployment's name", p.ServiceName)
	}
	want := map[string]string{
		"k8s.namespace.name":  "shop",
		"k8s.pod.name":        "web-7d9f8c-x2x4z",
		"k8s.pod.uid":         string(uidOf(1)),
		"k8s.container.name":  "app",
		"container.id":        hexID(1),
		"k8s.node.name":       node,
		"k8s.replicaset.name": "web-7d9f8c",
		"k8s.deployment.name": "web",
	}
	got := attrMap(p.ResourceAttrs)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("attributes %v, want exactly %v", got, want)
	}
	if p, _ := h.proc1(102); attrMap(p.ResourceAttrs)["k8s.container.name"] != "envoy" {
		t.Errorf("pid 102 attributes %v", attrMap(p.ResourceAttrs))
	}
}

func TestPodOptOutAnnotationDeselects(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)
	pod, err := h.client.CoreV1().Pods("shop").Get(bg, "web-7d9f8c-x2x4z", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Annotations[DefaultLabel] = DefaultDisabled
	if _, err := h.client.CoreV1().Pods("shop").Update(bg, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitPIDs()

	delete(pod.Annotations, DefaultLabel) // opting back in is live too
	if _, err := h.client.CoreV1().Pods("shop").Update(bg, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitPIDs(100, 101, 102)
}

func TestNamespaceLabelRemovedDeselects(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)
	if _, err := h.client.CoreV1().Namespaces().Update(bg, mkNS("shop", map[string]string{"team": "x"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitPIDs()
}

func TestPodOptInUnlabelledNamespace(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)
	pod, err := h.client.CoreV1().Pods("other").Get(bg, "db-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Labels[DefaultLabel] = "Enabled" // values are case-insensitive
	if _, err := h.client.CoreV1().Pods("other").Update(bg, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitPIDs(100, 101, 102, 200)
	if p, _ := h.proc1(200); p.ServiceName != "db-0" {
		t.Errorf("bare pod service.name = %q, want its name", p.ServiceName)
	}
}

func TestNewPodSelectedDeletedDeselected(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)
	pod := owned(mkPod("shop", "cache-0", 9, node, ctr{name: "redis", id: hexID(9)}), "StatefulSet", "cache")
	h.containerProc(900, uidOf(9), hexID(9))
	if _, err := h.client.CoreV1().Pods("shop").Create(bg, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitPIDs(100, 101, 102, 900)
	p, _ := h.proc1(900)
	if a := attrMap(p.ResourceAttrs); a["k8s.statefulset.name"] != "cache" || p.ServiceName != "cache" {
		t.Errorf("statefulset pod: service %q attrs %v", p.ServiceName, a)
	}
	if err := h.client.CoreV1().Pods("shop").Delete(bg, "cache-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitPIDs(100, 101, 102)
}

func TestPodsOfOtherNodesIgnored(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102) // not 300
	if _, ok := h.w.ForPID(300); ok {
		t.Error("ForPID selected a process of another node's pod")
	}
}

func TestResyncPicksUpNewProcessesAndDropsGoneOnes(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)
	h.containerProc(103, uidOf(1), hexID(1)) // e.g. a worker forked by a process the kernel did not see exec
	h.removeProc(101)
	h.w.Resync()
	h.waitPIDs(100, 102, 103)
	if p, _ := h.proc1(103); attrMap(p.ResourceAttrs)["k8s.container.name"] != "app" {
		t.Errorf("pid 103 attributes %v", attrMap(p.ResourceAttrs))
	}
}

func TestForPID(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)
	h.containerProc(104, uidOf(1), hexID(2))
	p, ok := h.w.ForPID(104)
	if !ok || p.PID != 104 || attrMap(p.ResourceAttrs)["k8s.container.name"] != "envoy" || p.ServiceName != "web" {
		t.Fatalf("ForPID(104) = %+v, %v", p, ok)
	}
	for _, pid := range []uint32{1, 200, 999} { // host, unselected pod, gone
		if _, ok := h.w.ForPID(pid); ok {
			t.Errorf("ForPID(%d) selected", pid)
		}
	}
	// A pid ForPID selected is deselected with its pod.
	h.mu.Lock()
	h.state[104] = p
	h.mu.Unlock()
	if err := h.client.CoreV1().Pods("shop").Delete(bg, "web-7d9f8c-x2x4z", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitPIDs()
}

func TestRelabelUpdatesIdentity(t *testing.T) {
	h := shopCluster(t)
	h.waitPIDs(100, 101, 102)
	pod, err := h.client.CoreV1().Pods("shop").Get(bg, "web-7d9f8c-x2x4z", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Labels[labelAppName] = "storefront"
	if _, err := h.client.CoreV1().Pods("shop").Update(bg, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { p, _ := h.proc1(100); return p.ServiceName == "storefront" })
}

func TestReplicaSetArrivingLaterResolvesDeployment(t *testing.T) {
	// No pod-template-hash label and no ReplicaSet at first: only the
	// ReplicaSet is known; its appearance adds the Deployment.
	pod := owned(mkPod("shop", "api-5f6d7-abcde", 5, node, ctr{name: "api", id: hexID(5)}), "ReplicaSet", "api-5f6d7")
	h := start(t, mkNS("shop", enabled), pod)
	h.containerProc(500, uidOf(5), hexID(5))
	h.run()
	h.waitPIDs(500)
	if p, _ := h.proc1(500); p.ServiceName != "api-5f6d7" || attrMap(p.ResourceAttrs)["k8s.deployment.name"] != "" {
		t.Fatalf("before the ReplicaSet: %+v", p)
	}
	if _, err := h.client.AppsV1().ReplicaSets("shop").Create(bg, mkRS("shop", "api-5f6d7", "api"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		p, _ := h.proc1(500)
		return p.ServiceName == "api" && attrMap(p.ResourceAttrs)["k8s.deployment.name"] == "api"
	})
}

func TestSucceededPodNotSelected(t *testing.T) {
	pod := mkPod("shop", "migrate", 6, node, ctr{name: "m", id: hexID(6)})
	pod.Status.Phase = corev1.PodSucceeded
	h := start(t, mkNS("shop", enabled), pod)
	h.containerProc(600, uidOf(6), hexID(6)) // stale /proc entry
	h.run()
	h.waitPIDs()
}
