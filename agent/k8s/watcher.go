package k8s

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/tracer-agent/tracer-agent/agent/procinfo"
)

// Change is what to start and stop tracing. A pid in Select that was
// already selected is sent again because its identity changed (owner
// resolved, pod relabelled): the receiver should update it.
type Change struct {
	Select   []Process
	Deselect []uint32
}

// Watcher follows the pods of one node and reports which host processes
// belong to instrumented pods.
type Watcher struct {
	client kubernetes.Interface
	cfg    Config

	// runMu serialises reconciliations and so the onChange calls.
	runMu    sync.Mutex
	scanner  cgroupScanner
	onChange func(Change)
	pods     corelisters.PodLister
	nss      corelisters.NamespaceLister
	rss      appslisters.ReplicaSetLister

	// mu guards the state ForPID reads and updates.
	mu         sync.Mutex
	containers map[string]Process // container id → identity, of selected pods
	selected   map[uint32]selection
	synced     bool

	kick chan struct{}
}

type selection struct {
	proc      Process
	container string
}

// New prepares a Watcher; nothing happens before Run.
func New(client kubernetes.Interface, cfg Config) *Watcher {
	cfg = cfg.withDefaults()
	return &Watcher{
		client:     client,
		cfg:        cfg,
		scanner:    cgroupScanner{procRoot: cfg.ProcRoot},
		containers: map[string]Process{},
		selected:   map[uint32]selection{},
		kick:       make(chan struct{}, 1),
	}
}

// Run watches until ctx is cancelled. onChange receives the initial
// selection once the caches are synced, then every change; its calls are
// serialised (never concurrent) and come from Run's goroutine or from
// Resync's caller. Run returns when ctx is done.
func (w *Watcher) Run(ctx context.Context, onChange func(Change)) {
	if onChange == nil {
		onChange = func(Change) {}
	}
	nodePods := informers.NewSharedInformerFactoryWithOptions(w.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", w.cfg.NodeName).String()
		}))
	all := informers.NewSharedInformerFactory(w.client, 0)
	podInf := nodePods.Core().V1().Pods()
	nsInf := all.Core().V1().Namespaces()
	rsInf := all.Apps().V1().ReplicaSets()

	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.poke() },
		UpdateFunc: func(_, _ any) { w.poke() },
		DeleteFunc: func(any) { w.poke() },
	}
	for _, inf := range []cache.SharedIndexInformer{podInf.Informer(), nsInf.Informer(), rsInf.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			slog.Warn("kubernetes: event handler", "err", err)
		}
	}
	w.runMu.Lock()
	w.onChange = onChange
	w.pods, w.nss, w.rss = podInf.Lister(), nsInf.Lister(), rsInf.Lister()
	w.runMu.Unlock()

	nodePods.Start(ctx.Done())
	all.Start(ctx.Done())
	defer nodePods.Shutdown()
	defer all.Shutdown()
	for typ, ok := range nodePods.WaitForCacheSync(ctx.Done()) {
		if !ok {
			slog.Warn("kubernetes: cache not synced", "type", typ)
		}
	}
	for typ, ok := range all.WaitForCacheSync(ctx.Done()) {
		if !ok {
			slog.Warn("kubernetes: cache not synced", "type", typ)
		}
	}
	if ctx.Err() != nil {
		return
	}
	w.mu.Lock()
	w.synced = true
	w.mu.Unlock()
	w.reconcile(true)
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
			// Let a burst of events (a rollout, a namespace relabel) settle
			// into one reconciliation.
			select {
			case <-ctx.Done():
				return
			case <-time.After(debounce):
			}
			w.reconcile(false)
		}
	}
}

// debounce coalesces bursts of informer events.
const debounce = 50 * time.Millisecond

func (w *Watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Resync rescans /proc for processes of the selected pods, e.g. a process
// started in an already selected container that no exec event classified,
// and drops pids that are gone. Call it periodically; it does nothing
// before Run has synced its caches.
func (w *Watcher) Resync() {
	w.mu.Lock()
	synced := w.synced
	w.mu.Unlock()
	if synced {
		w.reconcile(true)
	}
}

// ForPID classifies one process (e.g. at exec) by its cgroup: if it runs in
// a container of a selected pod, it is selected (reported by later
// Deselects) and its identity returned.
func (w *Watcher) ForPID(pid uint32) (Process, bool) {
	id := containerOfPID(w.cfg.ProcRoot, pid)
	if id == "" {
		return Process{}, false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	p, ok := w.containers[id]
	if !ok {
		return Process{}, false
	}
	p.PID = pid
	w.selected[pid] = selection{proc: p, container: id}
	return p, true
}

// reconcile recomputes the selection from the caches and /proc and
// reports the difference.
func (w *Watcher) reconcile(full bool) {
	w.runMu.Lock()
	defer w.runMu.Unlock()
	containers := w.desiredContainers()
	procs, err := w.scanner.scan(full)
	if err != nil {
		slog.Warn("kubernetes: scanning processes", "err", err)
		return
	}

	var ch Change
	w.mu.Lock()
	w.containers = containers
	for pid, id := range procs {
		p, ok := containers[id]
		if !ok {
			continue
		}
		p.PID = pid
		if old, ok := w.selected[pid]; ok && old.container == id && sameProcess(old.proc, p) {
			continue
		}
		w.selected[pid] = selection{proc: p, container: id}
		ch.Select = append(ch.Select, p)
	}
	for pid, sel := range w.selected {
		if _, still := containers[sel.container]; still {
			id, listed := w.scanner.known[pid]
			if listed && id == sel.container {
				continue
			}
			if !listed && procinfo.Exists(w.cfg.ProcRoot, pid) {
				continue // started after the scan; ForPID saw it first
			}
		}
		delete(w.selected, pid)
		ch.Deselect = append(ch.Deselect, pid)
	}
	w.mu.Unlock()

	if len(ch.Select) == 0 && len(ch.Deselect) == 0 {
		return
	}
	slices.SortFunc(ch.Select, func(a, b Process) int { return int(a.PID) - int(b.PID) })
	slices.Sort(ch.Deselect)
	w.onChange(ch)
}

// desiredContainers is every container of the instrumented pods of this
// node, with its identity.
func (w *Watcher) desiredContainers() map[string]Process {
	out := map[string]Process{}
	pods, err := w.pods.List(labels.Everything())
	if err != nil {
		return out
	}
	lookup := func(ns, name string) (*appsv1.ReplicaSet, bool) {
		rs, err := w.rss.ReplicaSets(ns).Get(name)
		return rs, err == nil && rs != nil
	}
	for _, pod := range pods {
		// The field selector already filters by node; checking again keeps
		// a server (or fake) that ignores it from selecting other nodes' pods.
		if pod.Spec.NodeName != w.cfg.NodeName || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		ns, err := w.nss.Get(pod.Namespace)
		if err != nil {
			ns = nil
		}
		if !w.cfg.instrumented(ns, pod) {
			continue
		}
		maps.Copy(out, podContainers(pod, w.cfg.NodeName, lookup))
	}
	return out
}

func sameProcess(a, b Process) bool {
	if a.PID != b.PID || a.ServiceName != b.ServiceName || len(a.ResourceAttrs) != len(b.ResourceAttrs) {
		return false
	}
	for i, kv := range a.ResourceAttrs {
		o := b.ResourceAttrs[i]
		if kv.Key != o.Key || kv.Value.Type() != o.Value.Type() || kv.Value.Emit() != o.Value.Emit() {
			return false
		}
	}
	return true
}
