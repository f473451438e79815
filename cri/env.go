package cri

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// EnvSource gives the kubelet's view of ConfigMaps and Secrets, for env
// values that reference them. A missing object must be reported with an
// error for which apierrors.IsNotFound or errors.Is(err, ErrNotFound) holds,
// so optional references can be skipped.
type EnvSource interface {
	ConfigMap(namespace, name string) (*corev1.ConfigMap, error)
	Secret(namespace, name string) (*corev1.Secret, error)
}

// Env returns the container's environment as the kubelet builds it
// (makeEnvironmentVariables in pkg/kubelet/kubelet_pods.go):
//
//  1. envFrom sources in order, each key (with its prefix) set from the
//     ConfigMap or Secret; later sources override earlier ones;
//  2. env entries in order: a value has its $(VAR) references expanded
//     against the variables so far and in.ServiceEnv; a valueFrom is
//     resolved (pod fields, container resources, ConfigMap and Secret
//     keys); optional references to missing objects or keys are skipped;
//  3. the service variables not defined above.
//
// The kubelet returns the variables in random order (it goes through a map);
// Env returns them in order of first definition, then the remaining service
// variables sorted. A pod without spec.enableServiceLinks (the apiserver
// defaults it to true) is an error, as in the kubelet.
func (c *Config) Env(pod *corev1.Pod, ctr *corev1.Container, in *ContainerInput) ([]*runtimeapi.KeyValue, error) {
	if pod.Spec.EnableServiceLinks == nil {
		return nil, errors.New("cri: nil pod.spec.enableServiceLinks encountered, cannot construct envvars")
	}
	env := orderedEnv{values: map[string]string{}}
	configMaps := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}

	for _, from := range ctr.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, skip, err := c.configMap(pod.Namespace, from.ConfigMapRef.Name, from.ConfigMapRef.Optional, configMaps)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
			for _, k := range sortedKeys(cm.Data) {
				env.set(from.Prefix+k, cm.Data[k])
			}
		case from.SecretRef != nil:
			s, skip, err := c.secret(pod.Namespace, from.SecretRef.Name, from.SecretRef.Optional, secrets)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
			for _, k := range sortedKeys(s.Data) {
				env.set(from.Prefix+k, string(s.Data[k]))
			}
		}
	}

	lookup := lookupIn(env.values, in.ServiceEnv)
	for _, e := range ctr.Env {
		v := e.Value
		switch {
		case v != "":
			v = Expand(v, lookup)
		case e.ValueFrom != nil:
			var skip bool
			var err error
			v, skip, err = c.envValueFrom(pod, ctr, in, e.ValueFrom, configMaps, secrets)
			if err != nil {
				return nil, err
			}
			if skip {
				continue
			}
		}
		env.set(e.Name, v)
	}

	out := make([]*runtimeapi.KeyValue, 0, len(env.order)+len(in.ServiceEnv))
	for _, k := range env.order {
		out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(env.values[k])})
	}
	for _, k := range sortedKeys(in.ServiceEnv) {
		if _, ok := env.values[k]; !ok {
			out = append(out, &runtimeapi.KeyValue{Key: k, Value: []byte(in.ServiceEnv[k])})
		}
	}
	return out, nil
}

type orderedEnv struct {
	order  []string
	values map[string]string
}

func (e *orderedEnv) set(k, v string) {
	if _, ok := e.values[k]; !ok {
		e.order = append(e.order, k)
	}
	e.values[k] = v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) || errors.Is(err, ErrNotFound) }

