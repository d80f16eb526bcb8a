package k8s_test

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

const (
	agentNamespace = "tracer-agent"
	kustomization  = "kustomization.yaml"
)

// kinds maps apiVersion/kind to a fresh typed object. A kind missing here
// fails the test: every manifest must decode into a real API type.
var kinds = map[string]func() any{
	"v1/Namespace":       func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":  func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":       func() any { return &corev1.ConfigMap{} },
	"v1/Service":         func() any { return &corev1.Service{} },
	"apps/v1/DaemonSet":  func() any { return &appsv1.DaemonSet{} },
	"apps/v1/Deployment": func() any { return &appsv1.Deployment{} },
	"rbac.authorization.k8s.io/v1/ClusterRole":        func() any { return &rbacv1.ClusterRole{} },
	"rbac.authorization.k8s.io/v1/ClusterRoleBinding": func() any { return &rbacv1.ClusterRoleBinding{} },
}

// manifest is one decoded YAML document.
type manifest struct {
	file string
	kind string
	obj  any
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocs splits a multi-document YAML file, skipping documents that hold
// only comments and blank lines.
func splitDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(string(b), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeStrict decodes one document into its API type the way the API
// server's strict field validation does: unknown fields, duplicate keys and
// fields whose case differs from the API (hostPid for hostPID, which
// encoding/json would accept) are errors.
func decodeStrict(doc []byte) (string, any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return "", nil, err
	}
	newObj, ok := kinds[tm.APIVersion+"/"+tm.Kind]
	if !ok {
		return tm.Kind, nil, &unknownKindError{tm.APIVersion, tm.Kind}
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return tm.Kind, nil, err
	}
	obj := newObj()
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return tm.Kind, nil, err
	}
	if len(strict) > 0 {
		return tm.Kind, nil, errors.Join(strict...)
	}
	return tm.Kind, obj, nil
}

type unknownKindError struct{ apiVersion, kind string }

func (e *unknownKindError) Error() string {
	return "unexpected apiVersion/kind " + e.apiVersion + "/" + e.kind
}

// manifestFiles lists the YAML files of this directory except the
// kustomization.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == kustomization })
	sort.Strings(files)
	if len(files) == 0 {
		t.Fatal("no manifests found")
	}
	return files
}

func loadAll(t *testing.T) []manifest {
	t.Helper()
	var all []manifest
	for _, f := range manifestFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs := splitDocs(b)
		if len(docs) == 0 {
			t.Errorf("%s: no YAML documents", f)
		}
		for i, d := range docs {
			kind, obj, err := decodeStrict(d)
			if err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i+1, kind, err)
			}
			all = append(all, manifest{file: f, kind: kind, obj: obj})
		}
	}
	return all
}

// only returns the single object of type T, failing unless there is exactly one.
func only[T any](t *testing.T, all []manifest) T {
	t.Helper()
	var found []T
	for _, m := range all {
		if o, ok := m.obj.(T); ok {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, found %d", zero, len(found))
	}
	return found[0]
}

func TestManifestsDecodeStrictly(t *testing.T) {
	all := loadAll(t)
	counts := map[string]int{}
	for _, m := range all {
		counts[m.kind]++
		// Namespaced objects all live in the agent's namespace.
		if o, ok := m.obj.(metav1.Object); ok {
			switch m.kind {
			case "Namespace", "ClusterRole", "ClusterRoleBinding":
				if o.GetNamespace() != "" {
					t.Errorf("%s %s: cluster-scoped object has a namespace", m.file, m.kind)
				}
			default:
				if o.GetNamespace() != agentNamespace {
					t.Errorf("%s %s/%s: namespace %q, want %q", m.file, m.kind, o.GetName(), o.GetNamespace(), agentNamespace)
				}
			}
		}
	}
	want := map[string]int{
		"Namespace": 1, "ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1,
		"ConfigMap": 2, "DaemonSet": 1, "Deployment": 1, "Service": 1,
	}
	for k, n := range want {
		if counts[k] != n {
			t.Errorf("%d %s objects, want %d", counts[k], k, n)
		}
	}
}

// The strict decoder must reject what a lenient one would silently drop.
func TestStrictDecodingRejectsUnknownFields(t *testing.T) {
	for name, doc := range map[string]string{
		"typo":      "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      hostPid: true\n",
		"duplicate": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {A: '1'}\ndata: {B: '2'}\n",
		"unknown":   "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {prots: []}\n",
		"kind":      "apiVersion: v1\nkind: Secret\nmetadata: {name: x}\n",
		"version":   "apiVersion: apps/v1beta2\nkind: DaemonSet\nmetadata: {name: x}\n",
	} {
		if _, _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	b, err := os.ReadFile(kustomization)
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
	}
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatal(err)
	}
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Errorf("kustomization: %s/%s", k.APIVersion, k.Kind)
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if want := manifestFiles(t); !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want every manifest %v", got, want)
	}
}

