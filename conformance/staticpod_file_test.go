package conformance

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/config"
	kubetypes "k8s.io/kubernetes/pkg/kubelet/types"

	"github.com/kube-nodekit/nodekit/staticpod"
)

type spNoStartupSLI struct{}

func (spNoStartupSLI) ObservedPodOnWatch(klog.Logger, *corev1.Pod, time.Time) {}

// spUpstreamFileSource runs the kubelet's file source (config.NewSourceFile)
// into its PodConfig, and folds PodConfig's updates into the current pods.
// The source watches a symlink that each case points at a new directory,
// and relists every 50ms; upstream's source has no way to stop, so one
// serves every case.
type spUpstreamFileSource struct {
	mu   sync.Mutex
	pods map[types.UID]*corev1.Pod
}

func spStartUpstreamFileSource(t *testing.T, path, node string) *spUpstreamFileSource {
	u := &spUpstreamFileSource{pods: map[types.UID]*corev1.Pod{}}
	ctx := t.Context()
	pc := config.NewPodConfig(&record.FakeRecorder{}, spNoStartupSLI{})
	config.NewSourceFile(logr.Discard(), path, types.NodeName(node), 50*time.Millisecond, pc.Channel(ctx, kubetypes.FileSource))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case up := <-pc.Updates():
				u.mu.Lock()
				for _, p := range up.Pods {
					if up.Op == kubetypes.REMOVE {
						delete(u.pods, p.UID)
					} else {
						u.pods[p.UID] = p
					}
				}
				u.mu.Unlock()
			}
		}
	}()
	return u
}

// waitForMarker returns upstream's pods once they include the marker pod,
// i.e. once a listing of the new directory went through PodConfig.
func (u *spUpstreamFileSource) waitForMarker(t *testing.T, marker string) map[types.UID]*corev1.Pod {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		u.mu.Lock()
		for _, p := range u.pods {
			if p.Name == marker {
				out := spCopyPods(u.pods)
				u.mu.Unlock()
				return out
			}
		}
		u.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("upstream never listed the directory with %s", marker)
	return nil
}

func spCopyPods(m map[types.UID]*corev1.Pod) map[types.UID]*corev1.Pod {
	out := make(map[types.UID]*corev1.Pod, len(m))
	for k, v := range m {
		out[k] = v.DeepCopy()
	}
	return out
}

// TestStaticPodFileSourceMatchesUpstream runs upstream's file source with
// PodConfig and nodekit's Dir with Merger on the same generated manifest
// directories, and requires the same pods: the same files accepted (the
// UID hashes the path), and the same name, namespace, nodeName,
// annotations (except config.seen), tolerations, indeed the whole pod.
func TestStaticPodFileSourceMatchesUpstream(t *testing.T) {
	const node = "node-1"
	root := t.TempDir()
	link := filepath.Join(root, "manifests")
	if err := os.Mkdir(filepath.Join(root, "init"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "init"), link); err != nil {
		t.Fatal(err)
	}
	upstream := spStartUpstreamFileSource(t, link, node)
	gen := newSPGen(7)
	var accepted, rejected, duplicates int

	for i := range 100 {
		dir := filepath.Join(root, fmt.Sprintf("case%d", i))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var descs, podNames []string
		files := gen.r.IntN(6)
		for f := range files {
			name := fmt.Sprintf("p%d-%d", i, f)
			if f > 0 && gen.chance(0.15) {
				name = podNames[gen.r.IntN(len(podNames))] // the same pod in two files
				duplicates++
			}
			podNames = append(podNames, name)
			m := gen.manifest(name)
			file := fmt.Sprintf("m%02d.yaml", f)
			switch {
			case gen.chance(0.05):
				file = "." + file
			case gen.chance(0.05):
				if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err == nil {
					file = filepath.Join("sub", file)
				}
			}
			descs = append(descs, file+"="+m.desc)
			if err := os.WriteFile(filepath.Join(dir, file), m.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		marker := fmt.Sprintf("marker%d", i)
		if err := os.WriteFile(filepath.Join(dir, "zz-marker.yaml"), []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: "+marker+"}\nspec: {containers: [{name: c, image: i}]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Point the watched path at the new case, atomically.
		tmp := filepath.Join(root, "next")
		if err := os.Symlink(dir, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, link); err != nil {
			t.Fatal(err)
		}
		want := upstream.waitForMarker(t, marker+"-"+node)

		src, err := staticpod.NewDir(staticpod.DirConfig{Path: link, NodeName: node})
		if err != nil {
			t.Fatal(err)
		}
		list := src.List()
		m := staticpod.NewMerger(staticpod.MergerConfig{Sources: []string{kubetypes.FileSource}})
		ups, err := m.Apply(list)
		if err != nil {
			t.Fatalf("case %d: merge: %v", i, err)
		}
		got := map[types.UID]*corev1.Pod{}
		for _, u := range ups {
			for _, p := range u.Pods {
				got[p.UID] = p
			}
		}
		if diff := cmp.Diff(spWithoutSeen(want), spWithoutSeen(got)); diff != "" {
			t.Fatalf("case %d (%s): pods differ from upstream (-upstream +nodekit):\n%s\nnodekit errors: %v",
				i, strings.Join(descs, " "), diff, list.Errors)
		}
		accepted += len(got) - 1
		rejected += files - (len(got) - 1)
	}
	t.Logf("%d manifests accepted and %d not used by both (%d same-name files)", accepted, rejected, duplicates)
	if accepted < 30 || rejected < 30 {
		t.Fatalf("too little coverage: %d accepted, %d rejected", accepted, rejected)
	}
}

// spWithoutSeen drops what may differ: when each first saw the pod.
func spWithoutSeen(pods map[types.UID]*corev1.Pod) map[types.UID]*corev1.Pod {
	out := map[types.UID]*corev1.Pod{}
	for uid, p := range pods {
		p = p.DeepCopy()
		delete(p.Annotations, kubetypes.ConfigFirstSeenAnnotationKey)
		out[uid] = p
	}
	return out
}