func (c *Config) configMap(ns, name string, optional *bool, cache map[string]*corev1.ConfigMap) (cm *corev1.ConfigMap, skip bool, err error) {
	if cm, ok := cache[name]; ok {
		return cm, false, nil
	}
	if c.EnvSource == nil {
		return nil, false, fmt.Errorf("cri: couldn't get configMap %s/%s, no EnvSource defined", ns, name)
	}
	cm, err = c.EnvSource.ConfigMap(ns, name)
	if err != nil {
		if isNotFound(err) && optional != nil && *optional {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("cri: configMap %s/%s: %w", ns, name, err)
	}
	cache[name] = cm
	return cm, false, nil
}

func (c *Config) secret(ns, name string, optional *bool, cache map[string]*corev1.Secret) (s *corev1.Secret, skip bool, err error) {
	if s, ok := cache[name]; ok {
		return s, false, nil
	}
	if c.EnvSource == nil {
		return nil, false, fmt.Errorf("cri: couldn't get secret %s/%s, no EnvSource defined", ns, name)
	}
	s, err = c.EnvSource.Secret(ns, name)
	if err != nil {
		if isNotFound(err) && optional != nil && *optional {
			return nil, true, nil
		}
		return nil, false, fmt.Errorf("cri: secret %s/%s: %w", ns, name, err)
	}
	cache[name] = s
	return s, false, nil
}

func (c *Config) envValueFrom(pod *corev1.Pod, ctr *corev1.Container, in *ContainerInput, from *corev1.EnvVarSource,
	configMaps map[string]*corev1.ConfigMap, secrets map[string]*corev1.Secret) (string, bool, error) {
	switch {
	case from.FieldRef != nil:
		v, err := podFieldValue(pod, from.FieldRef, in)
		return v, false, err
	case from.ResourceFieldRef != nil:
		v, err := c.resourceFieldValue(pod, ctr, from.ResourceFieldRef)
		return v, false, err
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, skip, err := c.configMap(pod.Namespace, ref.Name, ref.Optional, configMaps)
		if err != nil || skip {
			return "", skip, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok {
			if ref.Optional != nil && *ref.Optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("cri: couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, false, nil
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, skip, err := c.secret(pod.Namespace, ref.Name, ref.Optional, secrets)
		if err != nil || skip {
			return "", skip, err
		}
		v, ok := s.Data[ref.Key]
		if !ok {
			if ref.Optional != nil && *ref.Optional {
				return "", true, nil
			}
			return "", false, fmt.Errorf("cri: couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), false, nil
	case from.FileKeyRef != nil:
		return "", false, fmt.Errorf("cri: env from fileKeyRef (volume %q) needs the mounted volume; resolve it before translation", from.FileKeyRef.VolumeName)
	}
	return "", false, nil
}

// podFieldValue resolves a downward API field reference
// (podFieldSelectorRuntimeValue in kubelet_pods.go, ExtractFieldPathAsString
// in pkg/fieldpath).
func podFieldValue(pod *corev1.Pod, ref *corev1.ObjectFieldSelector, in *ContainerInput) (string, error) {
	if ref.APIVersion != "v1" {
		return "", fmt.Errorf("cri: unsupported pod version: %s", ref.APIVersion)
	}
	path := ref.FieldPath
	if p, sub, ok := splitSubscript(path); ok {
		switch p {
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(sub)); len(errs) != 0 {
				return "", fmt.Errorf("cri: invalid key subscript in %s: %s", path, strings.Join(errs, ";"))
			}
			return pod.Annotations[sub], nil
		case "metadata.labels":
			if errs := validation.IsQualifiedName(sub); len(errs) != 0 {
				return "", fmt.Errorf("cri: invalid key subscript in %s: %s", path, strings.Join(errs, ";"))
			}
			return pod.Labels[sub], nil
		}
		return "", fmt.Errorf("cri: field label does not support subscript: %s", path)
	}
	switch path {
	case "spec.nodeName", "spec.host":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		if len(in.HostIPs) == 0 {
			return "", errors.New("cri: status.hostIP: ContainerInput.HostIPs is empty")
		}
		if path == "status.hostIP" {
			return in.HostIPs[0], nil
		}
		return strings.Join(in.HostIPs, ","), nil
	case "status.podIP":
		if len(in.PodIPs) > 0 {
			return in.PodIPs[0], nil
		}
		return "", nil
	case "status.podIPs":
		return strings.Join(in.PodIPs, ","), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.restartPolicy", "spec.schedulerName", "status.phase":
		// accepted by the apiserver, but the kubelet cannot extract them
		return "", fmt.Errorf("cri: unsupported fieldPath: %v", path)
	}
	return "", fmt.Errorf("cri: field label not supported: %s", path)
}

// splitSubscript splits "metadata.labels['key']" (SplitMaybeSubscriptedPath).
func splitSubscript(path string) (string, string, bool) {
	s, ok := strings.CutSuffix(path, "']")
	if !ok {
		return path, "", false
	}
	p, sub, ok := strings.Cut(s, "['")
	if !ok || p == "" {
		return path, "", false
	}
	return p, sub, true
}

// formatMap is the downward API's "key=\"value\"" lines, sorted.
func formatMap(m map[string]string) string {
	var b []byte
	for _, k := range sortedKeys(m) {
		if len(b) > 0 {
			b = append(b, '\n')
		}
		b = append(b, k...)
		b = append(b, '=')
		b = strconv.AppendQuote(b, m[k])
	}
	return string(b)
}

// resourceFieldValue resolves a container resource reference with limits
// defaulted to the pod-level limits or the node's allocatable
// (defaultPodLimitsForDownwardAPI in kubelet_resources.go,
// ExtractContainerResourceValue in pkg/api/v1/resource).
func (c *Config) resourceFieldValue(pod *corev1.Pod, ctr *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	alloc := c.NodeAllocatable
	if c.QOS.PodLevelResources && pod.Spec.Resources != nil && podLevelLimitsSet(pod.Spec.Resources) {
		alloc = alloc.DeepCopy()
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if v, ok := pod.Spec.Resources.Limits[name]; ok && !v.IsZero() {
				if _, ok := alloc[name]; ok {
					alloc[name] = v.DeepCopy()
				}
			}
		}
	}
	target := ctr
	if ref.ContainerName != "" {
		// As upstream, a named regular container gets defaulted limits, a
		// named init container does not.
		target = nil
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == ref.ContainerName {
				target = &pod.Spec.Containers[i]
				break
			}
		}
		if target == nil {
			for i := range pod.Spec.InitContainers {
				if pod.Spec.InitContainers[i].Name == ref.ContainerName {
					return containerResourceValue(ref, &pod.Spec.InitContainers[i].Resources)
				}
			}
			return "", fmt.Errorf("cri: container %s not found", ref.ContainerName)
		}
	}
	res := target.Resources.DeepCopy()
	if res.Limits == nil {
		res.Limits = corev1.ResourceList{}
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := res.Limits[name]; !ok || q.IsZero() {
			if cap, ok := alloc[name]; ok {
				res.Limits[name] = cap.DeepCopy()
			}
		}
	}
	return containerResourceValue(ref, res)
}

func podLevelLimitsSet(r *corev1.ResourceRequirements) bool {
	for name := range r.Limits {
		if supportedPodLevel(name) {
			return true
		}
	}
	return false
}

func containerResourceValue(ref *corev1.ResourceFieldSelector, res *corev1.ResourceRequirements) (string, error) {
	divisor := ref.Divisor
	if divisor.Cmp(resource.Quantity{}) == 0 {
		divisor = resource.MustParse("1")
	}
	list, name, ok := res.Limits, "", false
	if name, ok = strings.CutPrefix(ref.Resource, "limits."); !ok {
		list = res.Requests
		if name, ok = strings.CutPrefix(ref.Resource, "requests."); !ok {
			return "", fmt.Errorf("cri: unsupported container resource : %v", ref.Resource)
		}
	}
	q := list[corev1.ResourceName(name)]
	switch {
	case name == "cpu":
		return ceilDiv(float64(q.MilliValue()), float64(divisor.MilliValue())), nil
	case name == "memory", name == "ephemeral-storage", strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
		return ceilDiv(float64(q.Value()), float64(divisor.Value())), nil
	}
	return "", fmt.Errorf("cri: unsupported container resource : %v", ref.Resource)
}

// ceilDiv is upstream's float ceiling, overflow behaviour included.
func ceilDiv(a, b float64) string { return strconv.FormatInt(int64(math.Ceil(a/b)), 10) }
