package conformance

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"sigs.k8s.io/yaml"
)

// spGen makes random static pod manifests for the differential
// tests: mostly valid pods touching the fields the kubelet defaults,
// hashes and validates, plus one mutation in about half of them that a
// kubelet must reject (or, for the quirks, accept with a report).
type spGen struct {
	r *rand.Rand
}

type spManifest struct {
	data []byte
	desc string // what the generator did, for failure messages
}

func newSPGen(seed uint64) *spGen {
	return &spGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (g *spGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }
func (g *spGen) chance(p float64) bool    { return g.r.Float64() < p }

func (g *spGen) container(name string, init bool) map[string]any {
	c := map[string]any{
		"name":  name,
		"image": g.pick("busybox", "busybox:latest", "registry.k8s.io/pause:3.10", "nginx@sha256:"+strings.Repeat("a", 64), "Busybox", "localhost:5000/x/y:1"),
	}
	if g.chance(0.3) {
		c["imagePullPolicy"] = g.pick("Always", "IfNotPresent", "Never")
	}
	if g.chance(0.3) {
		c["command"] = []any{"sh", "-c", "sleep 1d"}
	}
	if g.chance(0.2) {
		c["args"] = []any{}
	}
	if g.chance(0.4) {
		port := map[string]any{"containerPort": 1 + g.r.IntN(9000)}
		if g.chance(0.3) {
			port["protocol"] = g.pick("TCP", "UDP", "SCTP")
		}
		if g.chance(0.3) {
			port["name"] = g.pick("http", "metrics", "grpc")
		}
		if g.chance(0.2) {
			port["hostPort"] = port["containerPort"]
		}
		c["ports"] = []any{port}
	}
	if g.chance(0.4) {
		res := map[string]any{}
		q := func() string { return g.pick("100m", "1", "0.5", "1000m", "128Mi", "1Gi", "0.1m") }
		if g.chance(0.7) {
			res["limits"] = map[string]any{"cpu": q(), "memory": g.pick("64Mi", "1Gi", "100M")}
		}
		if g.chance(0.5) {
			res["requests"] = map[string]any{"cpu": g.pick("50m", "100m", "0.05")}
		}
		c["resources"] = res
	}
	if g.chance(0.3) {
		c["env"] = []any{map[string]any{"name": "A", "value": "b"},
			map[string]any{"name": "NODE", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "spec.nodeName"}}}}
	}
	if !init && g.chance(0.3) {
		probe := map[string]any{}
		switch g.r.IntN(3) {
		case 0:
			probe["httpGet"] = map[string]any{"port": 8080}
		case 1:
			probe["tcpSocket"] = map[string]any{"port": "http"}
		default:
			probe["exec"] = map[string]any{"command": []any{"true"}}
		}
		if g.chance(0.3) {
			probe["periodSeconds"] = 5
		}
		c[g.pick("livenessProbe", "readinessProbe", "startupProbe")] = probe
	}
	if g.chance(0.2) {
		c["volumeMounts"] = []any{map[string]any{"name": "data", "mountPath": "/data"}}
	}
	if g.chance(0.1) {
		c["lifecycle"] = map[string]any{"preStop": map[string]any{"httpGet": map[string]any{"port": 80}}}
	}
	return c
}

