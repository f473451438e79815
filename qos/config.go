package qos

import "time"

// CgroupDriver is the kubelet's --cgroup-driver: how cgroup names are
// spelled on the host.
type CgroupDriver string

const (
	// Cgroupfs names cgroups as plain paths: /kubepods/burstable/pod<uid>.
	Cgroupfs CgroupDriver = "cgroupfs"
	// Systemd names cgroups as nested slices:
	// /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice,
	// with the dashes of each name component turned into underscores.
	Systemd CgroupDriver = "systemd"
)

// DefaultCPUCFSQuotaPeriod is the kubelet's default --cpu-cfs-quota-period.
const DefaultCPUCFSQuotaPeriod = 100 * time.Millisecond

// Config is what the kubelet knows besides the pod: the feature gates that
// change the answers and the node settings that shape cgroup values.
// DefaultConfig returns the settings of a Kubernetes v1.37 kubelet with its
// default flags; the package-level functions use it. A zero Config is not the
// default: it turns the gates off and CFS quota off. Start from DefaultConfig
// and change fields.
//
// Config is a small value; its methods do not retain it and are safe for
// concurrent use.
type Config struct {
	// PodLevelResources is the PodLevelResources feature gate (beta, on by
	// default since v1.34). With it, a pod's spec.resources decides the QoS
	// class, joins the OOM score formula, bounds containers without limits
	// and sizes the pod cgroup.
	PodLevelResources bool
	// PodLevelResourcesFixKubeletQOSClass is the feature gate of that name
	// (beta, on by default in v1.37). With it, spec.resources decides the
	// class only when it sets cpu, memory or a hugepages resource; without
	// it any non-nil spec.resources decides it, so `resources: {}` makes a
	// pod BestEffort.
	PodLevelResourcesFixKubeletQOSClass bool

	// CPUCFSQuota is --cpu-cfs-quota (default true): CPU limits become CFS
	// quotas. When false, containers get no quota and pod cgroups get -1
	// (unlimited).
	CPUCFSQuota bool
	// CPUCFSQuotaPeriod is --cpu-cfs-quota-period (default 100ms), the CFS
	// period of every quota. Zero means the default.
	CPUCFSQuotaPeriod time.Duration
	// PodPidsLimit is --pod-max-pids (default -1: no limit). A positive value
	// becomes the pids limit of every pod cgroup.
	PodPidsLimit int64
	// HugePageSizes are the machine's huge page sizes in the cgroup
	// spelling, "2MB", "1GB" (from /sys/kernel/mm/hugepages), in the order
	// the kubelet would read them. Every listed size not requested is
	// limited to 0. Empty (the default) stands for a machine without the
	// hugetlb controller: no hugepage limits are produced.
	HugePageSizes []string

	// CgroupDriver is --cgroup-driver (default Cgroupfs; empty means
	// Cgroupfs).
	CgroupDriver CgroupDriver
	// CgroupRoot is --cgroup-root in cgroupfs form (default "/"; empty
	// means "/").
	CgroupRoot string
	// CgroupsPerQOS is --cgroups-per-qos (default true): pods live under
	// kubepods/<class>/pod<uid>. When false the kubelet gives runtimes no
	// cgroup parent.
	CgroupsPerQOS bool
}

// DefaultConfig returns the configuration of a v1.37 kubelet with default
// flags and feature gates.
func DefaultConfig() Config {
	return Config{
		PodLevelResources:                   true,
		PodLevelResourcesFixKubeletQOSClass: true,
		CPUCFSQuota:                         true,
		CPUCFSQuotaPeriod:                   DefaultCPUCFSQuotaPeriod,
		PodPidsLimit:                        -1,
		CgroupDriver:                        Cgroupfs,
		CgroupRoot:                          "/",
		CgroupsPerQOS:                       true,
	}
}

// periodMicros is the CFS period in microseconds, as the kubelet converts
// its duration flag.
func (c Config) periodMicros() int64 {
	d := c.CPUCFSQuotaPeriod
	if d == 0 {
		d = DefaultCPUCFSQuotaPeriod
	}
	return int64(d / time.Microsecond)
}
