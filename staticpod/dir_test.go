package staticpod

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	testclock "k8s.io/utils/clock/testing"
)

// podYAML is a minimal valid manifest for a pod called name.
func podYAML(name, image string) string {
	return fmt.Sprintf("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\nspec:\n  containers:\n  - name: c\n    image: %s\n", name, image)
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// names lists "name=image" of the pods of a set, in order.
func names(u Update) []string {
	var out []string
	for _, p := range u.Pods {
		out = append(out, p.Name+"="+p.Spec.Containers[0].Image)
	}
	return out
}

func errorsMatching(u Update, target error) []string {
	var out []string
	for _, e := range u.Errors {
		if errors.Is(e, target) {
			var me *ManifestError
			errors.As(e, &me)
			out = append(out, filepath.Base(me.Path))
		}
	}
	return out
}

func newTestDir(t *testing.T, path string) *Dir {
	t.Helper()
	d, err := NewDir(DirConfig{Path: path, NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDirList covers extractFromDir (pkg/kubelet/config/file.go): the
// glob [^.]*, sorting, no recursion, the size cap, per-file failures, and
// last-wins for duplicate names, each reported.
func TestDirList(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "img-a"))
	write(t, filepath.Join(dir, ".hidden.yaml"), podYAML("hidden", "img"))
	write(t, filepath.Join(dir, "b.json"), `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"b"},"spec":{"containers":[{"name":"c","image":"img-b"}]}}`)
	write(t, filepath.Join(dir, "c-invalid.yaml"), podYAML("C", "img"))
	write(t, filepath.Join(dir, "d-big.yaml"), podYAML("big", "img")+strings.Repeat("#", MaxManifestSize))
	write(t, filepath.Join(dir, "e-list.yaml"), "apiVersion: v1\nkind: PodList\nitems: []\n")
	write(t, filepath.Join(dir, "f-dup.yaml"), podYAML("a", "img-a2"))
	write(t, filepath.Join(dir, "g-two-docs.yaml"), podYAML("g", "img-g")+"---\n"+podYAML("h", "img-h"))
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "sub", "x.yaml"), podYAML("x", "img"))

	u := newTestDir(t, dir+"/").List()
	if u.Keep || u.Source != SourceFile {
		t.Fatalf("Keep %v Source %q", u.Keep, u.Source)
	}
	if got, want := names(u), []string{"b-n1=img-b", "a-n1=img-a2", "g-n1=img-g"}; !slices.Equal(got, want) {
		t.Errorf("set = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		err  error
		want []string
	}{
		{ErrInvalid, []string{"c-invalid.yaml"}},
		{ErrTooLarge, []string{"d-big.yaml"}},
		{ErrNotPod, []string{"e-list.yaml"}},
		{ErrDuplicate, []string{"f-dup.yaml"}},
		{ErrExtraDocuments, []string{"g-two-docs.yaml"}},
		{ErrNotRegular, []string{"sub"}},
	} {
		if got := errorsMatching(u, tc.err); !slices.Equal(got, tc.want) {
			t.Errorf("errors matching %v: %v, want %v", tc.err, got, tc.want)
		}
	}
	if len(u.Errors) != 6 {
		t.Errorf("%d errors, want 6: %v", len(u.Errors), u.Errors)
	}
	// The UID hashes the path without the trailing slash, as upstream.
	p, _ := DecodeFile([]byte(podYAML("b", "img-b")), "n1", "")
	if u.Pods[0].UID == p.UID {
		t.Error("UID does not depend on the path")
	}
}

func TestDirListEmptyAndMissing(t *testing.T) {
	dir := t.TempDir()
	u := newTestDir(t, dir).List()
	if u.Keep || u.Pods == nil || len(u.Pods) != 0 || len(u.Errors) != 0 {
		t.Fatalf("empty dir: %+v, want an empty set", u)
	}
	u = newTestDir(t, filepath.Join(dir, "missing")).List()
	if u.Keep || u.Pods == nil || len(u.Pods) != 0 || !errors.Is(u.Errors[0], ErrNotExist) {
		t.Fatalf("missing path: %+v, want an empty set and ErrNotExist (the source is seen)", u)
	}
}

// TestDirListSingleFile: a file path gives a set of one; an invalid file
// gives no set at all, so the source stays unseen, as upstream.
func TestDirListSingleFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pod.yaml")
	write(t, path, podYAML("a", "img"))
	if u := newTestDir(t, path).List(); u.Keep || !slices.Equal(names(u), []string{"a-n1=img"}) {
		t.Fatalf("valid file: %+v", u)
	}
	write(t, path, podYAML("A", "img"))
	u := newTestDir(t, path).List()
	if !u.Keep || u.Pods != nil || !errors.Is(u.Errors[0], ErrNoSet) || !errors.Is(u.Errors[0], ErrInvalid) {
		t.Fatalf("invalid file: %+v, want Keep with ErrNoSet and ErrInvalid", u)
	}
}

