// Command sandbox is the demo of nodekit's test bed until the example agent
// lands: it runs one pod through a real CRI runtime — a pod sandbox from the
// local pause image, then a busybox container serving HTTP — fetches the page
// from the host at the pod's IP, and removes everything again.
//
//	sudo hack/containerd-up.sh && sudo go run ./examples/sandbox
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func main() {
	endpoint := flag.String("endpoint", "unix:///tmp/nodekit/cri/containerd.sock", "CRI endpoint")
	image := flag.String("image", "docker.io/library/busybox:1.36", "image of the HTTP container")
	hold := flag.Bool("hold", false, "keep the pod running until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *endpoint, *image, *hold); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, endpoint, image string, hold bool) error {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rs := runtimeapi.NewRuntimeServiceClient(conn)
	v, err := rs.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return fmt.Errorf("CRI Version at %s: %w", endpoint, err)
	}
	fmt.Printf("runtime: %s %s (CRI %s)\n", v.RuntimeName, v.RuntimeVersion, v.RuntimeApiVersion)

	uid := fmt.Sprintf("demo-%d", time.Now().UnixNano())
	logDir, err := os.MkdirTemp("", "nodekit-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(logDir)
	sandboxConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: "demo", Namespace: "default", Uid: uid},
		Hostname:     "demo",
		LogDirectory: logDir,
		Labels:       map[string]string{"io.kubernetes.pod.name": "demo", "io.kubernetes.pod.namespace": "default"},
	}
	t0 := time.Now()
	sandbox, err := rs.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sandboxConfig})
	if err != nil {
		return fmt.Errorf("RunPodSandbox: %w", err)
	}
	id := sandbox.PodSandboxId
	defer func() {
		cleanup := context.Background()
		_, _ = rs.StopPodSandbox(cleanup, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
		_, _ = rs.RemovePodSandbox(cleanup, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
		fmt.Println("sandbox stopped and removed")
	}()
	status, err := rs.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
	if err != nil {
		return fmt.Errorf("PodSandboxStatus: %w", err)
	}
	ip := status.Status.GetNetwork().GetIp()
	fmt.Printf("sandbox %.12s ready in %v, pod IP %s\n", id, time.Since(t0).Round(time.Millisecond), ip)

	created, err := rs.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId: id,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "web"},
			Image:    &runtimeapi.ImageSpec{Image: image},
			Command:  []string{"httpd", "-f", "-p", "8080", "-h", "/www"},
			LogPath:  "web/0.log",
		},
		SandboxConfig: sandboxConfig,
	})
	if err != nil {
		return fmt.Errorf("CreateContainer: %w", err)
	}
	if _, err := rs.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
		return fmt.Errorf("StartContainer: %w", err)
	}
	fmt.Printf("container web %.12s started\n", created.ContainerId)

	body, err := fetch(ctx, "http://"+ip+":8080/")
	if err != nil {
		return err
	}
	fmt.Printf("GET http://%s:8080/ -> %q\n", ip, body)
	if hold {
		fmt.Println("holding the pod; interrupt to remove it")
		<-ctx.Done()
	}
	return nil
}

// fetch retries until the server in the container listens (a few ms after start).
func fetch(ctx context.Context, url string) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for range 50 {
		resp, err := client.Get(url)
		if err == nil {
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			return string(b), err
		}
		last = err
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("GET %s: %w", url, last)
}
