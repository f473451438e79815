package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const startControlPlane = "hack/controlplane-up.sh"

// RESTConfig returns an admin (system:masters) client config for the test
// bed's kube-apiserver, after checking that it answers /readyz.
func RESTConfig(t testing.TB) *rest.Config {
	t.Helper()
	path := fromEnv("NODEKIT_KUBECONFIG", "cp", "admin.kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		unavailable(t, startControlPlane, "kube-apiserver kubeconfig %s: %v", path, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("testenv: client for %s: %v", cfg.Host, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil || string(body) != "ok" {
		unavailable(t, startControlPlane, "kube-apiserver at %s not ready: %v %s", cfg.Host, err, body)
	}
	return cfg
}

// Clientset returns an admin clientset for the test bed's kube-apiserver.
func Clientset(t testing.TB) kubernetes.Interface {
	t.Helper()
	return kubernetes.NewForConfigOrDie(RESTConfig(t))
}

// NodeRESTConfig returns a client config that authenticates as the kubelet
// of node (CN=system:node:<node>, O=system:nodes), so the Node authorizer and
// the NodeRestriction admission plugin apply to it as they do to a kubelet.
// The client certificate is minted here with the test bed's CA.
func NodeRESTConfig(t testing.TB, node string) *rest.Config {
	t.Helper()
	admin := RESTConfig(t)
	pki := fromEnv("NODEKIT_PKI", "cp", "pki")
	certPEM, keyPEM, err := mintClientCert(filepath.Join(pki, "ca.crt"), filepath.Join(pki, "ca.key"),
		pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}})
	if err != nil {
		t.Fatalf("testenv: client certificate for node %q: %v", node, err)
	}
	cfg := rest.AnonymousClientConfig(admin)
	cfg.CertData, cfg.KeyData = certPEM, keyPEM
	return cfg
}

// mintClientCert signs a one-day client certificate for subject with the CA.
func mintClientCert(caCertPath, caKeyPath string, subject pkix.Name) (certPEM, keyPEM []byte, err error) {
	caCert, err := readPEM(caCertPath, x509.ParseCertificate)
	if err != nil {
		return nil, nil, err
	}
	caKey, err := readPEM(caKeyPath, parsePrivateKey)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func readPEM[T any](path string, parse func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := os.ReadFile(path)
	if err != nil {
		return zero, err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return zero, fmt.Errorf("%s: no PEM block", path)
	}
	v, err := parse(block.Bytes)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// parsePrivateKey accepts the PKCS#8 keys of OpenSSL 3 and the PKCS#1 keys of
// older versions.
func parsePrivateKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("neither a PKCS#8 nor a PKCS#1 private key")
}
