package k8s

import "strings"

// ContainerIDOf finds the container id (64 lowercase hex digits) in the
// contents of a /proc/<pid>/cgroup file, whatever the runtime (containerd,
// CRI-O, Docker, Podman), cgroup driver (cgroupfs, systemd) or cgroup
// version. Examples of the paths it understands:
//
//	0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope
//	0::/kubepods/burstable/pod<uid>/<id>
//	0::/system.slice/docker-<id>.scope
//	0::/kubepods.slice/kubepods-pod<uid>.slice/crio-<id>.scope
//	12:memory:/kubepods/besteffort/pod<uid>/<id>
//	4:cpu,cpuacct:/docker/<id>
//
// When a path holds several ids (kind: a pod's container inside a node that
// is itself a Docker container), the innermost, i.e. the last, is the
// process's own container. CRI-O's and Podman's "conmon" monitor scopes are
// not containers and are skipped. Lines are tried in order; the first with
// an id wins (under cgroup v1 all controllers normally agree).
func ContainerIDOf(cgroup string) (id string, ok bool) {
	for line := range strings.SplitSeq(cgroup, "\n") {
		if id, ok := containerIDOfLine(line); ok {
			return id, true
		}
	}
	return "", false
}

// containerIDOfLine handles one "hierarchy:controllers:path" line.
func containerIDOfLine(line string) (string, bool) {
	path := cgroupPath(line)
	if path == "" {
		return "", false
	}
	segs := strings.Split(path, "/")
	for i := len(segs) - 1; i >= 0; i-- {
		if id, ok := containerIDOfSegment(segs[i]); ok {
			return id, true
		}
	}
	return "", false
}

// cgroupPath is the path field of a cgroup line: everything after the
// second colon (a path may itself contain colons).
func cgroupPath(line string) string {
	line = strings.TrimSpace(line)
	_, rest, ok := strings.Cut(line, ":")
	if !ok {
		return ""
	}
	_, path, ok := strings.Cut(rest, ":")
	if !ok {
		return ""
	}
	return path
}

// containerIDOfSegment recognises "<id>", "<prefix>-<id>.scope",
// "<prefix>-<id>" and "<prefix>:<id>" segments.
func containerIDOfSegment(seg string) (string, bool) {
	if len(seg) < 64 || strings.Contains(seg, "conmon") {
		return "", false
	}
	seg = strings.TrimSuffix(seg, ".scope")
	if i := strings.LastIndexAny(seg, "-:"); i >= 0 {
		seg = seg[i+1:]
	}
	if !isHex64(seg) {
		return "", false
	}
	return seg, true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// PodUIDOf finds the pod uid in the contents of a /proc/<pid>/cgroup file:
// the "pod<uid>" segment of cgroupfs paths or the "...-pod<uid>.slice"
// segment of systemd ones, where the uid's dashes are written as
// underscores. The uid is returned in its API form (with dashes).
func PodUIDOf(cgroup string) (uid string, ok bool) {
	for line := range strings.SplitSeq(cgroup, "\n") {
		segs := strings.Split(cgroupPath(line), "/")
		for i := len(segs) - 1; i >= 0; i-- {
			if uid, ok := podUIDOfSegment(segs[i]); ok {
				return uid, true
			}
		}
	}
	return "", false
}

func podUIDOfSegment(seg string) (string, bool) {
	seg = strings.TrimSuffix(seg, ".slice")
	i := strings.LastIndex(seg, "pod")
	if i < 0 || (i > 0 && seg[i-1] != '-') {
		return "", false
	}
	uid := strings.ReplaceAll(seg[i+3:], "_", "-")
	if !isUID(uid) {
		return "", false
	}
	return uid, true
}

// isUID accepts the 8-4-4-4-12 hex form of Kubernetes uids.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// runtimeContainerID strips the "<runtime>://" scheme of a
// ContainerStatus.ContainerID ("containerd://<id>", "cri-o://<id>",
// "docker://<id>"). It returns "" for a container not started yet.
func runtimeContainerID(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		s = id
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if !isHex64(s) {
		return ""
	}
	return s
}