// pod returns a manifest as a map, and whether it has a volume named data.
func (g *spGen) pod(name string) map[string]any {
	meta := map[string]any{"name": name}
	if g.chance(0.4) {
		meta["namespace"] = g.pick("default", "kube-system", "team-a")
	}
	if g.chance(0.3) {
		meta["labels"] = map[string]any{"tier": "control-plane", "component": name}
	}
	if g.chance(0.3) {
		ann := map[string]any{"example.com/owner": "me"}
		if g.chance(0.3) {
			ann["kubernetes.io/config.hash"] = "user-hash"
		}
		if g.chance(0.3) {
			ann["kubernetes.io/config.source"] = "user"
		}
		meta["annotations"] = ann
	}
	spec := map[string]any{}
	var containers []any
	for i := range 1 + g.r.IntN(3) {
		containers = append(containers, g.container(fmt.Sprintf("c%d", i), false))
	}
	spec["containers"] = containers
	if g.chance(0.2) {
		ic := g.container("init", true)
		if g.chance(0.5) {
			ic["restartPolicy"] = "Always"
		}
		spec["initContainers"] = []any{ic}
	}
	vols := []any{map[string]any{"name": "data", "emptyDir": map[string]any{}}}
	if g.chance(0.4) {
		vols = append(vols, map[string]any{"name": "certs", "hostPath": map[string]any{"path": "/etc/kubernetes/pki", "type": g.pick("DirectoryOrCreate", "Directory", "")}})
	}
	if g.chance(0.2) {
		vols = append(vols, map[string]any{"name": "nosource"})
	}
	if g.chance(0.2) {
		vols = append(vols, map[string]any{"name": "podinfo", "downwardAPI": map[string]any{"items": []any{
			map[string]any{"path": "labels", "fieldRef": map[string]any{"fieldPath": "metadata.labels"}}}}})
	}
	spec["volumes"] = vols
	if g.chance(0.3) {
		spec["hostNetwork"] = true
	}
	if g.chance(0.3) {
		spec["priorityClassName"] = "system-node-critical"
	}
	if g.chance(0.2) {
		spec["restartPolicy"] = g.pick("Always", "OnFailure", "Never")
	}
	if g.chance(0.2) {
		spec["terminationGracePeriodSeconds"] = g.pick("-5", "0", "30")
	}
	if g.chance(0.2) {
		spec["tolerations"] = []any{g.pick1(
			map[string]any{"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
			map[string]any{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
			map[string]any{"operator": "Exists"},
		)}
	}
	if g.chance(0.1) {
		spec["enableServiceLinks"] = false
	}
	if g.chance(0.1) {
		spec["securityContext"] = map[string]any{"runAsUser": 0}
	}
	if g.chance(0.1) {
		spec["nodeSelector"] = map[string]any{"kubernetes.io/os": "linux"}
	}
	p := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
	if g.chance(0.1) {
		p["status"] = map[string]any{"podIP": "10.0.0.1"}
	}
	if g.chance(0.05) {
		meta["uid"] = "11111111-2222-3333-4444-" + fmt.Sprintf("%012d", g.r.IntN(1000))
	}
	return p
}

func (g *spGen) pick1(xs ...map[string]any) map[string]any { return xs[g.r.IntN(len(xs))] }

// spMutations make a manifest that the kubelet refuses; each names itself.
var spMutations = []struct {
	name string
	f    func(g *spGen, p map[string]any)
}{
	{"no-name", func(_ *spGen, p map[string]any) { delete(spMeta(p), "name") }},
	{"name-uppercase", func(_ *spGen, p map[string]any) { spMeta(p)["name"] = "Web" }},
	{"name-too-long", func(_ *spGen, p map[string]any) { spMeta(p)["name"] = strings.Repeat("a", 250) }},
	{"namespace-invalid", func(_ *spGen, p map[string]any) { spMeta(p)["namespace"] = "Kube_System" }},
	{"label-invalid", func(_ *spGen, p map[string]any) { spMeta(p)["labels"] = map[string]any{"a b": "c"} }},
	{"annotation-key-invalid", func(_ *spGen, p map[string]any) { spMeta(p)["annotations"] = map[string]any{"-x": "y"} }},
	{"no-containers", func(_ *spGen, p map[string]any) { delete(spSpec(p), "containers") }},
	{"container-name-invalid", func(_ *spGen, p map[string]any) { spCtr(p)["name"] = "C_1" }},
	{"container-name-duplicate", func(_ *spGen, p map[string]any) {
		spSpec(p)["containers"] = append(spSpec(p)["containers"].([]any), map[string]any{"name": spCtr(p)["name"], "image": "busybox"})
	}},
	{"image-empty", func(_ *spGen, p map[string]any) { delete(spCtr(p), "image") }},
	{"image-whitespace", func(_ *spGen, p map[string]any) { spCtr(p)["image"] = " busybox" }},
	{"pull-policy-invalid", func(_ *spGen, p map[string]any) { spCtr(p)["imagePullPolicy"] = "Sometimes" }},
	{"port-zero", func(_ *spGen, p map[string]any) { spCtr(p)["ports"] = []any{map[string]any{"containerPort": 0}} }},
	{"port-too-big", func(_ *spGen, p map[string]any) {
		spCtr(p)["ports"] = []any{map[string]any{"containerPort": 70000}}
	}},
	{"port-protocol-invalid", func(_ *spGen, p map[string]any) {
		spCtr(p)["ports"] = []any{map[string]any{"containerPort": 80, "protocol": "ICMP"}}
	}},
	{"port-name-invalid", func(_ *spGen, p map[string]any) {
		spCtr(p)["ports"] = []any{map[string]any{"containerPort": 80, "name": "Not_Valid"}}
	}},
	{"hostnetwork-port-mismatch", func(_ *spGen, p map[string]any) {
		spSpec(p)["hostNetwork"] = true
		spCtr(p)["ports"] = []any{map[string]any{"containerPort": 80, "hostPort": 81}}
	}},
	{"host-port-conflict", func(_ *spGen, p map[string]any) {
		spCtr(p)["ports"] = []any{map[string]any{"containerPort": 80, "hostPort": 8080}, map[string]any{"containerPort": 81, "hostPort": 8080}}
	}},
	{"resource-name-invalid", func(_ *spGen, p map[string]any) {
		spCtr(p)["resources"] = map[string]any{"limits": map[string]any{"gpu": "1"}}
	}},
	{"resource-negative", func(_ *spGen, p map[string]any) {
		spCtr(p)["resources"] = map[string]any{"requests": map[string]any{"cpu": "-1"}}
	}},
	{"requests-over-limits", func(_ *spGen, p map[string]any) {
		spCtr(p)["resources"] = map[string]any{"requests": map[string]any{"memory": "2Gi"}, "limits": map[string]any{"memory": "1Gi"}}
	}},
	{"resource-unparsable", func(_ *spGen, p map[string]any) {
		spCtr(p)["resources"] = map[string]any{"requests": map[string]any{"cpu": "lots"}}
	}},
	{"mount-missing-volume", func(_ *spGen, p map[string]any) {
		spCtr(p)["volumeMounts"] = []any{map[string]any{"name": "nope", "mountPath": "/x"}}
	}},
	{"mount-path-duplicate", func(_ *spGen, p map[string]any) {
		spCtr(p)["volumeMounts"] = []any{map[string]any{"name": "data", "mountPath": "/x"}, map[string]any{"name": "data", "mountPath": "/x"}}
	}},
	{"volume-two-sources", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data", "emptyDir": map[string]any{}, "hostPath": map[string]any{"path": "/x"}}}
	}},
	{"volume-name-duplicate", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data"}, map[string]any{"name": "data"}}
	}},
	{"hostpath-no-path", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data", "hostPath": map[string]any{"path": ""}}}
	}},
	{"probe-no-handler", func(_ *spGen, p map[string]any) { spCtr(p)["livenessProbe"] = map[string]any{"periodSeconds": 3} }},
	{"liveness-success-threshold", func(_ *spGen, p map[string]any) {
		spCtr(p)["livenessProbe"] = map[string]any{"exec": map[string]any{"command": []any{"true"}}, "successThreshold": 2}
	}},
	{"init-probe", func(_ *spGen, p map[string]any) {
		spSpec(p)["initContainers"] = []any{map[string]any{"name": "i", "image": "busybox", "readinessProbe": map[string]any{"exec": map[string]any{"command": []any{"true"}}}}}
	}},
	{"init-restart-never", func(_ *spGen, p map[string]any) {
		spSpec(p)["initContainers"] = []any{map[string]any{"name": "i", "image": "busybox", "restartPolicy": "Never"}}
	}},
	{"init-restart-invalid", func(_ *spGen, p map[string]any) {
		spSpec(p)["initContainers"] = []any{map[string]any{"name": "i", "image": "busybox", "restartPolicy": "Sometimes"}}
	}},
	{"init-lifecycle", func(_ *spGen, p map[string]any) {
		spSpec(p)["initContainers"] = []any{map[string]any{"name": "i", "image": "busybox", "lifecycle": map[string]any{"preStop": map[string]any{"exec": map[string]any{"command": []any{"true"}}}}}}
	}},
	{"container-restart-policy", func(g *spGen, p map[string]any) {
		spCtr(p)["restartPolicy"] = g.pick("Never", "OnFailure", "Always", "Bogus")
	}},
	{"env-name-digit", func(_ *spGen, p map[string]any) { spCtr(p)["env"] = []any{map[string]any{"name": "1X", "value": "v"}} }},
	{"env-name-equals", func(_ *spGen, p map[string]any) { spCtr(p)["env"] = []any{map[string]any{"name": "A=B", "value": "v"}} }},
	{"hostname-invalid", func(_ *spGen, p map[string]any) { spSpec(p)["hostname"] = "Not_Valid" }},
	{"active-deadline-ok", func(_ *spGen, p map[string]any) { spSpec(p)["activeDeadlineSeconds"] = 30 }},
	{"hugepages", func(_ *spGen, p map[string]any) {
		spCtr(p)["resources"] = map[string]any{"limits": map[string]any{"hugepages-2Mi": "2Mi", "memory": "64Mi"}}
	}},
	{"extended-resource", func(_ *spGen, p map[string]any) {
		spCtr(p)["resources"] = map[string]any{"limits": map[string]any{"example.com/gpu": "1"}}
	}},
	{"uid-given", func(_ *spGen, p map[string]any) { spMeta(p)["uid"] = "given-uid" }},
	{"restart-policy-invalid", func(_ *spGen, p map[string]any) { spSpec(p)["restartPolicy"] = "Sometimes" }},
	{"dns-policy-invalid", func(_ *spGen, p map[string]any) { spSpec(p)["dnsPolicy"] = "Google" }},
	{"dns-none-without-config", func(_ *spGen, p map[string]any) { spSpec(p)["dnsPolicy"] = "None" }},
	{"active-deadline-zero", func(_ *spGen, p map[string]any) { spSpec(p)["activeDeadlineSeconds"] = 0 }},
	{"toleration-invalid", func(_ *spGen, p map[string]any) {
		spSpec(p)["tolerations"] = []any{map[string]any{"operator": "Equal", "value": "x"}}
	}},
	{"node-selector-invalid", func(_ *spGen, p map[string]any) { spSpec(p)["nodeSelector"] = map[string]any{"a b": "c"} }},
	{"ephemeral-containers", func(_ *spGen, p map[string]any) {
		spSpec(p)["ephemeralContainers"] = []any{map[string]any{"name": "dbg", "image": "busybox"}}
	}},
	{"service-account", func(_ *spGen, p map[string]any) { spSpec(p)["serviceAccountName"] = "default" }},
	{"deprecated-service-account", func(_ *spGen, p map[string]any) { spSpec(p)["serviceAccount"] = "default" }},
	{"image-pull-secret", func(_ *spGen, p map[string]any) {
		spSpec(p)["imagePullSecrets"] = []any{map[string]any{"name": "reg"}}
	}},
	{"env-secret", func(_ *spGen, p map[string]any) {
		spCtr(p)["env"] = []any{map[string]any{"name": "X", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "s", "key": "k"}}}}
	}},
	{"envfrom-configmap", func(_ *spGen, p map[string]any) {
		spCtr(p)["envFrom"] = []any{map[string]any{"configMapRef": map[string]any{"name": "c"}}}
	}},
	{"configmap-volume", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data", "configMap": map[string]any{"name": "c"}}}
	}},
	{"secret-volume", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data", "secret": map[string]any{"secretName": "s"}}}
	}},
	{"pvc-volume", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data", "persistentVolumeClaim": map[string]any{"claimName": "c"}}}
	}},
	{"projected-token", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data", "projected": map[string]any{"sources": []any{
			map[string]any{"serviceAccountToken": map[string]any{"path": "token"}}}}}}
	}},
	{"projected-downward-ok", func(_ *spGen, p map[string]any) {
		spSpec(p)["volumes"] = []any{map[string]any{"name": "data", "projected": map[string]any{"sources": []any{
			map[string]any{"downwardAPI": map[string]any{"items": []any{map[string]any{"path": "n", "fieldRef": map[string]any{"fieldPath": "metadata.name"}}}}}}}}}
	}},
	{"resource-claims", func(_ *spGen, p map[string]any) {
		spSpec(p)["resourceClaims"] = []any{map[string]any{"name": "gpu", "resourceClaimName": "gpu"}}
	}},
	{"kind-podlist", func(_ *spGen, p map[string]any) {
		items := map[string]any{"metadata": p["metadata"], "spec": p["spec"]}
		for k := range p {
			delete(p, k)
		}
		p["apiVersion"], p["kind"], p["items"] = "v1", "PodList", []any{items}
	}},
	{"kind-deployment", func(_ *spGen, p map[string]any) { p["apiVersion"], p["kind"] = "apps/v1", "Deployment" }},
	{"no-apiversion", func(_ *spGen, p map[string]any) { delete(p, "apiVersion") }},
	{"no-kind", func(_ *spGen, p map[string]any) { delete(p, "kind") }},
	{"wrong-type", func(_ *spGen, p map[string]any) { spSpec(p)["containers"] = "busybox" }},
}

