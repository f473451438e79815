package qos

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const gi = int64(1) << 30

// Upstream behaviour pinned here: GetContainerOOMScoreAdjust in
// pkg/kubelet/qos/policy.go and its helpers in pkg/kubelet/qos/helpers.go
// at Kubernetes v1.37.
func TestOOMScoreAdj(t *testing.T) {
	gatesOff := DefaultConfig()
	gatesOff.PodLevelResources = false
	nodeCritical := withPriority(SystemNodeCritical, ptr(SystemCriticalPriority+1000))

	for _, tc := range []struct {
		name      string
		cfg       Config
		pod       *corev1.Pod
		container int // index into init containers if < 0 (-1 is the first)
		capacity  int64
		want      int
	}{
		{"policy.go: Guaranteed gets -997",
			DefaultConfig(), pod([]corev1.Container{ctr("a", guaranteedReq)}), 0, 4 * gi, -997},
		{"policy.go: BestEffort gets 1000",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}), 0, 4 * gi, 1000},
		{"policy.go: Burstable requesting 10% of memory gets 900",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "400Mi"), nil))}), 0, 4000 << 20, 900},
		{"policy.go: Burstable without a memory request is 999, never BestEffort's 1000",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("100m", ""), nil))}), 0, 4 * gi, 999},
		{"policy.go: Burstable requesting all memory is clamped up to 3, above Guaranteed",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "4Gi"), nil))}), 0, 4 * gi, 3},
		{"policy.go: Burstable requesting more than the node is clamped to 3",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "64Gi"), nil))}), 0, 4 * gi, 3},
		{"policy.go: the formula floors 1000*request/capacity before subtracting",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1"), nil))}), 0, 3, 667},
		{"policy.go: each container is scored on its own request",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil)), ctr("b", req(cm("", "2Gi"), nil))}), 1, 4 * gi, 500},
		{"policy.go: a BestEffort container in a Burstable pod scores 999",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil)), ctr("b", bestEffortReq)}), 1, 4 * gi, 999},
		{"policy.go: a Guaranteed container in a Burstable pod is scored as Burstable",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("1", "1Gi"), cm("1", "1Gi"))), ctr("b", bestEffortReq)}), 0, 4 * gi, 750},
		{"policy.go: a sidecar scores no higher than the smallest regular container",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "2Gi"), nil)), ctr("b", req(cm("", "1Gi"), nil))},
				withInit(sidecar("s", req(cm("", "100Mi"), nil)))), -1, 4 * gi, 750},
		{"policy.go: a sidecar with a larger request keeps its own lower score",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil))},
				withInit(sidecar("s", req(cm("", "3Gi"), nil)))), -1, 4 * gi, 250},
		{"policy.go: a plain init container has no sidecar rule",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "2Gi"), nil))},
				withInit(ctr("i", req(cm("", "100Mi"), nil)))), -1, 4 * gi, 976},
		{"policy.go: pod-level memory not claimed by containers is split over all of them",
			// pod requests 3Gi, containers 1Gi + 0: 2Gi unclaimed over 2 containers.
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil)), ctr("b", bestEffortReq)},
				withPodResources(req(cm("", "3Gi"), nil))), 1, 4 * gi, 750},
		{"policy.go: PodLevelResources off ignores pod-level memory",
			gatesOff, pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil)), ctr("b", bestEffortReq)},
				withPodResources(req(cm("", "3Gi"), nil))), 1, 4 * gi, 999},
		{"helpers.go: pod-level memory below the containers' sum adds nothing",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "2Gi"), nil)), ctr("b", req(cm("", "2Gi"), nil))},
				withPodResources(req(cm("", "1Gi"), nil))), 1, 4 * gi, 500},
		{"helpers.go: init containers count in the split and in the sidecar-aware sum",
			// pod 4Gi; aggregate = max(1Gi + 1Gi sidecar, 1Gi sidecar + 3Gi init) = 4Gi: nothing unclaimed.
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil))},
				withInit(sidecar("s", req(cm("", "1Gi"), nil)), ctr("i", req(cm("", "3Gi"), nil))),
				withPodResources(req(cm("", "4Gi"), nil))), 0, 8 * gi, 875},
		{"policy.go: the sidecar floor includes the pod-level share",
			// unclaimed 2Gi over 2 containers; least regular 1Gi+1Gi = 2Gi -> 500; sidecar 0+1Gi -> 750 -> 500.
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil))},
				withInit(sidecar("s", bestEffortReq)), withPodResources(req(cm("", "3Gi"), nil))), -1, 4 * gi, 500},
		{"policy.go: a node-critical pod gets -997 even when BestEffort",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, nodeCritical), 0, 4 * gi, -997},
		{"pod_update.go: system-node-critical by name without a resolved priority is not critical",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withPriority(SystemNodeCritical, nil)), 0, 4 * gi, 1000},
		{"pod_update.go: a static pod of another priority class is not node-critical",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withAnnotation(ConfigSourceAnnotation, "file")), 0, 4 * gi, 1000},
		{"pod_update.go: a static system-node-critical pod is node-critical without a priority",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)},
				withAnnotation(ConfigSourceAnnotation, "file"), withPriority(SystemNodeCritical, nil)), 0, 4 * gi, -997},
		{"pod_update.go: a mirror system-node-critical pod is node-critical",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)},
				withAnnotation(ConfigMirrorAnnotation, "x"), withPriority(SystemNodeCritical, nil)), 0, 4 * gi, -997},
		{"pod_update.go: config.source api is not static",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)},
				withAnnotation(ConfigSourceAnnotation, "api"), withPriority(SystemNodeCritical, nil)), 0, 4 * gi, 1000},
		{"policy.go: the preset status.qosClass decides",
			DefaultConfig(), pod([]corev1.Container{ctr("a", bestEffortReq)}, withStatusClass(corev1.PodQOSGuaranteed)), 0, 4 * gi, -997},
		{"policy.go: an unknown preset class takes the Burstable formula",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil))}, withStatusClass("Platinum")), 0, 4 * gi, 750},
		{"policy.go: a negative request (invalid) is not clamped above 1000",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "-4Gi"), nil))}), 0, 4 * gi, 2000},
		{"nodekit: a zero memory capacity gives Burstable 999 (upstream divides by zero)",
			DefaultConfig(), pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil))}), 0, 0, 999},
		{"nodekit: a sidecar without regular containers keeps its own score (upstream indexes an empty slice)",
			DefaultConfig(), pod(nil, withInit(sidecar("s", req(cm("", "1Gi"), nil)))), -1, 4 * gi, 750},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := containerAt(tc.pod, tc.container)
			if got := tc.cfg.OOMScoreAdj(tc.pod, c, tc.capacity); got != tc.want {
				t.Errorf("Config.OOMScoreAdj = %d, want %d", got, tc.want)
			}
			if tc.cfg.PodLevelResources {
				if got := OOMScoreAdj(tc.pod, c, tc.capacity); got != tc.want {
					t.Errorf("OOMScoreAdj = %d, want %d", got, tc.want)
				}
			}
		})
	}
}

