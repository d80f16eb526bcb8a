package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/tracer-agent/tracer-agent/agent/k8s"
	"github.com/tracer-agent/tracer-agent/agent/procinfo"
)

// kubeClient is the API client of Kubernetes mode: in-cluster (the
// DaemonSet's service account), else $KUBECONFIG / ~/.kube/config.
func kubeClient(cfg Config) (kubernetes.Interface, error) {
	if cfg.KubeClient != nil {
		return cfg.KubeClient, nil
	}
	rc, err := rest.InClusterConfig()
	if errors.Is(err, rest.ErrNotInCluster) {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		rc, err = clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("--kubernetes: no API access (not in a pod and no usable kubeconfig): %v", err)
	}
	return kubernetes.NewForConfig(rc)
}

// startKubernetes selects the processes of instrumented pods on this node
// and follows relabelling live.
func (a *runner) startKubernetes(ctx context.Context) error {
	if a.cfg.NodeName == "" {
		a.cfg.NodeName = os.Getenv("NODE_NAME")
	}
	if a.cfg.NodeName == "" {
		return errors.New("--kubernetes needs this node's name: set NODE_NAME (downward API spec.nodeName) or --node-name")
	}
	client, err := kubeClient(a.cfg)
	if err != nil {
		return err
	}
	a.kube = k8s.New(client, k8s.Config{NodeName: a.cfg.NodeName, ProcRoot: a.cfg.ProcRoot})
	go a.kube.Run(ctx, func(ch k8s.Change) {
		for _, p := range ch.Select {
			a.trackPod(p, "pod")
		}
		for _, pid := range ch.Deselect {
			a.deselect(pid)
		}
	})
	slog.Info("kubernetes mode", "node", a.cfg.NodeName)
	return nil
}

// trackPod selects a pod's process with its Kubernetes identity.
func (a *runner) trackPod(p k8s.Process, why string) {
	a.trackAs(p.PID, why, procinfo.Exec{}, func(info *process) {
		if p.ServiceName != "" {
			info.ServiceName = p.ServiceName
		}
		info.ResourceAttrs = append(info.ResourceAttrs, p.ResourceAttrs...)
	})
}