// TestDirListMalformedPattern: a directory whose path is a malformed glob
// pattern lists nothing and, as upstream, sends no set; a well-formed
// pattern is listed as upstream lists it, and reported.
func TestDirListMalformedPattern(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a[b")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "v1"))
	u := newTestDir(t, dir).List()
	if !u.Keep || u.Pods != nil || len(errorsMatching(u, ErrNoSet)) != 1 || len(errorsMatching(u, ErrGlobPattern)) != 1 {
		t.Fatalf("malformed pattern: %+v", u)
	}
	dir = filepath.Join(t.TempDir(), "a[b]")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "v1"))
	u = newTestDir(t, dir).List()
	if u.Keep || len(u.Pods) != 0 || len(errorsMatching(u, ErrGlobPattern)) != 1 {
		t.Fatalf("pattern that matches another directory: %+v, want an empty set (upstream's glob misses the files) and ErrGlobPattern", u)
	}
}

// collector reads a source's updates and waits for one that satisfies a
// condition.
type collector struct {
	t  *testing.T
	ch chan Update
}

func runDir(t *testing.T, d *Dir) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan Update, 64)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, ch) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v", err)
		}
	})
	return &collector{t: t, ch: ch}
}

// waitFor fails unless an update satisfying ok arrives within d.
func (c *collector) waitFor(what string, within time.Duration, ok func(Update) bool) Update {
	c.t.Helper()
	deadline := time.After(within)
	var last Update
	for {
		select {
		case u := <-c.ch:
			last = u
			if ok(u) {
				return u
			}
		case <-deadline:
			c.t.Fatalf("%s: no matching update within %v; last %v %v", what, within, names(last), last.Errors)
		}
	}
}

func setIs(want ...string) func(Update) bool {
	return func(u Update) bool { return !u.Keep && slices.Equal(names(u), want) }
}

// TestDirWatch changes a real directory the ways people and editors do and
// expects the new set within a second of each change, long before the
// (hour-long here) resync.
func TestDirWatch(t *testing.T) {
	dir := t.TempDir()
	d, err := NewDir(DirConfig{Path: dir, NodeName: "n1", Resync: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := runDir(t, d)
	c.waitFor("start: an empty directory is an empty set", time.Second, setIs())

	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "v1"))
	first := c.waitFor("add", time.Second, setIs("a-n1=v1"))

	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "v2"))
	edited := c.waitFor("edit", time.Second, setIs("a-n1=v2"))
	if edited.Pods[0].UID == first.Pods[0].UID {
		t.Fatal("an edit must change the UID")
	}

	if err := os.Rename(filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	renamed := c.waitFor("rename", time.Second, func(u Update) bool {
		return setIs("a-n1=v2")(u) && u.Pods[0].UID != edited.Pods[0].UID
	})

	// An editor's atomic save: write a temporary dotfile, rename it over.
	write(t, filepath.Join(dir, ".b.yaml.swp"), podYAML("a", "v3"))
	if err := os.Rename(filepath.Join(dir, ".b.yaml.swp"), filepath.Join(dir, "b.yaml")); err != nil {
		t.Fatal(err)
	}
	c.waitFor("atomic replace", time.Second, func(u Update) bool {
		return setIs("a-n1=v3")(u) && u.Pods[0].UID != renamed.Pods[0].UID
	})

	write(t, filepath.Join(dir, ".ignored"), podYAML("dot", "v1"))
	write(t, filepath.Join(dir, "c.yaml"), "kind: Nonsense\n")
	c.waitFor("an invalid file next to a valid one", time.Second, func(u Update) bool {
		return setIs("a-n1=v3")(u) && slices.Equal(errorsMatching(u, ErrNotPod), []string{"c.yaml"})
	})

	write(t, filepath.Join(dir, "d.yaml"), podYAML("a", "dup"))
	c.waitFor("the same name in two files: the later file wins, reported", time.Second, func(u Update) bool {
		return setIs("a-n1=dup")(u) && slices.Equal(errorsMatching(u, ErrDuplicate), []string{"d.yaml"})
	})

	write(t, filepath.Join(dir, "d.yaml"), podYAML("D", "bad"))
	c.waitFor("a file that becomes invalid loses its pod at once", time.Second, func(u Update) bool {
		return setIs("a-n1=v3")(u) && slices.Equal(errorsMatching(u, ErrInvalid), []string{"d.yaml"})
	})

	for _, f := range []string{"b.yaml", "c.yaml", "d.yaml"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	c.waitFor("delete", time.Second, func(u Update) bool { return setIs()(u) && len(u.Errors) == 0 })
}

// TestDirWatchPathAppears: a manifest directory that does not exist yet is
// an empty set (seen); once created, its pods arrive within a second.
func TestDirWatchPathAppears(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "manifests")
	c := runDir(t, newTestDir(t, dir))
	c.waitFor("missing dir", time.Second, func(u Update) bool { return setIs()(u) && errors.Is(u.Errors[0], ErrNotExist) })
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c.waitFor("dir created", time.Second, func(u Update) bool { return setIs()(u) && len(u.Errors) == 0 })
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "v1"))
	c.waitFor("file in the new dir", time.Second, setIs("a-n1=v1"))
}

