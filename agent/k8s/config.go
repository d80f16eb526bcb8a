// Package k8s is the Kubernetes side of the agent (DaemonSet mode): it
// watches the pods of its node, decides which are instrumented (namespace
// label, pod opt-in/opt-out), maps their containers to host processes
// through /proc/<pid>/cgroup and names them with Kubernetes resource
// attributes.
//
// RBAC needed (least privilege): get/list/watch on pods and namespaces
// (core) and on replicasets (apps, to resolve Deployment owners).
package k8s

import "strings"

// Default selection label and values.
const (
	DefaultLabel    = "tracer-agent/instrument"
	DefaultEnabled  = "enabled"
	DefaultDisabled = "disabled"
)

// Config is what the agent decides about Kubernetes mode.
type Config struct {
	// NodeName is this node (normally from the downward API,
	// spec.nodeName). Only its pods are watched.
	NodeName string
	// ProcRoot is the host's /proc ("" = "/proc").
	ProcRoot string
	// Label is the namespace label, pod label and pod annotation key that
	// turns instrumentation on or off ("" = DefaultLabel).
	Label string
	// Enabled and Disabled are its values ("" = DefaultEnabled /
	// DefaultDisabled), compared case-insensitively.
	Enabled  string
	Disabled string
}

func (c Config) withDefaults() Config {
	if c.ProcRoot == "" {
		c.ProcRoot = "/proc"
	}
	if c.Label == "" {
		c.Label = DefaultLabel
	}
	if c.Enabled == "" {
		c.Enabled = DefaultEnabled
	}
	if c.Disabled == "" {
		c.Disabled = DefaultDisabled
	}
	return c
}

func (c Config) isEnabled(v string) bool {
	return strings.EqualFold(strings.TrimSpace(v), c.Enabled)
}

func (c Config) isDisabled(v string) bool {
	return strings.EqualFold(strings.TrimSpace(v), c.Disabled)
}
