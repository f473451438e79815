package staticpod

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validatePod runs the part of the apiserver's pod validation
// (ValidatePodCreate in pkg/apis/core/validation) that decides whether the
// kubelet can run a static pod safely: object metadata, the node name,
// volumes, every container (name, image, pull and termination-message
// policies, ports, env, volume mounts, resources, probes, restart policy),
// host-port conflicts, the pod's restart and DNS policies, deadlines and
// tolerations. It is not all of ValidatePodCreate: security contexts,
// affinity, topology spread, DNS config details, resize policies and
// feature-gated fields are left to the apiserver, which still validates
// the mirror pod; a manifest that passes here but not there runs on the
// node without a mirror pod, and the Mirror reconciler reports the
// apiserver's refusal.
func validatePod(pod *corev1.Pod) field.ErrorList {
	spec := &pod.Spec
	specPath := field.NewPath("spec")
	errs := apivalidation.ValidateObjectMeta(&pod.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))

	if spec.NodeName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(spec.NodeName) {
			errs = append(errs, field.Invalid(specPath.Child("nodeName"), spec.NodeName, msg))
		}
	}
	volumes, vErrs := validateVolumes(spec.Volumes, specPath.Child("volumes"))
	errs = append(errs, vErrs...)

	if len(spec.Containers) == 0 {
		errs = append(errs, field.Required(specPath.Child("containers"), "must have at least one container"))
	}
	names := sets.New[string]()
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		p := specPath.Child("initContainers").Index(i)
		errs = append(errs, validateContainer(c, volumes, names, p)...)
		errs = append(errs, validateContainerRestartPolicy(c, p)...)
		// Only a restartable init container (a sidecar) may have probes
		// and lifecycle hooks.
		restartable := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if !restartable {
			for name, set := range map[string]bool{"lifecycle": c.Lifecycle != nil, "livenessProbe": c.LivenessProbe != nil,
				"readinessProbe": c.ReadinessProbe != nil, "startupProbe": c.StartupProbe != nil} {
				if set {
					errs = append(errs, field.Forbidden(p.Child(name), "may not be set for init containers without restartPolicy=Always"))
				}
			}
		} else {
			errs = append(errs, validateProbes(c, p)...)
		}
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		p := specPath.Child("containers").Index(i)
		errs = append(errs, validateContainer(c, volumes, names, p)...)
		errs = append(errs, validateProbes(c, p)...)
		errs = append(errs, validateContainerRestartPolicy(c, p)...)
	}
	if len(spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	errs = append(errs, hostPortConflicts(spec, specPath)...)

	switch spec.RestartPolicy {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(specPath.Child("restartPolicy"), spec.RestartPolicy, []corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	}
	switch spec.DNSPolicy {
	case corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault:
	case corev1.DNSNone:
		if spec.DNSConfig == nil {
			errs = append(errs, field.Required(specPath.Child("dnsConfig"), "must provide `dnsConfig` when `dnsPolicy` is None"))
		}
	default:
		errs = append(errs, field.NotSupported(specPath.Child("dnsPolicy"), spec.DNSPolicy, []corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}))
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && (*d < 1 || *d > 1<<31-1) {
		errs = append(errs, field.Invalid(specPath.Child("activeDeadlineSeconds"), *d, validation.InclusiveRangeError(1, 1<<31-1)))
	}
	if spec.Hostname != "" {
		for _, msg := range validation.IsDNS1123Label(spec.Hostname) {
			errs = append(errs, field.Invalid(specPath.Child("hostname"), spec.Hostname, msg))
		}
	}
	if spec.Subdomain != "" {
		for _, msg := range validation.IsDNS1123Label(spec.Subdomain) {
			errs = append(errs, field.Invalid(specPath.Child("subdomain"), spec.Subdomain, msg))
		}
	}
	errs = append(errs, metav1validation.ValidateLabels(spec.NodeSelector, specPath.Child("nodeSelector"))...)
	errs = append(errs, validateTolerations(spec.Tolerations, specPath.Child("tolerations"))...)
	return errs
}

// validateVolumes checks names and that each volume has exactly one source,
// and returns the volumes by name for the mounts to refer to.
func validateVolumes(vols []corev1.Volume, path *field.Path) (map[string]bool, field.ErrorList) {
	var errs field.ErrorList
	names := map[string]bool{}
	for i := range vols {
		v := &vols[i]
		p := path.Index(i)
		if v.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1123Label(v.Name) {
				errs = append(errs, field.Invalid(p.Child("name"), v.Name, msg))
			}
			if names[v.Name] {
				errs = append(errs, field.Duplicate(p.Child("name"), v.Name))
			}
			names[v.Name] = true
		}
		if n := countSources(&v.VolumeSource); n > 1 {
			errs = append(errs, field.Forbidden(p, "may not specify more than 1 volume type"))
		}
		if hp := v.HostPath; hp != nil {
			if hp.Path == "" {
				errs = append(errs, field.Required(p.Child("hostPath", "path"), ""))
			}
			if hp.Type != nil {
				switch *hp.Type {
				case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
					corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
				default:
					errs = append(errs, field.NotSupported[corev1.HostPathType](p.Child("hostPath", "type"), *hp.Type, nil))
				}
			}
		}
	}
	return names, errs
}