func agentContainer(t *testing.T, ds *appsv1.DaemonSet) corev1.Container {
	t.Helper()
	if n := len(ds.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("DaemonSet has %d containers, want 1", n)
	}
	return ds.Spec.Template.Spec.Containers[0]
}

func TestDaemonSetSecurity(t *testing.T) {
	ds := only[*appsv1.DaemonSet](t, loadAll(t))
	pod := ds.Spec.Template.Spec
	c := agentContainer(t, ds)

	if !pod.HostPID {
		t.Error("hostPID must be true (host pids in /proc)")
	}
	if pod.HostNetwork {
		t.Error("hostNetwork must be false")
	}
	if pod.HostIPC {
		t.Error("hostIPC must be false")
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Fatal("no container securityContext")
	}
	if sc.Privileged == nil || *sc.Privileged {
		t.Error("container must be explicitly not privileged")
	}
	if pod.SecurityContext != nil && pod.SecurityContext.SeccompProfile != nil && sc.SeccompProfile == nil {
		t.Error("seccomp set on the pod only; keep it on the container with its reason")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("allowPrivilegeEscalation must be false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("readOnlyRootFilesystem must be true")
	}
	if sc.Capabilities == nil {
		t.Fatal("no capabilities")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities drop %v, want [ALL]", sc.Capabilities.Drop)
	}
	add := slices.Sorted(slices.Values(sc.Capabilities.Add))
	want := []corev1.Capability{"BPF", "DAC_READ_SEARCH", "NET_ADMIN", "PERFMON", "SYS_PTRACE"}
	if !slices.Equal(add, want) {
		t.Errorf("capabilities add %v, want exactly %v", add, want)
	}
}

func TestDaemonSetMountsArgsEnv(t *testing.T) {
	all := loadAll(t)
	ds := only[*appsv1.DaemonSet](t, all)
	pod := ds.Spec.Template.Spec
	c := agentContainer(t, ds)

	if c.Image != "ghcr.io/tracer-agent/tracer-agent:latest" {
		t.Errorf("image %q", c.Image)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.RollingUpdateDaemonSetStrategyType {
		t.Errorf("updateStrategy %q", ds.Spec.UpdateStrategy.Type)
	}
	if sel := ds.Spec.Selector; sel == nil || !subset(sel.MatchLabels, ds.Spec.Template.Labels) {
		t.Error("selector does not match the pod template labels")
	}
	sa := only[*corev1.ServiceAccount](t, all)
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, sa.Name)
	}
	if !slices.ContainsFunc(pod.Tolerations, func(tl corev1.Toleration) bool {
		return tl.Key == "" && tl.Operator == corev1.TolerationOpExists && tl.Effect == ""
	}) {
		t.Error("no toleration of every taint (operator Exists, no key)")
	}

	// Args: Kubernetes mode, host /proc, health checks dropped.
	for _, pair := range [][]string{{"--kubernetes"}, {"--proc-root", "/host/proc"}, {"--drop-route", "/health*"}} {
		if !slices.Contains(windows(c.Args, len(pair)), strings.Join(pair, " ")) {
			t.Errorf("args %q lack %q", c.Args, pair)
		}
	}

	// Mounts: read-only host paths, nothing else; no bpffs.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	wantMounts := map[string]string{ // mountPath -> host path
		"/host/proc":          "/proc",
		"/sys/kernel/tracing": "/sys/kernel/tracing",
		"/sys/fs/cgroup":      "/sys/fs/cgroup",
		"/sys/kernel/btf":     "/sys/kernel/btf",
	}
	seen := map[string]bool{}
	for _, m := range c.VolumeMounts {
		seen[m.MountPath] = true
		host, ok := wantMounts[m.MountPath]
		if !ok {
			t.Errorf("unexpected mount %s", m.MountPath)
			continue
		}
		if !m.ReadOnly {
			t.Errorf("mount %s must be read-only", m.MountPath)
		}
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			t.Errorf("mount %s: propagation %s", m.MountPath, *m.MountPropagation)
		}
		v, ok := vols[m.Name]
		if !ok || v.HostPath == nil {
			t.Errorf("mount %s: volume %q is not a hostPath volume", m.MountPath, m.Name)
			continue
		}
		if v.HostPath.Path != host {
			t.Errorf("mount %s: host path %s, want %s", m.MountPath, v.HostPath.Path, host)
		}
	}
	for p := range wantMounts {
		if !seen[p] {
			t.Errorf("missing mount %s", p)
		}
	}
	if len(pod.Volumes) != len(wantMounts) {
		t.Errorf("%d volumes, want %d", len(pod.Volumes), len(wantMounts))
	}

	// NODE_NAME from the downward API; the rest from the ConfigMap.
	var nodeName *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "NODE_NAME" {
			nodeName = &c.Env[i]
		}
	}
	if nodeName == nil || nodeName.ValueFrom == nil || nodeName.ValueFrom.FieldRef == nil ||
		nodeName.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME must come from fieldRef spec.nodeName: %+v", nodeName)
	}
	cm := configMap(t, all, "tracer-agent")
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cm.Name {
		t.Errorf("envFrom %+v, want the ConfigMap %s", c.EnvFrom, cm.Name)
	}
	for k, v := range map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.tracer-agent:4318",
		"OTEL_TRACES_SAMPLER":         "parentbased_always_on",
	} {
		if cm.Data[k] != v {
			t.Errorf("ConfigMap %s=%q, want %q", k, cm.Data[k], v)
		}
	}

	// Resources.
	for name, q := range map[string]struct {
		got  *resource.Quantity
		want string
	}{
		"requests.cpu":    {c.Resources.Requests.Cpu(), "100m"},
		"requests.memory": {c.Resources.Requests.Memory(), "128Mi"},
		"limits.cpu":      {c.Resources.Limits.Cpu(), "1"},
		"limits.memory":   {c.Resources.Limits.Memory(), "256Mi"},
	} {
		if q.got.Cmp(resource.MustParse(q.want)) != 0 {
			t.Errorf("%s = %s, want %s", name, q.got, q.want)
		}
	}
}

