package staticpod

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// apiReference reports the first kind of API object the pod references, in
// upstream's order and words, or "" when it references none. Static pods
// run before, and without, the apiserver, and a node must not be able to
// reach objects through a pod it made up itself, so since v1.34 the kubelet
// refuses them (HasAPIObjectReference in pkg/api/pod/util.go).
//
// An error means a volume (or projected source) of a type this version does
// not know, which upstream also refuses.
func apiReference(pod *corev1.Pod) (string, error) {
	spec := &pod.Spec
	if spec.ServiceAccountName != "" {
		return "serviceaccounts", nil
	}
	if referencesSecret(spec) {
		return "secrets", nil
	}
	if referencesConfigMap(spec) {
		return "configmaps", nil
	}
	if len(spec.ResourceClaims) > 0 {
		return "resourceclaims", nil
	}
	for i := range spec.Volumes {
		v := &spec.Volumes[i]
		switch {
		case v.AWSElasticBlockStore != nil, v.AzureDisk != nil, v.CephFS != nil, v.Cinder != nil,
			v.DownwardAPI != nil, v.EmptyDir != nil, v.FC != nil, v.FlexVolume != nil, v.Flocker != nil,
			v.GCEPersistentDisk != nil, v.GitRepo != nil, v.HostPath != nil, v.Image != nil, v.ISCSI != nil,
			v.NFS != nil, v.PhotonPersistentDisk != nil, v.PortworxVolume != nil, v.Quobyte != nil,
			v.RBD != nil, v.ScaleIO != nil, v.StorageOS != nil, v.VsphereVolume != nil:
			continue
		case v.ConfigMap != nil:
			return "configmaps (via configmap volumes)", nil
		case v.Secret != nil:
			return "secrets (via secret volumes)", nil
		case v.CSI != nil:
			return "csidrivers (via CSI volumes)", nil
		case v.Glusterfs != nil:
			return "endpoints (via glusterFS volumes)", nil
		case v.PersistentVolumeClaim != nil:
			return "persistentvolumeclaims", nil
		case v.Ephemeral != nil:
			return "persistentvolumeclaims (via ephemeral volumes)", nil
		case v.AzureFile != nil:
			return "secrets (via azureFile volumes)", nil
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				switch {
				case s.ConfigMap != nil:
					return "configmaps (via projected volumes)", nil
				case s.Secret != nil:
					return "secrets (via projected volumes)", nil
				case s.ServiceAccountToken != nil:
					return "serviceaccounts (via projected volumes)", nil
				case s.ClusterTrustBundle != nil:
					return "clustertrustbundles", nil
				case s.PodCertificate != nil:
					return "podcertificates", nil
				case s.DownwardAPI != nil:
					continue
				default:
					return "", fmt.Errorf("unknown source for projected volume %q", v.Name)
				}
			}
		default:
			return "", fmt.Errorf("unknown volume type for volume %q", v.Name)
		}
	}
	return "", nil
}

// allContainers calls f for every init, regular and ephemeral container.
func allContainers(spec *corev1.PodSpec, f func(*corev1.Container)) {
	for i := range spec.InitContainers {
		f(&spec.InitContainers[i])
	}
	for i := range spec.Containers {
		f(&spec.Containers[i])
	}
	for i := range spec.EphemeralContainers {
		f((*corev1.Container)(&spec.EphemeralContainers[i].EphemeralContainerCommon))
	}
}

// referencesSecret is VisitPodSecretNames finding any non-empty name.
func referencesSecret(spec *corev1.PodSpec) bool {
	for _, r := range spec.ImagePullSecrets {
		if r.Name != "" {
			return true
		}
	}
	found := false
	allContainers(spec, func(c *corev1.Container) {
		for _, e := range c.EnvFrom {
			found = found || (e.SecretRef != nil && e.SecretRef.Name != "")
		}
		for _, e := range c.Env {
			found = found || (e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != "")
		}
	})
	if found {
		return true
	}
	named := func(r *corev1.LocalObjectReference) bool { return r != nil && r.Name != "" }
	for i := range spec.Volumes {
		s := &spec.Volumes[i].VolumeSource
		// One case per volume, in upstream's order.
		switch {
		case s.AzureFile != nil:
			found = s.AzureFile.SecretName != ""
		case s.CephFS != nil:
			found = named(s.CephFS.SecretRef)
		case s.Cinder != nil:
			found = named(s.Cinder.SecretRef)
		case s.FlexVolume != nil:
			found = named(s.FlexVolume.SecretRef)
		case s.Projected != nil:
			for _, p := range s.Projected.Sources {
				found = found || (p.Secret != nil && p.Secret.Name != "")
			}
		case s.RBD != nil:
			found = named(s.RBD.SecretRef)
		case s.Secret != nil:
			found = s.Secret.SecretName != ""
		case s.ScaleIO != nil:
			found = named(s.ScaleIO.SecretRef)
		case s.ISCSI != nil:
			found = named(s.ISCSI.SecretRef)
		case s.StorageOS != nil:
			found = named(s.StorageOS.SecretRef)
		case s.CSI != nil:
			found = named(s.CSI.NodePublishSecretRef)
		}
		if found {
			return true
		}
	}
	return false
}

// referencesConfigMap is VisitPodConfigmapNames finding any non-empty name.
func referencesConfigMap(spec *corev1.PodSpec) bool {
	found := false
	allContainers(spec, func(c *corev1.Container) {
		for _, e := range c.EnvFrom {
			found = found || (e.ConfigMapRef != nil && e.ConfigMapRef.Name != "")
		}
		for _, e := range c.Env {
			found = found || (e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil && e.ValueFrom.ConfigMapKeyRef.Name != "")
		}
	})
	if found {
		return true
	}
	for i := range spec.Volumes {
		s := &spec.Volumes[i].VolumeSource
		switch {
		case s.Projected != nil:
			for _, p := range s.Projected.Sources {
				if p.ConfigMap != nil && p.ConfigMap.Name != "" {
					return true
				}
			}
		case s.ConfigMap != nil:
			if s.ConfigMap.Name != "" {
				return true
			}
		}
	}
	return false
}