// TestDirWatchSingleFile: a single-file path survives an editor's atomic
// replace (upstream watches the file's inode and loses it until resync).
func TestDirWatchSingleFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pod.yaml")
	write(t, path, podYAML("a", "v1"))
	c := runDir(t, newTestDir(t, path))
	c.waitFor("start", time.Second, setIs("a-n1=v1"))
	write(t, filepath.Join(dir, "other.yaml"), podYAML("x", "v1"))
	write(t, filepath.Join(dir, "pod.yaml.tmp"), podYAML("a", "v2"))
	if err := os.Rename(filepath.Join(dir, "pod.yaml.tmp"), path); err != nil {
		t.Fatal(err)
	}
	c.waitFor("atomic replace of the file", time.Second, setIs("a-n1=v2"))
	write(t, path, podYAML("a", "v3"))
	c.waitFor("edit after the replace", time.Second, setIs("a-n1=v3"))
}

// idleWatcher never reports anything: the resync alone must find changes.
type idleWatcher struct{}

func (idleWatcher) Add(string) error              { return nil }
func (idleWatcher) Close() error                  { return nil }
func (idleWatcher) Events() <-chan fsnotify.Event { return nil }
func (idleWatcher) Errors() <-chan error          { return nil }

// TestDirResync: without any watch event, a change is found by the resync
// every 20s of the injected clock, and not before.
func TestDirResync(t *testing.T) {
	dir := t.TempDir()
	clk := testclock.NewFakeClock(time.Now())
	d, err := NewDir(DirConfig{Path: dir, NodeName: "n1", Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	d.newWatcher = func() (watcher, error) { return idleWatcher{}, nil }
	c := runDir(t, d)
	c.waitFor("start", time.Second, setIs())
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "v1"))

	waitForWaiters(t, clk)
	clk.Step(19 * time.Second)
	select {
	case u := <-c.ch:
		t.Fatalf("update before the resync period: %v", names(u))
	case <-time.After(200 * time.Millisecond):
	}
	clk.Step(time.Second)
	c.waitFor("resync at 20s", time.Second, setIs("a-n1=v1"))
}

func waitForWaiters(t *testing.T, clk *testclock.FakeClock) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !clk.HasWaiters() {
		if time.Now().After(deadline) {
			t.Fatal("the source never waited on the clock")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDirWatchFailureRecovers: a failing watch is reported (Keep) and
// replaced, and the directory is read again.
func TestDirWatchFailureRecovers(t *testing.T) {
	dir := t.TempDir()
	d := newTestDir(t, dir)
	fail := make(chan error, 1)
	made := 0
	d.newWatcher = func() (watcher, error) {
		made++
		if made == 1 {
			return &failingWatcher{errs: fail}, nil
		}
		return newFSWatcher()
	}
	c := runDir(t, d)
	c.waitFor("start", time.Second, setIs())
	write(t, filepath.Join(dir, "a.yaml"), podYAML("a", "v1"))
	fail <- fsnotify.ErrEventOverflow
	c.waitFor("failure reported", time.Second, func(u Update) bool { return u.Keep && errors.Is(u.Errors[0], fsnotify.ErrEventOverflow) })
	c.waitFor("re-read after the failure", time.Second, setIs("a-n1=v1"))
}

type failingWatcher struct{ errs chan error }

func (*failingWatcher) Add(string) error              { return nil }
func (*failingWatcher) Close() error                  { return nil }
func (*failingWatcher) Events() <-chan fsnotify.Event { return nil }
func (w *failingWatcher) Errors() <-chan error        { return w.errs }
