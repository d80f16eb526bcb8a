package k8s

import (
	"strconv"
	"strings"
	"testing"
)

const (
	cid   = "8f1c2a4b6d8e0f1a3b5c7d9e1f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2d4e6f8a"
	cid2  = "0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9"
	puid  = "4c8e3b5a-1f2d-4e6a-9b7c-0d1e2f3a4b5c"
	puidU = "4c8e3b5a_1f2d_4e6a_9b7c_0d1e2f3a4b5c" // systemd slice spelling
)

func TestContainerIDOf(t *testing.T) {
	v1 := func(path string) string {
		var b strings.Builder
		for i, ctl := range []string{"pids", "hugetlb", "net_cls,net_prio", "perf_event", "memory", "cpu,cpuacct", "blkio", "devices", "freezer", "cpuset", "rdma"} {
			b.WriteString(strings.Join([]string{strconv.Itoa(12 - i), ctl, path}, ":") + "\n")
		}
		b.WriteString("1:name=systemd:" + path + "\n0::/\n")
		return b.String()
	}
	tests := []struct {
		name, cgroup string
		id           string // "" = none
		uid          string // "" = none
	}{
		{"containerd systemd v2", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + puidU + ".slice/cri-containerd-" + cid + ".scope\n", cid, puid},
		{"containerd systemd v2 guaranteed", "0::/kubepods.slice/kubepods-pod" + puidU + ".slice/cri-containerd-" + cid + ".scope", cid, puid},
		{"containerd cgroupfs v2", "0::/kubepods/burstable/pod" + puid + "/" + cid + "\n", cid, puid},
		{"k3s cgroupfs v2 besteffort", "0::/kubepods/besteffort/pod" + puid + "/" + cid, cid, puid},
		{"containerd cgroupfs v1", v1("/kubepods/besteffort/pod" + puid + "/" + cid), cid, puid},
		{"containerd systemd v1", v1("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + puidU + ".slice/cri-containerd-" + cid + ".scope"), cid, puid},
		{"cri-o systemd v2", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + puidU + ".slice/crio-" + cid + ".scope\n", cid, puid},
		{"cri-o systemd v1", v1("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + puidU + ".slice/crio-" + cid + ".scope"), cid, puid},
		{"cri-o conmon is not a container", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + puidU + ".slice/crio-conmon-" + cid + ".scope\n", "", puid},
		{"cri-o cgroupfs v2", "0::/kubepods/burstable/pod" + puid + "/crio-" + cid, cid, puid},
		{"dockershim v1", v1("/kubepods/burstable/pod" + puid + "/" + cid), cid, puid},
		{"docker systemd v2", "0::/system.slice/docker-" + cid + ".scope\n", cid, ""},
		{"docker cgroupfs v1", "12:memory:/docker/" + cid + "\n4:cpu,cpuacct:/docker/" + cid + "\n0::/\n", cid, ""},
		{"podman rootless", "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope/container\n", cid, ""},
		{"kind: innermost wins", "0::/system.slice/docker-" + cid2 + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + puidU + ".slice/cri-containerd-" + cid + ".scope\n", cid, puid},
		{"kind from inside the node", "0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + puidU + ".slice/cri-containerd-" + cid + ".scope", cid, puid},
		{"systemd inside the container", "0::/kubepods.slice/kubepods-pod" + puidU + ".slice/cri-containerd-" + cid + ".scope/system.slice/nginx.service", cid, puid},
		{"cgroupsPath colon form", "0::/kubepods-besteffort-pod" + puidU + ".slice:cri-containerd:" + cid, cid, ""},
		{"CRLF", "0::/kubepods/burstable/pod" + puid + "/" + cid + "\r\n", cid, puid},
		{"host service", "0::/system.slice/sshd.service\n", "", ""},
		{"init scope", "0::/init.scope\n", "", ""},
		{"root", "0::/\n", "", ""},
		{"empty", "", "", ""},
		{"garbage", "not a cgroup file\x00\xff", "", ""},
		{"63 hex digits", "0::/docker/" + cid[:63], "", ""},
		{"65 hex digits", "0::/docker/" + cid + "0", "", ""},
		{"uppercase is not an id", "0::/docker/" + strings.ToUpper(cid), "", ""},
		{"pod slice only (sandbox cgroup)", "0::/kubepods.slice/kubepods-pod" + puidU + ".slice", "", puid},
		{"kubepods alone", "0::/kubepods.slice/kubepods-burstable.slice", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := ContainerIDOf(tt.cgroup)
			if id != tt.id || ok != (tt.id != "") {
				t.Errorf("ContainerIDOf = %q, %v; want %q", id, ok, tt.id)
			}
			uid, ok := PodUIDOf(tt.cgroup)
			if uid != tt.uid || ok != (tt.uid != "") {
				t.Errorf("PodUIDOf = %q, %v; want %q", uid, ok, tt.uid)
			}
		})
	}
}

func TestRuntimeContainerID(t *testing.T) {
	for in, want := range map[string]string{
		"containerd://" + cid:                  cid,
		"cri-o://" + cid:                       cid,
		"docker://" + cid:                      cid,
		cid:                                    cid,
		"containerd://" + strings.ToUpper(cid): cid,
		"":                                     "",
		"containerd://":                        "",
		"containerd://abc":                     "",
	} {
		if got := runtimeContainerID(in); got != want {
			t.Errorf("runtimeContainerID(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzContainerIDOf: any input, no panic, and an id found is always 64 hex.
func FuzzContainerIDOf(f *testing.F) {
	f.Add("0::/kubepods.slice/kubepods-pod" + puidU + ".slice/cri-containerd-" + cid + ".scope\n")
	f.Add("12:memory:/kubepods/besteffort/pod" + puid + "/" + cid)
	f.Add(":::/-pod::" + cid)
	f.Fuzz(func(t *testing.T, s string) {
		if id, ok := ContainerIDOf(s); ok && !isHex64(id) {
			t.Errorf("id %q", id)
		}
		if uid, ok := PodUIDOf(s); ok && !isUID(uid) {
			t.Errorf("uid %q", uid)
		}
	})
}