// windows returns every run of n consecutive args joined by spaces.
func windows(args []string, n int) []string {
	var out []string
	for i := 0; i+n <= len(args); i++ {
		out = append(out, strings.Join(args[i:i+n], " "))
	}
	return out
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func configMap(t *testing.T, all []manifest, name string) *corev1.ConfigMap {
	t.Helper()
	for _, m := range all {
		if cm, ok := m.obj.(*corev1.ConfigMap); ok && cm.Name == name {
			return cm
		}
	}
	t.Fatalf("no ConfigMap %s", name)
	return nil
}

func TestClusterRoleLeastPrivilege(t *testing.T) {
	all := loadAll(t)
	role := only[*rbacv1.ClusterRole](t, all)
	if role.AggregationRule != nil {
		t.Error("aggregationRule would grant more than the listed rules")
	}
	got := map[string]bool{}
	for _, r := range role.Rules {
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			t.Errorf("rule %+v: nonResourceURLs/resourceNames not expected", r)
		}
		if v := slices.Sorted(slices.Values(r.Verbs)); !slices.Equal(v, []string{"get", "list", "watch"}) {
			t.Errorf("rule %+v: verbs %v, want get, list, watch", r, v)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				got[g+"/"+res] = true
			}
		}
	}
	want := []string{"/namespaces", "/pods", "apps/replicasets"}
	if keys := slices.Sorted(mapKeys(got)); !slices.Equal(keys, want) {
		t.Errorf("ClusterRole grants %v, want exactly %v", keys, want)
	}

	crb := only[*rbacv1.ClusterRoleBinding](t, all)
	sa := only[*corev1.ServiceAccount](t, all)
	if crb.RoleRef.Kind != "ClusterRole" || crb.RoleRef.Name != role.Name || crb.RoleRef.APIGroup != rbacv1.GroupName {
		t.Errorf("roleRef %+v does not name ClusterRole %s", crb.RoleRef, role.Name)
	}
	if len(crb.Subjects) != 1 || crb.Subjects[0].Kind != rbacv1.ServiceAccountKind ||
		crb.Subjects[0].Name != sa.Name || crb.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("subjects %+v, want only ServiceAccount %s/%s", crb.Subjects, sa.Namespace, sa.Name)
	}
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// path walks nested maps; nil when any step is missing.
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func strs(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestCollectorConfig(t *testing.T) {
	all := loadAll(t)
	cm := configMap(t, all, "otel-collector")
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg); err != nil {
		t.Fatalf("collector config: %v", err)
	}

	for _, p := range []string{"grpc", "http"} {
		if path(cfg, "receivers", "otlp", "protocols", p) == nil {
			t.Errorf("otlp receiver lacks %s", p)
		}
	}

	// Pipeline: memory_limiter first, filter before sampling, batch last,
	// and every component it names is defined.
	pipe := path(cfg, "service", "pipelines", "traces")
	procs := strs(path(pipe, "processors"))
	want := []string{"memory_limiter", "filter/health", "tail_sampling", "batch"}
	if !slices.Equal(procs, want) {
		t.Errorf("traces processors %v, want %v", procs, want)
	}
	for section, names := range map[string][]string{
		"receivers":  strs(path(pipe, "receivers")),
		"processors": procs,
		"exporters":  strs(path(pipe, "exporters")),
	} {
		if len(names) == 0 {
			t.Errorf("traces pipeline has no %s", section)
		}
		for _, n := range names {
			if _, ok := path(cfg, section).(map[string]any)[n]; !ok {
				t.Errorf("pipeline uses %s %q, not defined", section, n)
			}
		}
	}

	// Filter: health checks by url.path and http.route.
	conds := strings.Join(strs(path(cfg, "processors", "filter/health", "traces", "span")), "\n")
	for _, attr := range []string{`attributes["url.path"]`, `attributes["http.route"]`} {
		if !strings.Contains(conds, attr) || !strings.Contains(conds, "^/health") {
			t.Errorf("filter/health lacks a ^/health condition on %s: %q", attr, conds)
		}
	}

	// Tail sampling: errors, > 2 s, 10 % of the rest.
	policies, _ := path(cfg, "processors", "tail_sampling", "policies").([]any)
	byType := map[string]any{}
	for _, p := range policies {
		typ, _ := path(p, "type").(string)
		byType[typ] = p
	}
	if len(policies) != 3 || len(byType) != 3 {
		t.Fatalf("tail_sampling policies %v, want status_code, latency, probabilistic", policies)
	}
	if codes := strs(path(byType["status_code"], "status_code", "status_codes")); !slices.Equal(codes, []string{"ERROR"}) {
		t.Errorf("status_code policy codes %v, want [ERROR]", codes)
	}
	if ms, _ := path(byType["latency"], "latency", "threshold_ms").(float64); ms != 2000 {
		t.Errorf("latency threshold_ms %v, want 2000", ms)
	}
	if pct, _ := path(byType["probabilistic"], "probabilistic", "sampling_percentage").(float64); pct != 10 {
		t.Errorf("probabilistic sampling_percentage %v, want 10", pct)
	}

	// Exporter: Jaeger's OTLP gRPC port, plaintext in-cluster.
	if ep := path(cfg, "exporters", "otlp/jaeger", "endpoint"); ep != "jaeger-collector.observability:4317" {
		t.Errorf("otlp/jaeger endpoint %v", ep)
	}
	if ins := path(cfg, "exporters", "otlp/jaeger", "tls", "insecure"); ins != true {
		t.Errorf("otlp/jaeger tls.insecure %v, want true", ins)
	}
}

