package testenv

import (
	"context"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRuntimesRunPodSandbox is the test bed's smoke test for the CRI: each
// runtime answers Version, runs a pod sandbox from the locally built pause
// image (CNI gives it an IP), then stops and removes it without a trace.
func TestRuntimesRunPodSandbox(t *testing.T) {
	for _, rt := range Runtimes(t) {
		t.Run(rt.Name, func(t *testing.T) {
			conn, err := DialCRI(rt.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			rs := runtimeapi.NewRuntimeServiceClient(conn)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			v, err := rs.Version(ctx, &runtimeapi.VersionRequest{})
			if err != nil {
				t.Fatalf("Version: %v", err)
			}
			if v.RuntimeApiVersion != "v1" {
				t.Fatalf("RuntimeApiVersion = %q, want v1", v.RuntimeApiVersion)
			}

			uid := randomHex(t, 8)
			cfg := &runtimeapi.PodSandboxConfig{
				Metadata:     &runtimeapi.PodSandboxMetadata{Name: "smoke-" + uid, Namespace: "nodekit-test", Uid: uid},
				LogDirectory: t.TempDir(),
				Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD},
				}},
			}
			run, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg})
			if err != nil {
				t.Fatalf("RunPodSandbox: %v", err)
			}
			id := run.PodSandboxId
			removed := false
			t.Cleanup(func() {
				if !removed {
					_, _ = rs.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
					_, _ = rs.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
				}
			})

			st, err := rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
			if err != nil {
				t.Fatalf("PodSandboxStatus: %v", err)
			}
			if st.Status.State != runtimeapi.PodSandboxState_SANDBOX_READY {
				t.Fatalf("sandbox state = %v, want SANDBOX_READY", st.Status.State)
			}
			if st.Status.GetNetwork().GetIp() == "" {
				t.Fatal("sandbox has no IP: CNI did not run")
			}

			if _, err := rs.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Fatalf("StopPodSandbox: %v", err)
			}
			if _, err := rs.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
				t.Fatalf("RemovePodSandbox: %v", err)
			}
			removed = true
			list, err := rs.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{
				Filter: &runtimeapi.PodSandboxFilter{Id: id},
			})
			if err != nil {
				t.Fatalf("ListPodSandbox: %v", err)
			}
			if n := len(list.Items); n != 0 {
				t.Fatalf("sandbox %s still listed after removal (%d items)", id, n)
			}
		})
	}
}
