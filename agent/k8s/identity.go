package k8s

import (
	corev1 "k8s.io/api/core/v1"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Process is a host process of an instrumented pod and its identity.
type Process struct {
	PID         uint32
	ServiceName string
	// ResourceAttrs: k8s.namespace.name, k8s.pod.name, k8s.pod.uid,
	// k8s.container.name, container.id, k8s.node.name and the owner
	// attributes (k8s.replicaset.name, k8s.deployment.name,
	// k8s.statefulset.name, k8s.daemonset.name, k8s.job.name,
	// k8s.cronjob.name) that apply. service.name is not repeated here.
	ResourceAttrs []attribute.KeyValue
}

// labelAppName is the recommended label naming an application.
const labelAppName = "app.kubernetes.io/name"

// podContainers maps the runtime ids of a pod's started containers
// (regular, init, including native sidecars, and ephemeral) to the
// identity their processes get (PID left 0).
func podContainers(pod *corev1.Pod, node string, lookup rsLookup) map[string]Process {
	statuses := make([]corev1.ContainerStatus, 0,
		len(pod.Status.ContainerStatuses)+len(pod.Status.InitContainerStatuses)+len(pod.Status.EphemeralContainerStatuses))
	statuses = append(statuses, pod.Status.ContainerStatuses...)
	statuses = append(statuses, pod.Status.InitContainerStatuses...)
	statuses = append(statuses, pod.Status.EphemeralContainerStatuses...)
	if len(statuses) == 0 {
		return nil
	}
	own := ownerOf(pod, lookup)
	out := make(map[string]Process, len(statuses))
	for _, st := range statuses {
		id := runtimeContainerID(st.ContainerID)
		if id == "" {
			continue // not started yet
		}
		attrs := make([]attribute.KeyValue, 0, 6+len(own.attrs))
		attrs = append(attrs,
			semconv.K8SNamespaceName(pod.Namespace),
			semconv.K8SPodName(pod.Name),
			semconv.K8SPodUID(string(pod.UID)),
			semconv.K8SContainerName(st.Name),
			semconv.ContainerID(id),
		)
		if node != "" {
			attrs = append(attrs, semconv.K8SNodeName(node))
		}
		attrs = append(attrs, own.attrs...)
		out[id] = Process{ServiceName: serviceName(pod, st.Name, own), ResourceAttrs: attrs}
	}
	return out
}

// serviceName: the container's literal OTEL_SERVICE_NAME (what the SDK
// would have used), else the app.kubernetes.io/name label, else the
// workload's name (Deployment, StatefulSet, ...), else the pod's name.
// An OTEL_SERVICE_NAME taken from a ConfigMap, Secret or field reference
// is not resolved here; the process's own environment (procinfo) has it.
func serviceName(pod *corev1.Pod, container string, own workload) string {
	if v := literalEnv(pod, container, "OTEL_SERVICE_NAME"); v != "" {
		return v
	}
	if v := pod.Labels[labelAppName]; v != "" {
		return v
	}
	if own.name != "" {
		return own.name
	}
	return pod.Name
}

// literalEnv is the literal value of env var name in the spec of the
// named container, "" when absent or not literal.
func literalEnv(pod *corev1.Pod, container, name string) string {
	find := func(env []corev1.EnvVar) string {
		v := ""
		for _, e := range env { // the last definition wins, as in the kubelet
			if e.Name == name {
				v = e.Value
				if e.ValueFrom != nil {
					v = ""
				}
			}
		}
		return v
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == container {
			return find(c.Env)
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == container {
			return find(c.Env)
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == container {
			return find(c.Env)
		}
	}
	return ""
}
