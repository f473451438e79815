package qos

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Upstream behaviour pinned here: pkg/apis/core/v1/helper/qos/qos.go
// (GetPodQOS, ComputePodQOS) at Kubernetes v1.37, and
// IsPodLevelResourcesSet in k8s.io/component-helpers/resource/helpers.go.
func TestClass(t *testing.T) {
	const (
		G  = corev1.PodQOSGuaranteed
		B  = corev1.PodQOSBurstable
		BE = corev1.PodQOSBestEffort
	)
	gatesOff := DefaultConfig()
	gatesOff.PodLevelResources = false
	fixOff := DefaultConfig()
	fixOff.PodLevelResourcesFixKubeletQOSClass = false

	for _, tc := range []struct {
		name string
		cfg  Config
		pod  *corev1.Pod
		want corev1.PodQOSClass
	}{
		{"qos.go: a pod without containers is BestEffort", DefaultConfig(), pod(nil), BE},
		{"qos.go: no requests or limits is BestEffort", DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}), BE},
		{"qos.go: explicit zero requests and limits are BestEffort",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("0", "0"), cm("0", "0")))}), BE},
		{"qos.go: only ephemeral-storage is BestEffort: only cpu and memory count",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(list("ephemeral-storage", "1Gi"), list("ephemeral-storage", "1Gi")))}), BE},
		{"qos.go: only hugepages in a container is BestEffort",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(list("hugepages-2Mi", "4Mi"), list("hugepages-2Mi", "4Mi")))}), BE},
		{"qos.go: equal non-zero cpu and memory is Guaranteed",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}), G},
		{"qos.go: ephemeral-storage does not spoil Guaranteed",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(list("cpu", "1", "memory", "1Gi", "ephemeral-storage", "5Gi"), cm("1", "1Gi")))}), G},
		{"qos.go: quantities compare by value, not spelling (1 == 1000m, 1Gi == 1073741824)",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("1", "1Gi"), cm("1000m", "1073741824")))}), G},
		{"qos.go: limits without requests are compared as written: Burstable until the API server defaults requests",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(nil, cm("1", "1Gi")))}), B},
		{"qos.go: cpu Guaranteed but memory absent is Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("1", ""), cm("1", "")))}), B},
		{"qos.go: requests below limits is Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", burstableReq)}), B},
		{"qos.go: a request alone is Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Mi"), nil))}), B},
		{"qos.go: one Guaranteed and one BestEffort container is Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq), ctr("b", bestEffortReq)}), B},
		{"qos.go: init containers count: BestEffort init beside Guaranteed containers is Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withInit(ctr("i", bestEffortReq))), B},
		{"qos.go: all Guaranteed, init and sidecar included, is Guaranteed",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withInit(ctr("i", guaranteedReq), sidecar("s", guaranteedReq))), G},
		{"qos.go: a Burstable sidecar makes the pod Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withInit(sidecar("s", burstableReq))), B},
		{"qos.go: pod-level resources decide over the containers",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withPodResources(req(cm("1", "1Gi"), cm("1", "1Gi")))), G},
		{"qos.go: Burstable pod-level resources over Guaranteed containers is Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withPodResources(req(cm("1", "1Gi"), cm("2", "1Gi")))), B},
		{"qos.go: PodLevelResources off ignores spec.resources",
			gatesOff, pod([]corev1.Container{ctr("a", bestEffortReq)}, withPodResources(req(cm("1", "1Gi"), cm("1", "1Gi")))), BE},
		{"qos.go: with the 1.37 fix, spec.resources {} falls back to the containers",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withPodResources(corev1.ResourceRequirements{})), G},
		{"qos.go: without the fix, spec.resources {} decides and is BestEffort",
			fixOff, pod([]corev1.Container{ctr("a", guaranteedReq)}, withPodResources(corev1.ResourceRequirements{})), BE},
		{"qos.go: with the fix, pod-level ephemeral-storage only does not decide",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withPodResources(req(list("ephemeral-storage", "1Gi"), nil))), G},
		{"qos.go: pod-level hugepages only decides, and having no cpu or memory is BestEffort",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withPodResources(req(list("hugepages-2Mi", "4Mi"), list("hugepages-2Mi", "4Mi")))), BE},
		{"qos.go: GetPodQOS: a preset status.qosClass wins over the spec",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withStatusClass(G)), G},
		{"qos.go: GetPodQOS: a preset class is returned as is, even an unknown one",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}, withStatusClass("Platinum")), "Platinum"},
		{"nodekit: a nil pod is BestEffort", DefaultConfig(), nil, BE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.cfg.Class(tc.pod); got != tc.want {
				t.Errorf("Config.Class = %q, want %q", got, tc.want)
			}
			if tc.cfg.PodLevelResources && tc.cfg.PodLevelResourcesFixKubeletQOSClass {
				if got := Class(tc.pod); got != tc.want {
					t.Errorf("Class = %q, want %q", got, tc.want)
				}
			}
		})
	}
}

// ComputePodQOS in pkg/apis/core/v1/helper/qos/qos.go ignores the status.
func TestComputeClassIgnoresStatus(t *testing.T) {
	p := pod([]corev1.Container{ctr("a", guaranteedReq)}, withStatusClass(corev1.PodQOSBestEffort))
	if got := ComputeClass(p); got != corev1.PodQOSGuaranteed {
		t.Errorf("ComputeClass = %q, want Guaranteed", got)
	}
	if got := DefaultConfig().ComputeClass(p); got != corev1.PodQOSGuaranteed {
		t.Errorf("Config.ComputeClass = %q, want Guaranteed", got)
	}
	if got := Class(p); got != corev1.PodQOSBestEffort {
		t.Errorf("Class = %q, want the preset BestEffort", got)
	}
}

func TestClassDoesNotAllocate(t *testing.T) {
	p := pod([]corev1.Container{ctr("a", guaranteedReq), ctr("b", guaranteedReq)},
		withInit(sidecar("s", guaranteedReq)), withPodResources(corev1.ResourceRequirements{}))
	if n := testing.AllocsPerRun(100, func() { _ = Class(p) }); n != 0 {
		t.Errorf("Class allocates %v times per call, want 0", n)
	}
}