func TestCollectorServiceReachesDeployment(t *testing.T) {
	all := loadAll(t)
	dep := only[*appsv1.Deployment](t, all)
	svc := only[*corev1.Service](t, all)
	if !subset(svc.Spec.Selector, dep.Spec.Template.Labels) {
		t.Errorf("Service selector %v does not match Deployment pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	if sel := dep.Spec.Selector; sel == nil || !subset(sel.MatchLabels, dep.Spec.Template.Labels) {
		t.Error("Deployment selector does not match its pod template")
	}
	// Tail sampling needs every span of a trace in one process.
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Error("collector replicas must be 1 (tail sampling)")
	}
	if svc.Name != "otel-collector" || svc.Namespace != agentNamespace {
		t.Errorf("Service %s/%s: the agent's endpoint names otel-collector.tracer-agent", svc.Namespace, svc.Name)
	}
	var named []string
	for _, c := range dep.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			named = append(named, p.Name)
		}
	}
	ports := map[int32]bool{}
	for _, p := range svc.Spec.Ports {
		ports[p.Port] = true
		if p.TargetPort.StrVal != "" && !slices.Contains(named, p.TargetPort.StrVal) {
			t.Errorf("Service port %d targets %q, not a container port", p.Port, p.TargetPort.StrVal)
		}
	}
	if !ports[4317] || !ports[4318] {
		t.Errorf("Service ports %v, want 4317 and 4318", ports)
	}
	cfgVol := false
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == configMap(t, all, "otel-collector").Name {
			cfgVol = true
		}
	}
	if !cfgVol {
		t.Error("collector Deployment does not mount its ConfigMap")
	}
}
