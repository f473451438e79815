package testenv

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Registry is the test bed's pair of image registries on 127.0.0.1
// (hack/registry-up.sh): Debian's docker-registry, once open and once with
// basic auth, serving the same storage, which holds the locally built
// busybox image. Both runtimes pull from them over plain HTTP.
type Registry struct {
	// Addr serves anonymous pulls, AuthAddr wants Username and Password.
	Addr, AuthAddr     string
	Username, Password string
	// Image is the busybox image's repository and tag in both,
	// "nodekit/busybox:1.36".
	Image string
}

// ImageRef is the busybox image on the open registry.
func (r Registry) ImageRef() string { return r.Addr + "/" + r.Image }

// AuthImageRef is the busybox image on the registry with basic auth.
func (r Registry) AuthImageRef() string { return r.AuthAddr + "/" + r.Image }

// ImageRegistry returns the test bed's registries after checking that the
// open one answers /v2/ and the other asks for credentials. Its settings
// are read from $NODEKIT_STATE/registry/registry.env, which
// hack/registry-up.sh writes (NODEKIT_REGISTRY_ENV overrides the path).
func ImageRegistry(t testing.TB) Registry {
	t.Helper()
	const start = "hack/registry-up.sh"
	path := fromEnv("NODEKIT_REGISTRY_ENV", "registry", "registry.env")
	f, err := os.Open(path)
	if err != nil {
		unavailable(t, start, "registry settings: %v", err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	r := Registry{Addr: env["REGISTRY"], AuthAddr: env["REGISTRY_AUTH"], Username: env["REGISTRY_USER"],
		Password: env["REGISTRY_PASSWORD"], Image: env["REGISTRY_IMAGE"]}
	if r.Addr == "" || r.AuthAddr == "" || r.Username == "" || r.Password == "" || r.Image == "" {
		unavailable(t, start, "%s is incomplete", path)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	for addr, want := range map[string]int{r.Addr: http.StatusOK, r.AuthAddr: http.StatusUnauthorized} {
		resp, err := client.Get("http://" + addr + "/v2/")
		if err != nil {
			unavailable(t, start, "registry at %s: %v", addr, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			unavailable(t, start, "registry at %s answers /v2/ with %s, want %d", addr, resp.Status, want)
		}
	}
	return r
}

// String names the registries for test logs, without the password.
func (r Registry) String() string {
	return fmt.Sprintf("registries %s (open) and %s (user %s)", r.Addr, r.AuthAddr, r.Username)
}
