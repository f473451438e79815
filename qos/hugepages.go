package qos

import (
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// hugePageSize is the page size of a hugepages-<size> resource in the
// cgroup spelling ("2MB"); ok is false for other resources and for sizes
// that do not parse or have no such spelling.
//
// Upstream: HugePageSizeFromResourceName and HugePageUnitSizeFromByteSize
// in pkg/apis/core/v1/helper/helpers.go.
func hugePageSize(name corev1.ResourceName) (bytes int64, unit string, ok bool) {
	s, found := strings.CutPrefix(string(name), corev1.ResourceHugePagesPrefix)
	if !found {
		return 0, "", false
	}
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, "", false
	}
	bytes = q.Value()
	unit, ok = hugePageUnit(bytes)
	return bytes, unit, ok
}

// hugePageUnit spells a page size the way cgroup hugetlb files do: the
// largest binary unit that divides it, "2MB" for 2Mi, "1GB" for 1Gi. A size
// that is not a whole number of some unit is refused, except that a
// remainder of at most 1024 in the last unit reached is kept ("1000KB").
// Zero, which every unit divides, becomes "0PB", as upstream spells it.
func hugePageUnit(size int64) (string, bool) {
	const units = "BKMGTP"
	i := 0
	for size%1024 == 0 && i < len(units)-1 {
		size /= 1024
		i++
	}
	if size > 1024 && i < len(units)-1 {
		return "", false
	}
	if i == 0 {
		return strconv.FormatInt(size, 10) + "B", true
	}
	return strconv.FormatInt(size, 10) + units[i:i+1] + "B", true
}
