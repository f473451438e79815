// Package testenv gives tests the real components of nodekit's test bed:
// a CRI runtime (containerd), a kube-apiserver with etcd, and throw-away
// network namespaces. It is the one place tests ask for them.
//
// The test bed is started by `make testbed` (hack/testbed-up.sh); `make test`
// starts it itself. When a component is missing, a test that asks for it is
// skipped with a message naming the script that starts it, except under
// CI=true, where a missing component fails the test: CI must never pass by
// skipping.
//
// Locations follow hack/lib.sh: everything lives under NODEKIT_STATE
// (default /tmp/nodekit); each can be overridden by its own variable
// (NODEKIT_CRI_ENDPOINT, NODEKIT_CRI16_ENDPOINT, NODEKIT_KUBECONFIG).
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true), where a missing
// component is a failure rather than a skip.
func InCI() bool { return os.Getenv("CI") == "true" }

// unavailable ends t because a component is missing: a skip locally, a
// failure in CI. start names the command that brings the component up.
func unavailable(t testing.TB, start, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...) + "; start it with " + start
	if InCI() {
		t.Fatal("testenv: " + msg + " (CI=true: a missing component is a failure)")
	}
	t.Skip("testenv: " + msg)
}

// stateDir is the test bed's state directory, as in hack/lib.sh.
func stateDir() string {
	if d := os.Getenv("NODEKIT_STATE"); d != "" {
		return d
	}
	return "/tmp/nodekit"
}

// fromEnv returns the variable's value, or the default path under stateDir.
func fromEnv(name string, elem ...string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return filepath.Join(append([]string{stateDir()}, elem...)...)
}
