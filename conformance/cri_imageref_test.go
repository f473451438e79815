package conformance

import (
	"math/rand/v2"
	"strings"
	"testing"

	dockerref "github.com/distribution/reference"
	v1 "k8s.io/api/core/v1"
	k8sv1 "k8s.io/kubernetes/pkg/apis/core/v1"
	"k8s.io/kubernetes/pkg/util/parsers"

	"github.com/kube-nodekit/nodekit/cri"
)

// criRefSeeds are references that hit every branch of the grammar.
var criRefSeeds = []string{
	"busybox", "busybox:1.36", "library/busybox", "docker.io/busybox", "index.docker.io/busybox",
	"registry.k8s.io/pause:3.10.2", "localhost/app", "localhost:5000/app:dev", "[::1]:5000/app",
	"127.0.0.1:5000/nodekit/busybox:1.36", "Registry.Example/app", "a_b.c/app", "a.b/c__d/e--f/g.h_i:Tag_1.0-x",
	"busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"busybox:latest@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"busybox@sha512:" + strings.Repeat("ab", 64), "busybox@sha384:" + strings.Repeat("cd", 48),
	"busybox@md5:" + strings.Repeat("a", 32), "busybox@sha256:" + strings.Repeat("A", 64),
	"busybox@sha256:abc", "Busybox", "busybox:", "busybox:-x", "bu..sybox", "a___b", "-x/y", "host:port/app",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "", "localhost:5000", "x/" + strings.Repeat("a", 256),
	"a/b:" + strings.Repeat("t", 128), "a/b:" + strings.Repeat("t", 129), "[fe80::1%eth0]:5000/x", "[::1]/x", "[]:5/x",
	"xn--bcher-kva.example/app", "a-/b", "a.-b/c", "a:1:2/b",
}

// criUpstreamNormalize is what containerd and the kubelet compute.
func criUpstreamNormalize(s string) (string, error) {
	named, err := dockerref.ParseDockerRef(s)
	if err != nil {
		return "", err
	}
	return named.String(), nil
}

// criCompareRef compares nodekit with distribution/reference and the
// kubelet's parsers on one reference.
func criCompareRef(t *testing.T, s string) {
	t.Helper()
	want, wantErr := criUpstreamNormalize(s)
	got, gotErr := cri.NormalizeImage(s)
	if (wantErr != nil) != (gotErr != nil) || got != want {
		t.Fatalf("NormalizeImage(%q) = %q, %v; distribution/reference: %q, %v", s, got, gotErr, want, wantErr)
	}
	if wantErr != nil {
		return
	}
	repo, tag, digest, err := parsers.ParseImageName(s)
	r, err2 := cri.ParseImageRef(s)
	if err != nil || err2 != nil {
		t.Fatalf("ParseImageName(%q): %v / %v", s, err, err2)
	}
	if dtag := r.Tag; dtag == "" && r.Digest == "" {
		r.Tag = "latest"
	}
	if r.Name() != repo || r.Tag != tag || r.Digest != digest {
		t.Fatalf("ParseImageRef(%q) = %s %s %s; ParseImageName: %s %s %s", s, r.Name(), r.Tag, r.Digest, repo, tag, digest)
	}
	named, _ := dockerref.ParseNormalizedNamed(s)
	if dockerref.Domain(named) != mustRef(t, s).Domain || dockerref.Path(named) != mustRef(t, s).Path {
		t.Fatalf("ParseImageRef(%q) domain/path = %q/%q; distribution/reference %q/%q", s, mustRef(t, s).Domain, mustRef(t, s).Path, dockerref.Domain(named), dockerref.Path(named))
	}
	// The kubelet's defaults: pull policy (SetDefaults_Container).
	c := &v1.Container{Image: s}
	k8sv1.SetDefaults_Container(c)
	if got := cri.DefaultPullPolicy(s); got != c.ImagePullPolicy {
		t.Fatalf("DefaultPullPolicy(%q) = %s; SetDefaults_Container: %s", s, got, c.ImagePullPolicy)
	}
}

func mustRef(t *testing.T, s string) cri.ImageRef {
	r, err := cri.ParseImageRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCriImageRefMatchesUpstream compares image reference parsing and
// normalization with distribution/reference (what containerd and the
// kubelet's ParseImageName use) on the seeds and on random mutations.
func TestCriImageRefMatchesUpstream(t *testing.T) {
	for _, s := range criRefSeeds {
		criCompareRef(t, s)
	}
	// Invalid references must also give the same default pull policy.
	for _, s := range []string{"Not Valid", "UPPER:latest"} {
		c := &v1.Container{Image: s}
		k8sv1.SetDefaults_Container(c)
		if got := cri.DefaultPullPolicy(s); got != c.ImagePullPolicy {
			t.Fatalf("DefaultPullPolicy(%q) = %s; SetDefaults_Container: %s", s, got, c.ImagePullPolicy)
		}
	}
	r := rand.New(rand.NewPCG(5, 8))
	const alphabet = "abcxyzAZ019_.-:/@[]%"
	valid := 0
	for range 200000 {
		s := []byte(criRefSeeds[r.IntN(len(criRefSeeds))])
		for range r.IntN(4) + 1 {
			switch i := r.IntN(len(s) + 1); r.IntN(3) {
			case 0: // insert
				s = append(s[:i], append([]byte{alphabet[r.IntN(len(alphabet))]}, s[i:]...)...)
			case 1: // delete
				if i < len(s) {
					s = append(s[:i], s[i+1:]...)
				}
			default: // replace
				if i < len(s) {
					s[i] = alphabet[r.IntN(len(alphabet))]
				}
			}
		}
		if _, err := criUpstreamNormalize(string(s)); err == nil {
			valid++
		}
		criCompareRef(t, string(s))
	}
	if valid < 50000 {
		t.Fatalf("only %d of the mutated references were valid: too few to compare", valid)
	}
}

// FuzzCriImageRef compares with distribution/reference on fuzzed input;
// `go test -fuzz FuzzCriImageRef` explores further.
func FuzzCriImageRef(f *testing.F) {
	for _, s := range criRefSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { criCompareRef(t, s) })
}
