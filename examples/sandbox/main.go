// Command sandbox is nodekit's demo until the example agent lands: it runs
// one corev1.Pod on a real containerd the way a kubelet would, using only
// nodekit packages — cri translates the pod (labels, annotations, log paths,
// DNS, cgroup values from qos) and talks to the runtime — then fetches the
// page the pod serves from its IP, runs a command in it, reads its log, and
// removes everything again.
//
//	sudo make demo        # starts containerd (hack/containerd-up.sh), then runs this
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
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kube-nodekit/nodekit/cri"
	"github.com/kube-nodekit/nodekit/qos"
)

func main() {
	endpoint := flag.String("endpoint", "unix:///tmp/nodekit/cri/containerd.sock", "CRI endpoint")
	image := flag.String("image", "docker.io/library/busybox:1.36", "image of the web container")
	hold := flag.Bool("hold", false, "keep the pod running until interrupted")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *endpoint, *image, *hold); err != nil {
		log.Fatal(err)
	}
}

var noServiceLinks = false

// demoPod is what the apiserver would hand a kubelet.
func demoPod(image string) *corev1.Pod {
	limits := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("64Mi")}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "default", UID: types.UID(fmt.Sprintf("demo-%d", time.Now().UnixNano()))},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name:      "web",
				Image:     image,
				Command:   []string{"sh", "-c", "echo serving $(POD_NAME); exec httpd -f -p 8080 -h /www"},
				Env:       []corev1.EnvVar{{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}}},
				Resources: corev1.ResourceRequirements{Requests: limits, Limits: limits},
			}},
			DNSPolicy:          corev1.DNSDefault,
			SecurityContext:    &corev1.PodSecurityContext{},
			EnableServiceLinks: &noServiceLinks, // the apiserver would default it

		},
	}
}

func run(ctx context.Context, endpoint, image string, hold bool) error {
	dir, err := os.MkdirTemp("", "nodekit-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := cri.DefaultConfig()
	cfg.RootDir, cfg.PodLogsDir = filepath.Join(dir, "kubelet"), filepath.Join(dir, "pods")
	cfg.QOS.CgroupRoot = "/nodekit" // the test bed's stop script cleans cgroups under it

	client, err := cri.Dial(ctx, endpoint, cri.Options{})
	if err != nil {
		return err
	}
	defer client.Close()
	v := client.RuntimeVersion()
	fmt.Printf("runtime: %s %s\n", v.RuntimeName, v.RuntimeVersion)

	pod := demoPod(image)
	fmt.Printf("pod %s/%s: QoS class %s\n", pod.Namespace, pod.Name, qos.Class(pod))
	sandboxConfig, err := cfg.SandboxConfig(pod, cri.SandboxOptions{})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(sandboxConfig.LogDirectory, 0o755); err != nil {
		return err
	}
	t0 := time.Now()
	sandboxID, err := client.RunPodSandbox(ctx, sandboxConfig, "")
	if err != nil {
		return err
	}
	defer func() {
		cleanup := context.Background()
		_ = client.StopPodSandbox(cleanup, sandboxID)
		_ = client.RemovePodSandbox(cleanup, sandboxID)
		fmt.Println("pod stopped and removed")
	}()
	status, err := client.PodSandboxStatus(ctx, sandboxID, false)
	if err != nil {
		return err
	}
	ip := status.Status.GetNetwork().GetIp()
	fmt.Printf("sandbox %.12s ready in %v, pod IP %s\n", sandboxID, time.Since(t0).Round(time.Millisecond), ip)

	ctr := &pod.Spec.Containers[0]
	ref, err := cri.EnsureImage(ctx, client, ctr.Image, cri.DefaultPullPolicy(ctr.Image), cri.PullOptions{})
	if err != nil {
		return err
	}
	containerConfig, err := cfg.ContainerConfig(pod, ctr, cri.ContainerInput{ImageRef: ref, PodIPs: []string{ip}})
	if err != nil {
		return err
	}
	containerID, err := client.CreateContainer(ctx, sandboxID, containerConfig, sandboxConfig)
	if err != nil {
		return err
	}
	if err := client.StartContainer(ctx, containerID); err != nil {
		return err
	}
	fmt.Printf("container web %.12s started (cpu shares %d, memory limit %d)\n", containerID,
		containerConfig.Linux.Resources.CpuShares, containerConfig.Linux.Resources.MemoryLimitInBytes)

	body, err := fetch(ctx, "http://"+ip+":8080/")
	if err != nil {
		return err
	}
	fmt.Printf("GET http://%s:8080/ -> %q\n", ip, body)
	out, _, err := client.ExecSync(ctx, containerID, []string{"hostname"}, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("exec hostname -> %q\n", out)
	logPath := filepath.Join(sandboxConfig.LogDirectory, containerConfig.LogPath)
	fmt.Print("log of web: ")
	err = cri.ReadLogs(ctx, logPath, containerID, cri.LogOptions{}, client, os.Stdout, os.Stderr)
	if err != nil {
		return fmt.Errorf("reading %s: %w", logPath, err)
	}
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
