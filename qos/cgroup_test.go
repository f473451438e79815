package qos

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Upstream behaviour pinned here: GetPodContainerName in
// pkg/kubelet/cm/pod_container_manager_linux.go, the QoS tiers of
// pkg/kubelet/cm/qos_container_manager_linux.go, kubepods from
// NewContainerManager in container_manager_linux.go, and
// CgroupName.ToCgroupfs / ToSystemd in cgroup_manager_linux.go.
func TestCgroupParent(t *testing.T) {
	const uid = "0b5f6bb4-2f0c-4b4f-a2f4-8d8bd2c1fb8a"
	const sdUID = "0b5f6bb4_2f0c_4b4f_a2f4_8d8bd2c1fb8a"
	g := pod([]corev1.Container{ctr("a", guaranteedReq)})
	b := pod([]corev1.Container{ctr("a", burstableReq)})
	be := pod([]corev1.Container{ctr("a", bestEffortReq)})
	systemd := DefaultConfig()
	systemd.CgroupDriver = Systemd
	rooted := DefaultConfig()
	rooted.CgroupRoot = "/node-a/pods"
	rootedSystemd := rooted
	rootedSystemd.CgroupDriver = Systemd
	noQOS := DefaultConfig()
	noQOS.CgroupsPerQOS = false
	emptyRoot := DefaultConfig()
	emptyRoot.CgroupRoot = ""
	badRoot := systemd
	badRoot.CgroupRoot = "/a//b"

	for _, tc := range []struct {
		name    string
		cfg     Config
		pod     *corev1.Pod
		want    string
		wantErr bool
	}{
		{"pod_container_manager_linux.go: Guaranteed pods sit directly in kubepods", DefaultConfig(), g, "/kubepods/pod" + uid, false},
		{"qos_container_manager_linux.go: Burstable pods in kubepods/burstable", DefaultConfig(), b, "/kubepods/burstable/pod" + uid, false},
		{"qos_container_manager_linux.go: BestEffort pods in kubepods/besteffort", DefaultConfig(), be, "/kubepods/besteffort/pod" + uid, false},
		{"cgroup_manager_linux.go: systemd expands the slice and escapes dashes", systemd, b,
			"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + sdUID + ".slice", false},
		{"cgroup_manager_linux.go: systemd Guaranteed", systemd, g, "/kubepods.slice/kubepods-pod" + sdUID + ".slice", false},
		{"container_manager_linux.go: kubepods goes under --cgroup-root", rooted, be, "/node-a/pods/kubepods/besteffort/pod" + uid, false},
		{"cgroup_manager_linux.go: systemd turns the root's path components into slice components, escaping their dashes", rootedSystemd, g,
			"/node_a.slice/node_a-pods.slice/node_a-pods-kubepods.slice/node_a-pods-kubepods-pod" + sdUID + ".slice", false},
		{"pod_container_manager_linux.go: without cgroups-per-qos there is no parent", noQOS, b, "", false},
		{"pod_container_manager_linux.go: the preset status.qosClass picks the tier", DefaultConfig(),
			pod([]corev1.Container{ctr("a", guaranteedReq)}, withStatusClass(corev1.PodQOSBestEffort)), "/kubepods/besteffort/pod" + uid, false},
		{"pod_container_manager_linux.go: an unknown preset class leaves the parent empty: the pod lands at the root", DefaultConfig(),
			pod([]corev1.Container{ctr("a", guaranteedReq)}, withStatusClass("Platinum")), "/pod" + uid, false},
		{"nodekit: an empty --cgroup-root means /", emptyRoot, g, "/kubepods/pod" + uid, false},
		{"cgroup_manager_linux.go: an empty UID is just pod", DefaultConfig(), pod(nil, withUID("")), "/kubepods/besteffort/pod", false},
		{"cgroup_manager_linux.go: a UID with _ cannot round-trip through systemd names (upstream panics)", DefaultConfig(),
			pod(nil, withUID("a_b")), "", true},
		{"cgroup_manager_linux.go: a UID with / is not one component (upstream panics)", systemd, pod(nil, withUID("a/b")), "", true},
		{"systemd/common.go: an empty slice component is invalid (upstream panics)", badRoot, g, "", true},
		{"nodekit: a nil pod is an error", DefaultConfig(), nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.CgroupParent(tc.pod)
			if tc.wantErr {
				if !errors.Is(err, ErrCgroupName) {
					t.Fatalf("CgroupParent = %q, %v; want an error wrapping ErrCgroupName", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CgroupParent = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCgroupParentDefault(t *testing.T) {
	got, err := CgroupParent(pod([]corev1.Container{ctr("a", burstableReq)}))
	if want := "/kubepods/burstable/pod0b5f6bb4-2f0c-4b4f-a2f4-8d8bd2c1fb8a"; err != nil || got != want {
		t.Fatalf("CgroupParent = %q, %v; want %q", got, err, want)
	}
}