func containerAt(p *corev1.Pod, i int) *corev1.Container {
	if i < 0 {
		return &p.Spec.InitContainers[-i-1]
	}
	return &p.Spec.Containers[i]
}

// pkg/kubelet/types/pod_update.go: IsCriticalPod and IsNodeCriticalPod.
func TestCritical(t *testing.T) {
	for _, tc := range []struct {
		name               string
		pod                *corev1.Pod
		critical, nodeCrit bool
	}{
		{"an ordinary pod", pod(nil), false, false},
		{"a file static pod", pod(nil, withAnnotation(ConfigSourceAnnotation, "file")), true, false},
		{"an http static pod", pod(nil, withAnnotation(ConfigSourceAnnotation, "http")), true, false},
		{"an empty config.source still counts as static", pod(nil, withAnnotation(ConfigSourceAnnotation, "")), true, false},
		{"config.source api is not static", pod(nil, withAnnotation(ConfigSourceAnnotation, "api")), false, false},
		{"a mirror pod", pod(nil, withAnnotation(ConfigMirrorAnnotation, "")), true, false},
		{"priority at the critical threshold", pod(nil, withPriority("system-cluster-critical", ptr(SystemCriticalPriority))), true, false},
		{"priority just below the threshold", pod(nil, withPriority(SystemNodeCritical, ptr(SystemCriticalPriority-1))), false, false},
		{"system-node-critical with its priority", pod(nil, withPriority(SystemNodeCritical, ptr(SystemCriticalPriority+1000))), true, true},
		{"a nil pod", nil, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Critical(tc.pod); got != tc.critical {
				t.Errorf("Critical = %v, want %v", got, tc.critical)
			}
			if got := NodeCritical(tc.pod); got != tc.nodeCrit {
				t.Errorf("NodeCritical = %v, want %v", got, tc.nodeCrit)
			}
		})
	}
}

func TestOOMScoreAdjDoesNotAllocate(t *testing.T) {
	p := pod([]corev1.Container{ctr("a", req(cm("", "1Gi"), nil)), ctr("b", burstableReq)},
		withInit(sidecar("s", req(cm("", "10Mi"), nil))), withPodResources(req(cm("", "3Gi"), nil)))
	for i := range p.Spec.InitContainers {
		c := &p.Spec.InitContainers[i]
		if n := testing.AllocsPerRun(100, func() { _ = OOMScoreAdj(p, c, 8*gi) }); n != 0 {
			t.Errorf("OOMScoreAdj(%s) allocates %v times per call, want 0", c.Name, n)
		}
	}
}
