package k8s

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// rsLookup finds a ReplicaSet in the informer cache.
type rsLookup func(namespace, name string) (*appsv1.ReplicaSet, bool)

// workload is what a pod's owner chain says about it.
type workload struct {
	attrs []attribute.KeyValue // k8s.<kind>.name attributes, outermost last
	name  string               // the outermost owner's name, "" for a bare pod
}

// ownerOf follows the pod's controller reference one or two steps:
// ReplicaSet → Deployment (through the ReplicaSet's own controller
// reference, or, while the ReplicaSet is not cached yet, the
// pod-template-hash naming convention) and Job → CronJob (by naming
// heuristic, see cronJobOf). StatefulSets and DaemonSets own their pods
// directly.
func ownerOf(pod *corev1.Pod, lookup rsLookup) workload {
	ref := controllerRef(pod.OwnerReferences)
	if ref == nil {
		return workload{}
	}
	switch ref.Kind {
	case "ReplicaSet":
		w := workload{attrs: []attribute.KeyValue{semconv.K8SReplicaSetName(ref.Name)}, name: ref.Name}
		if dep := deploymentOf(pod, ref.Name, lookup); dep != "" {
			w.attrs = append(w.attrs, semconv.K8SDeploymentName(dep))
			w.name = dep
		}
		return w
	case "StatefulSet":
		return workload{attrs: []attribute.KeyValue{semconv.K8SStatefulSetName(ref.Name)}, name: ref.Name}
	case "DaemonSet":
		return workload{attrs: []attribute.KeyValue{semconv.K8SDaemonSetName(ref.Name)}, name: ref.Name}
	case "Job":
		w := workload{attrs: []attribute.KeyValue{semconv.K8SJobName(ref.Name)}, name: ref.Name}
		if cj := cronJobOf(ref.Name); cj != "" {
			w.attrs = append(w.attrs, semconv.K8SCronJobName(cj))
			w.name = cj
		}
		return w
	default:
		return workload{name: ref.Name} // some operator's kind: still a better name than the pod's
	}
}

// controllerRef is the reference marked controller, else the first one.
func controllerRef(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	if len(refs) > 0 {
		return &refs[0]
	}
	return nil
}

// deploymentOf names the Deployment owning ReplicaSet rsName, "" if none.
func deploymentOf(pod *corev1.Pod, rsName string, lookup rsLookup) string {
	if lookup != nil {
		if rs, ok := lookup(pod.Namespace, rsName); ok {
			if ref := controllerRef(rs.OwnerReferences); ref != nil && ref.Kind == "Deployment" {
				return ref.Name
			}
			return ""
		}
	}
	// Not cached (yet): a Deployment names its ReplicaSets
	// "<deployment>-<pod-template-hash>" and labels their pods with the hash.
	if hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; hash != "" {
		if dep, ok := strings.CutSuffix(rsName, "-"+hash); ok && dep != "" {
			return dep
		}
	}
	return ""
}

// cronJobOf guesses the CronJob that created Job jobName. The CronJob
// controller names its Jobs "<cronjob>-<scheduled time in minutes since the
// epoch>", a number of 8 digits or more for any date after 1970-07; a
// hand-made Job named like that would be misattributed, which is harmless
// (one extra attribute) and avoids needing RBAC on jobs.batch.
func cronJobOf(jobName string) string {
	i := strings.LastIndexByte(jobName, '-')
	if i <= 0 || len(jobName)-i-1 < 8 {
		return ""
	}
	for _, c := range jobName[i+1:] {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return jobName[:i]
}
