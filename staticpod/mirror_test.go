package staticpod

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func mirrorOf(p *corev1.Pod, hash string) *corev1.Pod {
	m := p.DeepCopy()
	m.UID = "mirror-" + p.UID
	m.Annotations[AnnotationMirror] = hash
	return m
}

// TestPlanMirrors pins the decisions of tryReconcileMirrorPods
// (pkg/kubelet/kubelet.go) and the orphan clean-up of HandlePodCleanups
// (pkg/kubelet/kubelet_pods.go).
func TestPlanMirrors(t *testing.T) {
	a, b, c := testPod("a", "ua", "i"), testPod("b", "ub", "i"), testPod("c", "uc", "i")
	terminating := mirrorOf(c, "uc")
	terminating.DeletionTimestamp = &metav1.Time{}
	regular := testPod("d", "ud", "i") // a regular pod: never touched
	static := map[string]*corev1.Pod{"default/a": a, "default/b": b, "default/c": c}
	nodePods := []*corev1.Pod{
		mirrorOf(b, "old-hash"),
		terminating,
		mirrorOf(testPod("orphan", "uo", "i"), "uo"),
		regular,
	}
	describe := func(steps []mirrorStep) string {
		var out []string
		for _, s := range steps {
			var d string
			if s.del != nil {
				d = "delete " + s.del.Name
				if s.uid != nil {
					d += "@" + string(*s.uid)
				}
			}
			if s.create != nil {
				d = strings.TrimSpace(d + " create " + s.create.Name)
			}
			out = append(out, d)
		}
		return strings.Join(out, "; ")
	}
	want := "create a; delete b@mirror-ub create b; delete c@mirror-uc create c; delete orphan"
	if got := describe(planMirrors(static, nodePods, true)); got != want {
		t.Errorf("plan:\n got %s\nwant %s", got, want)
	}
	// Before the static sources have been seen, nothing is an orphan.
	want = "create a; delete b@mirror-ub create b; delete c@mirror-uc create c"
	if got := describe(planMirrors(static, nodePods, false)); got != want {
		t.Errorf("plan before SetStaticPods:\n got %s\nwant %s", got, want)
	}
	// Up to date: nothing to do.
	if got := planMirrors(map[string]*corev1.Pod{"default/a": a}, []*corev1.Pod{mirrorOf(a, "ua")}, true); len(got) != 0 {
		t.Errorf("plan for an up-to-date mirror: %s", describe(got))
	}
}

func TestMirrorPodObject(t *testing.T) {
	a := testPod("a", "ua", "i")
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", UID: "node-uid"}}
	m := mirrorPod(a, node)
	if m.Annotations[AnnotationMirror] != "ua" {
		t.Errorf("mirror annotation %q, want the static pod's hash", m.Annotations[AnnotationMirror])
	}
	if len(m.OwnerReferences) != 1 {
		t.Fatalf("owner references %+v", m.OwnerReferences)
	}
	o := m.OwnerReferences[0]
	if o.APIVersion != "v1" || o.Kind != "Node" || o.Name != "n1" || o.UID != "node-uid" || o.Controller == nil || !*o.Controller {
		t.Errorf("owner %+v, want the Node as controller (KEP-1314)", o)
	}
	if _, ok := a.Annotations[AnnotationMirror]; ok {
		t.Error("mirrorPod modified the static pod")
	}
}