// countSources counts the set fields of a VolumeSource (all are pointers).
func countSources(s *corev1.VolumeSource) int {
	n := 0
	for _, set := range []bool{
		s.HostPath != nil, s.EmptyDir != nil, s.GCEPersistentDisk != nil, s.AWSElasticBlockStore != nil,
		s.GitRepo != nil, s.Secret != nil, s.NFS != nil, s.ISCSI != nil, s.Glusterfs != nil,
		s.PersistentVolumeClaim != nil, s.RBD != nil, s.FlexVolume != nil, s.Cinder != nil, s.CephFS != nil,
		s.Flocker != nil, s.DownwardAPI != nil, s.FC != nil, s.AzureFile != nil, s.ConfigMap != nil,
		s.VsphereVolume != nil, s.Quobyte != nil, s.AzureDisk != nil, s.PhotonPersistentDisk != nil,
		s.Projected != nil, s.PortworxVolume != nil, s.ScaleIO != nil, s.StorageOS != nil, s.CSI != nil,
		s.Ephemeral != nil, s.Image != nil,
	} {
		if set {
			n++
		}
	}
	return n
}

// hostPortConflicts: no two containers may claim the same host port,
// protocol and address; with host networking a host port is the container
// port.
func hostPortConflicts(spec *corev1.PodSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.HostNetwork {
		for _, list := range []struct {
			name string
			cs   []corev1.Container
		}{{"initContainers", spec.InitContainers}, {"containers", spec.Containers}} {
			for i := range list.cs {
				for j, port := range list.cs[i].Ports {
					if port.HostPort != port.ContainerPort {
						p := path.Child(list.name).Index(i).Child("ports").Index(j)
						errs = append(errs, field.Invalid(p.Child("containerPort"), port.ContainerPort, "must match `hostPort` when `hostNetwork` is true"))
					}
				}
			}
		}
	}
	seen := sets.New[string]()
	for i := range spec.Containers {
		for j, port := range spec.Containers[i].Ports {
			p := path.Child("containers").Index(i).Child("ports").Index(j)
			if port.HostPort == 0 {
				continue
			}
			key := port.HostIP + "/" + string(port.Protocol) + "/" + strconv.Itoa(int(port.HostPort))
			if seen.Has(key) {
				errs = append(errs, field.Duplicate(p.Child("hostPort"), key))
			}
			seen.Insert(key)
		}
	}
	return errs
}

func validateTolerations(ts []corev1.Toleration, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range ts {
		p := path.Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, p.Child("key"))...)
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			if t.Key == "" {
				errs = append(errs, field.Invalid(p.Child("operator"), t.Operator, "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
			}
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				errs = append(errs, field.Invalid(p.Child("value"), t.Value, msg))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(p.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), t.Operator, []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(p.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}))
		}
	}
	return errs
}
