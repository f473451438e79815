package qos

import "math"

// CPU conversions between Kubernetes millicores and the kernel's CFS
// settings.
//
// Upstream: pkg/kubelet/cm/helpers_linux.go.
const (
	// MinShares and MaxShares bound cgroup v1 cpu.shares (kernel
	// MIN_SHARES and MAX_SHARES, 2 and 1<<18).
	MinShares = 2
	MaxShares = 262144
	// SharesPerCPU is the cpu.shares of one whole CPU.
	SharesPerCPU = 1024
	// MilliCPUToCPU is the number of millicores in one CPU.
	MilliCPUToCPU = 1000
	// QuotaPeriod is the default CFS period in microseconds (100ms).
	QuotaPeriod = 100000
	// MinQuotaPeriod is the smallest CFS quota in microseconds (1ms) that
	// the kernel accepts; smaller quotas are raised to it. (The name is
	// upstream's; it is a minimum quota, not a period.)
	MinQuotaPeriod = 1000
	// MinMilliCPULimit is the smallest cpu limit, in millicores, that is
	// not raised by the 1ms quota floor at the default period.
	MinMilliCPULimit = 10
	// MinWeight and MaxWeight bound cgroup v2 cpu.weight; the kernel's
	// default weight is 100.
	MinWeight = 1
	MaxWeight = 10000
)

// MilliCPUToShares converts millicores to cgroup v1 cpu.shares,
// 1024 per CPU, clamped to [MinShares, MaxShares]. Zero (no request)
// becomes the minimum, 2, not the kernel's default of 1024: a container
// that asked for nothing is weighted as nothing.
//
// Upstream: MilliCPUToShares in pkg/kubelet/cm/helpers_linux.go.
func MilliCPUToShares(milliCPU int64) uint64 {
	if milliCPU == 0 {
		return MinShares
	}
	shares := milliCPU * SharesPerCPU / MilliCPUToCPU
	switch {
	case shares < MinShares:
		return MinShares
	case shares > MaxShares:
		return MaxShares
	}
	return uint64(shares)
}

// MilliCPUToQuota converts a cpu limit in millicores to a CFS quota in
// microseconds per period (microseconds): the share of the period the
// limit allows, at least MinQuotaPeriod (1ms). Zero (no limit) is 0, which
// runtimes read as "no quota".
//
// Upstream: MilliCPUToQuota in pkg/kubelet/cm/helpers_linux.go (the
// CustomCPUCFSQuotaPeriod gate is locked on in v1.37, so the period is used
// as given).
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	return max(milliCPU*period/MilliCPUToCPU, MinQuotaPeriod)
}

// SharesToMilliCPU converts cpu.shares back to millicores, rounding up, so
// that a request survives the round trip: SharesToMilliCPU(MilliCPUToShares(m))
// == m for every m from 2m to 256 CPUs (the kubelet reads a pod's cpu
// request back from its cgroup this way). Shares below the minimum are 0.
//
// Upstream: SharesToMilliCPU in pkg/kubelet/cm/helpers_linux.go, which
// rounds in float64; nodekit rounds in integers and agrees with it over the
// whole kernel range.
func SharesToMilliCPU(shares int64) int64 {
	if shares < MinShares {
		return 0
	}
	// ceil(shares*1000/1024) without float rounding.
	return (shares*MilliCPUToCPU + SharesPerCPU - 1) / SharesPerCPU
}

// QuotaToMilliCPU converts a CFS quota and period back to millicores,
// rounding down. A quota of -1 (unlimited) is 0. Deviation: upstream
// divides by zero when the period is 0; nodekit returns 0.
//
// Upstream: QuotaToMilliCPU in pkg/kubelet/cm/helpers_linux.go.
func QuotaToMilliCPU(quota, period int64) int64 {
	if quota == -1 || period == 0 {
		return 0
	}
	return quota * MilliCPUToCPU / period
}

// SharesToWeightLinear converts cgroup v1 cpu.shares to cgroup v2
// cpu.weight by the kubelet's linear mapping of [2, 262144] onto
// [1, 10000]. The kubelet uses it for the cgroups it writes itself on
// cgroup v2: kubepods, the QoS tiers and each pod. It maps the v1 default
// 1024 to 39, well below the v2 default of 100. Zero (unset) is 0; other
// values below 2 are 1 (upstream never passes them; its arithmetic would
// wrap).
//
// Upstream: getCPUWeight in pkg/kubelet/cm/cgroup_manager_linux.go; runc
// used the same formula before v1.3.2.
func SharesToWeightLinear(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares < MinShares:
		return MinWeight
	case shares >= MaxShares:
		return MaxWeight
	}
	return 1 + (shares-MinShares)*(MaxWeight-1)/(MaxShares-MinShares)
}

// WeightToSharesLinear inverts SharesToWeightLinear, rounding down, as the
// kubelet reads a pod cgroup's cpu.weight back as shares. Zero (unset) is
// 0; weights above 10000 are taken as 10000.
//
// Upstream: cpuWeightToCPUShares in
// pkg/kubelet/cm/cgroup_v2_manager_linux.go.
func WeightToSharesLinear(weight uint64) uint64 {
	if weight == 0 {
		return 0
	}
	weight = min(weight, MaxWeight)
	return (weight-1)*(MaxShares-MinShares)/(MaxWeight-1) + MinShares
}

// SharesToWeightQuadratic converts cgroup v1 cpu.shares to cgroup v2
// cpu.weight the way runc v1.3.2 and later (and crun 1.23 and later) do
// when a runtime hands them a container's cpu shares: a quadratic in
// log2(shares) through (2, 1), (1024, 100) and (262144, 10000), so the v1
// default maps to the v2 default. It disagrees with SharesToWeightLinear
// everywhere between the ends: on a cgroup v2 node with a current runc, a
// pod requesting one CPU gets cpu.weight 39 on its pod cgroup (written by
// the kubelet) and 100 on its container's.
//
// Zero (unset) is 0, values up to 2 are 1, values of 262144 and above are
// 10000.
//
// Upstream: ConvertCPUSharesToCgroupV2Value in
// github.com/opencontainers/cgroups/utils.go (opencontainers/cgroups#20).
func SharesToWeightQuadratic(shares uint64) uint64 {
	switch {
	case shares == 0:
		return 0
	case shares <= MinShares:
		return MinWeight
	case shares >= MaxShares:
		return MaxWeight
	}
	// log10(weight) = (l² + 125 l)/612 - 7/34 with l = log2(shares); the
	// float steps are kept in this order so results match runc's exactly.
	l := math.Log2(float64(shares))
	exponent := (l*l+125*l)/612.0 - 7.0/34.0
	return uint64(math.Ceil(math.Pow(10, exponent)))
}
