package qos

import "testing"

// pkg/kubelet/cm/helpers_linux.go: MilliCPUToShares.
func TestMilliCPUToShares(t *testing.T) {
	for _, tc := range []struct {
		name  string
		milli int64
		want  uint64
	}{
		{"zero is the minimum 2, not the kernel default", 0, 2},
		{"1m rounds down below the minimum", 1, 2},
		{"negative (invalid) is the minimum", -1000, 2},
		{"2m is 2", 2, 2},
		{"3m is 3", 3, 3},
		{"100m is 102", 100, 102},
		{"one CPU is 1024", 1000, 1024},
		{"1.5 CPU is 1536", 1500, 1536},
		{"256 CPUs is the maximum", 256000, 262144},
		{"beyond 256 CPUs is clamped to the maximum", 1000000, 262144},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MilliCPUToShares(tc.milli); got != tc.want {
				t.Errorf("MilliCPUToShares(%d) = %d, want %d", tc.milli, got, tc.want)
			}
		})
	}
}

// pkg/kubelet/cm/helpers_linux.go: MilliCPUToQuota.
func TestMilliCPUToQuota(t *testing.T) {
	for _, tc := range []struct {
		name          string
		milli, period int64
		want          int64
	}{
		{"no limit is no quota", 0, QuotaPeriod, 0},
		{"1m is raised to the 1ms floor", 1, QuotaPeriod, 1000},
		{"10m is exactly the floor at 100ms", 10, QuotaPeriod, 1000},
		{"5m is raised to the floor", 5, QuotaPeriod, 1000},
		{"11m at 100ms is 1100us", 11, QuotaPeriod, 1100},
		{"200m at 100ms is 20ms", 200, QuotaPeriod, 20000},
		{"one CPU is the whole period", 1000, QuotaPeriod, 100000},
		{"2.5 CPUs at a custom 50ms period", 2500, 50000, 125000},
		{"a negative limit (invalid) is raised to the floor", -1, QuotaPeriod, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MilliCPUToQuota(tc.milli, tc.period); got != tc.want {
				t.Errorf("MilliCPUToQuota(%d, %d) = %d, want %d", tc.milli, tc.period, got, tc.want)
			}
		})
	}
}

// pkg/kubelet/cm/helpers_linux.go: SharesToMilliCPU and QuotaToMilliCPU.
func TestBackToMilliCPU(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want int64
	}{
		{"shares below 2 are 0", SharesToMilliCPU(1), 0},
		{"2 shares round up to 2m", SharesToMilliCPU(2), 2},
		{"102 shares round up to 100m", SharesToMilliCPU(102), 100},
		{"1024 shares are one CPU", SharesToMilliCPU(1024), 1000},
		{"1025 shares round up to 1001m", SharesToMilliCPU(1025), 1001},
		{"a quota of -1 (unlimited) is 0", QuotaToMilliCPU(-1, QuotaPeriod), 0},
		{"20ms per 100ms is 200m", QuotaToMilliCPU(20000, QuotaPeriod), 200},
		{"quota rounds down", QuotaToMilliCPU(1099, QuotaPeriod), 10},
		{"nodekit: a zero period is 0 (upstream divides by zero)", QuotaToMilliCPU(1000, 0), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %d, want %d", tc.got, tc.want)
			}
		})
	}
}

// The kubelet reads a pod's cpu request back from its cgroup's shares
// (CPURequestsFromConfig in pkg/kubelet/cm/helpers_linux.go): every request
// the shares range can hold survives the round trip.
func TestMilliCPURoundTrip(t *testing.T) {
	for m := int64(MinShares); m <= MaxShares*MilliCPUToCPU/SharesPerCPU; m++ {
		if got := SharesToMilliCPU(int64(MilliCPUToShares(m))); got != m {
			t.Fatalf("SharesToMilliCPU(MilliCPUToShares(%d)) = %d", m, got)
		}
	}
}

// pkg/kubelet/cm/cgroup_manager_linux.go getCPUWeight and
// cgroup_v2_manager_linux.go cpuWeightToCPUShares (linear);
// github.com/opencontainers/cgroups utils.go ConvertCPUSharesToCgroupV2Value
// (quadratic).
func TestWeights(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"linear: 0 is unset", SharesToWeightLinear(0), 0},
		{"linear: the minimum 2 is 1", SharesToWeightLinear(2), 1},
		{"linear: the v1 default 1024 is only 39", SharesToWeightLinear(1024), 39},
		{"linear: 2000 shares are 77 (runc v1.3.1, opencontainers/runc#4896)", SharesToWeightLinear(2000), 77},
		{"linear: the maximum is 10000", SharesToWeightLinear(262144), 10000},
		{"linear: beyond the maximum is 10000", SharesToWeightLinear(1 << 30), 10000},
		{"linear: nodekit: 1 (never passed upstream) is 1", SharesToWeightLinear(1), 1},
		{"linear inverse: 39 reads back as 998 shares", WeightToSharesLinear(39), 998},
		{"linear inverse: 1 is 2", WeightToSharesLinear(1), 2},
		{"linear inverse: 10000 is 262144", WeightToSharesLinear(10000), 262144},
		{"linear inverse: 0 is unset", WeightToSharesLinear(0), 0},
		{"quadratic: 0 is unset", SharesToWeightQuadratic(0), 0},
		{"quadratic: 1 is 1", SharesToWeightQuadratic(1), 1},
		{"quadratic: the minimum 2 is 1", SharesToWeightQuadratic(2), 1},
		{"quadratic: the v1 default 1024 is the v2 default 100", SharesToWeightQuadratic(1024), 100},
		{"quadratic: 2000 shares are 170 (runc v1.4.0-rc.1, opencontainers/runc#4896)", SharesToWeightQuadratic(2000), 170},
		{"quadratic: the maximum is 10000", SharesToWeightQuadratic(262144), 10000},
		{"quadratic: beyond the maximum is 10000", SharesToWeightQuadratic(1 << 40), 10000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %d, want %d", tc.got, tc.want)
			}
		})
	}
}

// Both mappings are monotonic and stay in [MinWeight, MaxWeight] over the
// whole shares range.
func TestWeightsMonotonic(t *testing.T) {
	var lin, quad uint64
	for s := uint64(MinShares); s <= MaxShares; s++ {
		l, q := SharesToWeightLinear(s), SharesToWeightQuadratic(s)
		if l < lin || q < quad || l < MinWeight || q < MinWeight || l > MaxWeight || q > MaxWeight {
			t.Fatalf("shares %d: linear %d (prev %d), quadratic %d (prev %d)", s, l, lin, q, quad)
		}
		lin, quad = l, q
	}
}
