package k8s

import corev1 "k8s.io/api/core/v1"

// instrumented is the selection rule. A pod's own choice (label or
// annotation) wins over its namespace's: "disabled" on the pod opts out
// even in a labelled namespace, "enabled" opts in even in an unlabelled
// one. If the pod says both (label and annotation disagree), opting out
// wins: not tracing is the safe side. ns may be nil (not in the cache yet):
// it then counts as unlabelled.
func (c Config) instrumented(ns *corev1.Namespace, pod *corev1.Pod) bool {
	podLabel, hasLabel := pod.Labels[c.Label]
	podAnn, hasAnn := pod.Annotations[c.Label]
	if (hasLabel && c.isDisabled(podLabel)) || (hasAnn && c.isDisabled(podAnn)) {
		return false
	}
	if (hasLabel && c.isEnabled(podLabel)) || (hasAnn && c.isEnabled(podAnn)) {
		return true
	}
	return ns != nil && c.isEnabled(ns.Labels[c.Label])
}
