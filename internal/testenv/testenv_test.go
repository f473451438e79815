package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingComponent pins the house rule: a test whose component is
// missing skips locally with the script that starts it, and fails in CI.
// It runs this test binary again, asking for a runtime at a socket that
// does not exist.
func TestMissingComponent(t *testing.T) {
	if os.Getenv("NODEKIT_TESTENV_CHILD") == "1" {
		CRIEndpoint(t)
		t.Fatal("CRIEndpoint returned for a missing runtime")
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{ci: "", wantFail: false, want: "--- SKIP"},
		{ci: "true", wantFail: true, want: "--- FAIL"},
	} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMissingComponent$", "-test.v")
			cmd.Env = append(os.Environ(), "NODEKIT_TESTENV_CHILD=1", "CI="+tc.ci,
				"NODEKIT_CRI_ENDPOINT=unix://"+t.TempDir()+"/missing.sock")
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tc.wantFail {
				t.Fatalf("child failed = %v, want %v:\n%s", failed, tc.wantFail, out)
			}
			for _, want := range []string{tc.want, "hack/containerd-up.sh"} {
				if !strings.Contains(string(out), want) {
					t.Errorf("child output lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
