package conformance

import (
	"context"
	"testing"
	"time"
	"unsafe"

	cadvisorapi "github.com/google/cadvisor/lib/model"
	"go.opentelemetry.io/otel/trace/noop"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	critesting "k8s.io/cri-api/pkg/apis/testing"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	"k8s.io/kubernetes/pkg/kubelet/cm"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	containertest "k8s.io/kubernetes/pkg/kubelet/container/testing"
	"k8s.io/kubernetes/pkg/kubelet/kuberuntime"
	"k8s.io/kubernetes/pkg/kubelet/logs"
	proberesults "k8s.io/kubernetes/pkg/kubelet/prober/results"
)

// The kubelet computes a container's cgroup values in an unexported method
// of its runtime manager; there is no exported path to it short of running
// SyncPod. These declarations call the upstream code itself, by symbol
// name: a receiver is the first argument of a method's function.

//go:linkname upstreamGenerateLinuxContainerResources k8s.io/kubernetes/pkg/kubelet/kuberuntime.(*kubeGenericRuntimeManager).generateLinuxContainerResources
func upstreamGenerateLinuxContainerResources(m unsafe.Pointer, ctx context.Context, pod *v1.Pod, container *v1.Container, enforceMemoryQoS bool) *runtimeapi.LinuxContainerResources

//go:linkname upstreamGetCPUWeight k8s.io/kubernetes/pkg/kubelet/cm.getCPUWeight
func upstreamGetCPUWeight(cpuShares *uint64) uint64

//go:linkname upstreamCPUWeightToCPUShares k8s.io/kubernetes/pkg/kubelet/cm.cpuWeightToCPUShares
func upstreamCPUWeightToCPUShares(cpuWeight uint64) uint64

type noPodState struct{}

func (noPodState) IsPodTerminationRequested(kubetypes.UID) bool { return false }
func (noPodState) ShouldPodContentBeRemoved(kubetypes.UID) bool { return false }
func (noPodState) ShouldPodRuntimeBeRemoved(kubetypes.UID) bool { return false }

type noRecorder struct{}

func (noRecorder) RecordImageStartedPulling(kubetypes.UID)              {}
func (noRecorder) RecordImageFinishedPulling(kubetypes.UID)             {}
func (noRecorder) RecordInitContainerStarted(kubetypes.UID, time.Time)  {}
func (noRecorder) RecordInitContainerFinished(kubetypes.UID, time.Time) {}

// upstreamRuntime is a real kubelet runtime manager over fake CRI services,
// built through NewKubeGenericRuntimeManager with the kubelet's settings.
type upstreamRuntime struct {
	m unsafe.Pointer
}

func newUpstreamRuntime(t testing.TB, memoryCapacity uint64, cpuCFSQuota bool, period time.Duration) upstreamRuntime {
	t.Helper()
	return upstreamRuntime{m: kubeRuntimeManager(t, t.TempDir(), t.TempDir(), memoryCapacity, &containertest.FakeRuntimeHelper{}, cpuCFSQuota, period)}
}

// kubeRuntimeManager builds the kubelet's runtime manager
// (NewKubeGenericRuntimeManager) over fake CRI services and returns the
// *kubeGenericRuntimeManager it wraps, for the unexported methods the
// tests call.
func kubeRuntimeManager(t testing.TB, rootDir, podLogsDir string, memoryCapacity uint64, helper kubecontainer.RuntimeHelper, cpuCFSQuota bool, period time.Duration) unsafe.Pointer {
	t.Helper()
	rt, _, err := kuberuntime.NewKubeGenericRuntimeManager(context.Background(),
		&record.FakeRecorder{},
		proberesults.NewManager(), proberesults.NewManager(), proberesults.NewManager(),
		rootDir, podLogsDir,
		&cadvisorapi.MachineInfo{MemoryCapacity: memoryCapacity},
		noPodState{}, 110,
		&containertest.FakeOS{},
		helper,
		nil,
		flowcontrol.NewBackOff(time.Second, time.Minute),
		false, nil, 0, 0, string(kubeletconfig.NeverVerifyPreloadedImages), nil, "", "",
		nil, cpuCFSQuota, metav1.Duration{Duration: period}, nil,
		critesting.NewFakeRuntimeService(), critesting.NewFakeImageService(),
		cm.NewStubContainerManager(), logs.NewStubContainerLogManager(), nil,
		false, "", func() v1.ResourceList { return nil }, nil,
		kubeletconfig.NoneMemoryReservationPolicy,
		noRecorder{}, noop.NewTracerProvider(), nil, nil, noRecorder{},
	)
	if err != nil {
		t.Fatalf("NewKubeGenericRuntimeManager: %v", err)
	}
	// rt is an interface holding a *kubeGenericRuntimeManager: its data word.
	type iface struct{ typ, data unsafe.Pointer }
	return (*iface)(unsafe.Pointer(&rt)).data
}

func (u upstreamRuntime) containerResources(pod *v1.Pod, c *v1.Container) *runtimeapi.LinuxContainerResources {
	return upstreamGenerateLinuxContainerResources(u.m, context.Background(), pod, c, false)
}