func spMeta(p map[string]any) map[string]any { return p["metadata"].(map[string]any) }
func spSpec(p map[string]any) map[string]any { return p["spec"].(map[string]any) }
func spCtr(p map[string]any) map[string]any {
	cs, _ := spSpec(p)["containers"].([]any)
	if len(cs) == 0 {
		c := map[string]any{"name": "c0", "image": "busybox"}
		spSpec(p)["containers"] = []any{c}
		return c
	}
	return cs[0].(map[string]any)
}

// manifest returns one manifest for a pod called name: YAML or JSON,
// valid or with one mutation, and now and then a byte-level oddity.
func (g *spGen) manifest(name string) spManifest {
	p := g.pod(name)
	desc := []string{}
	if g.chance(0.5) {
		m := spMutations[g.r.IntN(len(spMutations))]
		m.f(g, p)
		desc = append(desc, m.name)
	}
	var data []byte
	var err error
	if g.chance(0.3) {
		desc = append(desc, "json")
		data, err = json.MarshalIndent(p, "", "  ")
	} else {
		desc = append(desc, "yaml")
		data, err = yaml.Marshal(p)
		if err == nil && g.chance(0.1) {
			desc = append(desc, "comments")
			data = append([]byte("# a static pod\n---\n"), data...)
		}
	}
	if err != nil {
		panic(err)
	}
	switch {
	case g.chance(0.03):
		desc = append(desc, "second-document")
		data = append(data, []byte("\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: second\n")...)
	case g.chance(0.02):
		desc = append(desc, "garbage")
		data = []byte("\x00\x01{{not yaml: [")
	case g.chance(0.02):
		desc = append(desc, "empty")
		data = nil
	}
	return spManifest{data: data, desc: name + ":" + strings.Join(desc, ",")}
}
