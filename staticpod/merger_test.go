package staticpod

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	testclock "k8s.io/utils/clock/testing"
)

func testPod(name, uid, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID(uid),
			Annotations: map[string]string{AnnotationHash: uid}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
	}
}

// describe renders updates as "OP:name,name" for comparison.
func describe(us []PodUpdate) string {
	var out []string
	for _, u := range us {
		var names []string
		for _, p := range u.Pods {
			names = append(names, p.Name)
		}
		out = append(out, fmt.Sprintf("%s:%s", u.Op, strings.Join(names, ",")))
	}
	return strings.Join(out, " ")
}

// TestMergerSetSemantics follows podStorage.merge in
// pkg/kubelet/config/config.go step by step.
func TestMergerSetSemantics(t *testing.T) {
	clk := testclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))
	m := NewMerger(MergerConfig{Sources: []string{SourceFile, SourceAPI}, Clock: clk})
	a, b := testPod("a", "ua", "img"), testPod("b", "ub", "img")
	deleting := testPod("b", "ub", "img")
	deleting.DeletionTimestamp = &metav1.Time{Time: clk.Now()}
	statusOnly := testPod("a", "ua", "img")
	statusOnly.Status.Phase = corev1.PodRunning
	localOnly := testPod("a", "ua", "img")
	localOnly.Annotations[AnnotationSeen] = "whenever"
	spec := testPod("a", "ua", "img:2")

	steps := []struct {
		name, source string
		pods         []*corev1.Pod
		want         string
		seenAll      bool
	}{
		{"first empty set signals readiness with an empty ADD", SourceFile, nil, "ADD:", false},
		{"second empty set says nothing", SourceFile, nil, "", false},
		{"new pods are ADDed in set order", SourceFile, []*corev1.Pod{b, a}, "ADD:b,a", false},
		{"the same set again changes nothing", SourceFile, []*corev1.Pod{a, b}, "", false},
		{"local annotations are not a change", SourceFile, []*corev1.Pod{localOnly, b}, "", false},
		{"a status change is a RECONCILE", SourceFile, []*corev1.Pod{statusOnly, b}, "RECONCILE:a", false},
		{"a spec change under the same UID is an UPDATE", SourceFile, []*corev1.Pod{spec, b}, "UPDATE:a", false},
		{"a deletion timestamp is a DELETE", SourceFile, []*corev1.Pod{spec, deleting}, "DELETE:b", false},
		{"a pod left out is REMOVEd", SourceFile, []*corev1.Pod{spec}, "REMOVE:b", false},
		{"another source's first set: ADD, and all seen", SourceAPI, []*corev1.Pod{testPod("x", "ux", "i")}, "ADD:x", true},
		{"sources are independent", SourceFile, []*corev1.Pod{}, "REMOVE:a", true},
	}
	for _, s := range steps {
		got, err := m.Set(s.source, s.pods)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if d := describe(got); d != s.want {
			t.Fatalf("%s: updates %q, want %q", s.name, d, s.want)
		}
		if m.SeenAll() != s.seenAll {
			t.Fatalf("%s: SeenAll = %v", s.name, !s.seenAll)
		}
		for _, u := range got {
			if u.Pods == nil {
				t.Fatalf("%s: %s with nil Pods", s.name, u.Op)
			}
			for _, p := range u.Pods {
				if p.Annotations[AnnotationSource] != s.source {
					t.Fatalf("%s: config.source = %q", s.name, p.Annotations[AnnotationSource])
				}
			}
		}
	}
	if a.Annotations[AnnotationSource] != "" {
		t.Fatal("Set modified the caller's pod")
	}
}

func TestMergerSeenAndFirstSeenTime(t *testing.T) {
	clk := testclock.NewFakeClock(time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC))
	m := NewMerger(MergerConfig{Sources: []string{SourceFile, SourceHTTP}, Clock: clk})
	if m.SeenAll() || m.Seen(SourceFile) {
		t.Fatal("seen before any set")
	}
	up, _ := m.Set(SourceFile, []*corev1.Pod{testPod("a", "ua", "i")})
	if got := up[0].Pods[0].Annotations[AnnotationSeen]; got != "2026-01-02T03:04:05.000000600Z" {
		t.Fatalf("config.seen = %q", got)
	}
	clk.Step(time.Hour)
	changed := testPod("a", "ua", "i2")
	up, _ = m.Set(SourceFile, []*corev1.Pod{changed})
	if got := up[0].Pods[0].Annotations[AnnotationSeen]; got != "2026-01-02T03:04:05.000000600Z" {
		t.Fatalf("an UPDATE keeps the first-seen time, got %q", got)
	}
	if m.SeenAll() {
		t.Fatal("SeenAll before the http source sent a set")
	}
	if up, _ := m.Apply(Update{Source: SourceHTTP, Keep: true}); up != nil || m.Seen(SourceHTTP) {
		t.Fatal("an Update without a set must not mark the source seen")
	}
	m.Apply(Update{Source: SourceHTTP, Pods: []*corev1.Pod{}})
	if !m.SeenAll() {
		t.Fatal("SeenAll after every source sent a set")
	}
	if n := len(m.Pods()); n != 1 {
		t.Fatalf("Pods() has %d pods", n)
	}
}

// TestMergerDuplicateNames: filterInvalidPods keeps the first pod of a
// name; nodekit reports the others.
func TestMergerDuplicateNames(t *testing.T) {
	m := NewMerger(MergerConfig{})
	up, err := m.Set(SourceHTTP, []*corev1.Pod{testPod("a", "u1", "i"), testPod("a", "u2", "i")})
	if !errors.Is(err, ErrDuplicate) {
		t.Fatalf("err = %v, want ErrDuplicate", err)
	}
	if len(up) != 1 || len(up[0].Pods) != 1 || up[0].Pods[0].UID != "u1" {
		t.Fatalf("updates %s, want the first pod only", describe(up))
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{OpAdd: "ADD", OpDelete: "DELETE", OpRemove: "REMOVE", OpUpdate: "UPDATE", OpReconcile: "RECONCILE", Op(42): "UNKNOWN"} {
		if op.String() != want {
			t.Errorf("%d: %q", op, op.String())
		}
	}
}
