package k8s

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestInstrumentedRule(t *testing.T) {
	cfg := Config{}.withDefaults()
	on, off := mkNS("on", enabled), mkNS("off", nil)
	tests := []struct {
		name        string
		ns          *corev1.Namespace
		label, anno string
		want        bool
	}{
		{"labelled namespace", on, "", "", true},
		{"unlabelled namespace", off, "", "", false},
		{"unknown namespace", nil, "", "", false},
		{"opt-out annotation", on, "", "disabled", false},
		{"opt-out label", on, "disabled", "", false},
		{"opt-in annotation", off, "", "enabled", true},
		{"opt-in label", off, "enabled", "", true},
		{"opt-in in unknown namespace", nil, "enabled", "", true},
		{"conflict: opting out wins", off, "enabled", "disabled", false},
		{"other value ignored", on, "", "maybe", true},
		{"case-insensitive", off, "", " ENABLED ", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mkPod(tt.name, "p", 1, node)
			if tt.label != "" {
				p.Labels[DefaultLabel] = tt.label
			}
			if tt.anno != "" {
				p.Annotations[DefaultLabel] = tt.anno
			}
			if got := cfg.instrumented(tt.ns, p); got != tt.want {
				t.Errorf("instrumented = %v, want %v", got, tt.want)
			}
		})
	}
	custom := Config{Label: "example.com/trace", Enabled: "yes"}.withDefaults()
	if !custom.instrumented(mkNS("n", map[string]string{"example.com/trace": "yes"}), mkPod("n", "p", 1, node)) {
		t.Error("custom label and value not honoured")
	}
}

func TestServiceNamePrecedence(t *testing.T) {
	env := func(v string) []corev1.EnvVar { return []corev1.EnvVar{{Name: "OTEL_SERVICE_NAME", Value: v}} }
	fromSecret := []corev1.EnvVar{{Name: "OTEL_SERVICE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}
	mk := func(appLabel string, envs []corev1.EnvVar, owner bool) *corev1.Pod {
		p := mkPod("ns", "pod-1", 1, node, ctr{name: "app", id: hexID(1), env: envs}, ctr{name: "side", id: hexID(2)}, ctr{name: "init", id: hexID(3), env: env("boot"), init: true})
		if appLabel != "" {
			p.Labels[labelAppName] = appLabel
		}
		if owner {
			owned(p, "DaemonSet", "agent")
		}
		return p
	}
	tests := []struct {
		name string
		pod  *corev1.Pod
		ctr  string
		want string
	}{
		{"env wins", mk("label", env("from-env"), true), hexID(1), "from-env"},
		{"env is per container", mk("label", env("from-env"), true), hexID(2), "label"},
		{"init container env", mk("", nil, false), hexID(3), "boot"},
		{"non-literal env skipped", mk("label", fromSecret, true), hexID(1), "label"},
		{"label over owner", mk("label", nil, true), hexID(1), "label"},
		{"owner over pod", mk("", nil, true), hexID(1), "agent"},
		{"pod name last", mk("", nil, false), hexID(1), "pod-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := podContainers(tt.pod, node, nil)[tt.ctr]
			if got.ServiceName != tt.want {
				t.Errorf("service.name = %q, want %q", got.ServiceName, tt.want)
			}
		})
	}
}

func TestOwnerResolution(t *testing.T) {
	rs := map[string]*appsv1.ReplicaSet{
		"web-abc": mkRS("ns", "web-abc", "web"),
		"bare-rs": mkRS("ns", "bare-rs", ""),
	}
	lookup := func(ns, name string) (*appsv1.ReplicaSet, bool) { r, ok := rs[name]; return r, ok }
	hashed := owned(mkPod("ns", "p", 1, node), "ReplicaSet", "api-6b7c8d9f")
	hashed.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = "6b7c8d9f"
	tests := []struct {
		name  string
		pod   *corev1.Pod
		attrs map[string]string
		owner string
	}{
		{"deployment via replicaset", owned(mkPod("ns", "p", 1, node), "ReplicaSet", "web-abc"),
			map[string]string{"k8s.replicaset.name": "web-abc", "k8s.deployment.name": "web"}, "web"},
		{"replicaset without deployment", owned(mkPod("ns", "p", 1, node), "ReplicaSet", "bare-rs"),
			map[string]string{"k8s.replicaset.name": "bare-rs"}, "bare-rs"},
		{"uncached replicaset: pod-template-hash", hashed,
			map[string]string{"k8s.replicaset.name": "api-6b7c8d9f", "k8s.deployment.name": "api"}, "api"},
		{"statefulset", owned(mkPod("ns", "p", 1, node), "StatefulSet", "db"), map[string]string{"k8s.statefulset.name": "db"}, "db"},
		{"daemonset", owned(mkPod("ns", "p", 1, node), "DaemonSet", "logs"), map[string]string{"k8s.daemonset.name": "logs"}, "logs"},
		{"job", owned(mkPod("ns", "p", 1, node), "Job", "migrate-v2"), map[string]string{"k8s.job.name": "migrate-v2"}, "migrate-v2"},
		{"cronjob by job name", owned(mkPod("ns", "p", 1, node), "Job", "nightly-report-29145600"),
			map[string]string{"k8s.job.name": "nightly-report-29145600", "k8s.cronjob.name": "nightly-report"}, "nightly-report"},
		{"short number is not a schedule", owned(mkPod("ns", "p", 1, node), "Job", "batch-42"), map[string]string{"k8s.job.name": "batch-42"}, "batch-42"},
		{"unknown kind", owned(mkPod("ns", "p", 1, node), "Rollout", "canary"), map[string]string{}, "canary"},
		{"bare pod", mkPod("ns", "p", 1, node), map[string]string{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := ownerOf(tt.pod, lookup)
			got := attrMap(w.attrs)
			if len(got) != len(tt.attrs) || w.name != tt.owner {
				t.Fatalf("owner %q attrs %v, want %q %v", w.name, got, tt.owner, tt.attrs)
			}
			for k, v := range tt.attrs {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestPodContainersSkipsUnstarted(t *testing.T) {
	p := mkPod("ns", "p", 1, node, ctr{name: "a", id: hexID(1)})
	p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: "b"}) // waiting, no id
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b"})
	if got := podContainers(p, node, nil); len(got) != 1 {
		t.Errorf("containers %v, want only the started one", got)
	}
	if got := podContainers(&corev1.Pod{}, node, nil); len(got) != 0 {
		t.Errorf("empty pod: %v", got)
	}
}
