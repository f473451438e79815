package cri

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Limits of a pod's resolv.conf (pkg/apis/core/validation).
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
	maxResolvConfLength   = 10 << 20
)

// defaultDNSOptions are the options of ClusterFirst pods.
var defaultDNSOptions = []string{"ndots:5"}

// PodDNS returns the pod's DNS configuration as the kubelet computes it
// (GetPodDNS in pkg/kubelet/network/dns/dns.go):
//
//   - None: only spec.dnsConfig.
//   - ClusterFirst (and ClusterFirstWithHostNet, and ClusterFirst on a pod
//     that does not use the host network): the cluster DNS servers, searches
//     <ns>.svc.<domain>, svc.<domain>, <domain> before the host's, ndots:5.
//     Without ClusterDNS the kubelet falls back to Default.
//   - Default (and ClusterFirst on a host-network pod): the host's
//     resolv.conf, or a localhost nameserver with search "." when the kubelet
//     has none.
//
// spec.dnsConfig is merged in (duplicates dropped, its options win), then
// the result is cut to 3 nameservers and 32 search domains of at most 2048
// characters, dropping domains longer than 253. An empty dnsPolicy counts
// as ClusterFirst. Options come out in first-seen order; the kubelet's order
// is random (it goes through a map).
func (c *Config) PodDNS(pod *corev1.Pod) *runtimeapi.DNSConfig {
	dns := &runtimeapi.DNSConfig{}
	if c.HostDNS != nil {
		dns.Servers = append([]string(nil), c.HostDNS.Servers...)
		dns.Searches = append([]string(nil), c.HostDNS.Searches...)
		dns.Options = append([]string(nil), c.HostDNS.Options...)
	}
	switch podDNSType(pod) {
	case corev1.DNSNone:
		dns = &runtimeapi.DNSConfig{}
	case corev1.DNSClusterFirst:
		if len(c.ClusterDNS) != 0 {
			dns.Servers = append([]string(nil), c.ClusterDNS...)
			dns.Searches = c.clusterSearches(dns.Searches, pod)
			dns.Options = append([]string(nil), defaultDNSOptions...)
			break
		}
		fallthrough // no cluster DNS: the kubelet uses Default
	default:
		if c.HostDNS == nil {
			for _, ip := range c.NodeIPs {
				if a, err := netip.ParseAddr(ip); err == nil && a.Is6() && !a.Is4In6() {
					dns.Servers = append(dns.Servers, "::1")
				} else {
					dns.Servers = append(dns.Servers, "127.0.0.1")
				}
			}
			if len(dns.Servers) == 0 {
				dns.Servers = append(dns.Servers, "127.0.0.1")
			}
			dns.Searches = []string{"."}
		}
	}
	if pc := pod.Spec.DNSConfig; pc != nil {
		dns.Servers = omitDuplicates(append(dns.Servers, pc.Nameservers...))
		dns.Searches = omitDuplicates(append(dns.Searches, pc.Searches...))
		dns.Options = mergeDNSOptions(dns.Options, pc.Options)
	}
	if len(dns.Servers) > maxDNSNameservers {
		dns.Servers = dns.Servers[:maxDNSNameservers]
	}
	dns.Searches = fitSearches(dns.Searches)
	return dns
}

// podDNSType folds the four policies into the three behaviours.
func podDNSType(pod *corev1.Pod) corev1.DNSPolicy {
	switch pod.Spec.DNSPolicy {
	case corev1.DNSNone:
		return corev1.DNSNone
	case corev1.DNSClusterFirstWithHostNet:
		return corev1.DNSClusterFirst
	case corev1.DNSClusterFirst:
		if !pod.Spec.HostNetwork {
			return corev1.DNSClusterFirst
		}
		return corev1.DNSDefault
	case corev1.DNSDefault:
		return corev1.DNSDefault
	}
	return corev1.DNSClusterFirst // invalid policy: the kubelet logs and uses ClusterFirst
}

func (c *Config) clusterSearches(host []string, pod *corev1.Pod) []string {
	if c.ClusterDomain == "" {
		return host
	}
	s := []string{pod.Namespace + ".svc." + c.ClusterDomain, "svc." + c.ClusterDomain, c.ClusterDomain}
	return omitDuplicates(append(s, host...))
}

func omitDuplicates(s []string) []string {
	seen := make(map[string]bool, len(s))
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// mergeDNSOptions merges "name[:value]" options; a later one of the same
// name replaces the earlier one in its place.
func mergeDNSOptions(existing []string, add []corev1.PodDNSConfigOption) []string {
	out := make([]string, 0, len(existing)+len(add))
	at := make(map[string]int, len(existing)+len(add))
	set := func(name, opt string) {
		if i, ok := at[name]; ok {
			out[i] = opt
			return
		}
		at[name] = len(out)
		out = append(out, opt)
	}
	for _, op := range existing {
		name, value, _ := strings.Cut(op, ":")
		opt := name
		if value != "" {
			opt += ":" + value
		}
		set(name, opt)
	}
	for _, op := range add {
		opt := op.Name
		if op.Value != nil && *op.Value != "" {
			opt += ":" + *op.Value
		}
		set(op.Name, opt)
	}
	return out
}

// fitSearches applies the kubelet's search-line limits.
func fitSearches(s []string) []string {
	if len(s) > maxDNSSearchPaths {
		s = s[:maxDNSSearchPaths]
	}
	kept := s[:0:0]
	for _, d := range s {
		if len(d) <= validation.DNS1123SubdomainMaxLength {
			kept = append(kept, d)
		}
	}
	s = kept
	if total := len(strings.Join(s, " ")); total > maxDNSSearchListChars {
		cut, cutLen := 0, 0
		for i := len(s) - 1; i >= 0; i-- {
			cutLen += len(s[i]) + 1
			cut++
			if total-cutLen <= maxDNSSearchListChars {
				break
			}
		}
		s = s[:len(s)-cut]
	}
	return s
}

// ParseResolvConf reads a resolv.conf as the kubelet does (parseResolvConf
// in pkg/kubelet/network/dns/dns.go): nameserver lines accumulate, the last
// search line wins (trailing dots dropped, "." ignored), options accumulate
// with later ones of the same name replacing earlier ones. At most 10 MiB is
// read. A nameserver line without an address is an error, reported with the
// rest of the result.
func ParseResolvConf(r io.Reader) (*runtimeapi.DNSConfig, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxResolvConfLength+1))
	if err != nil {
		return nil, fmt.Errorf("cri: resolv.conf: %w", err)
	}
	if len(data) > maxResolvConfLength {
		return nil, fmt.Errorf("cri: resolv.conf: longer than %d bytes", maxResolvConfLength)
	}
	dns := &runtimeapi.DNSConfig{Servers: []string{}, Searches: []string{}, Options: []string{}}
	var errs []error
	for line := range strings.SplitSeq(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) >= 2 {
				dns.Servers = append(dns.Servers, f[1])
			} else {
				errs = append(errs, errors.New("cri: resolv.conf: nameserver list is empty"))
			}
		case "search":
			dns.Searches = []string{}
			for _, s := range f[1:] {
				if s != "." {
					dns.Searches = append(dns.Searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			for _, o := range f[1:] {
				name, _, _ := strings.Cut(o, ":")
				replaced := false
				for i, have := range dns.Options {
					if n, _, _ := strings.Cut(have, ":"); n == name {
						dns.Options[i], replaced = o, true
						break
					}
				}
				if !replaced {
					dns.Options = append(dns.Options, o)
				}
			}
		}
	}
	return dns, errors.Join(errs...)
}

// PodHostname returns the pod's hostname and domain as the kubelet computes
// them (GeneratePodHostNameAndDomain in pkg/kubelet/kubelet_pods.go):
// spec.hostnameOverride if set, else spec.hostname, else the pod name, cut
// to 63 characters without a trailing '-' or '.'; the domain is
// <subdomain>.<namespace>.svc.<cluster domain> when spec.subdomain is set.
func (c *Config) PodHostname(pod *corev1.Pod) (hostname, domain string, err error) {
	if o := pod.Spec.HostnameOverride; o != nil {
		if msgs := validation.IsDNS1123Subdomain(*o); len(msgs) != 0 {
			return "", "", fmt.Errorf("cri: pod HostnameOverride %q is not a valid DNS subdomain: %s", *o, strings.Join(msgs, ";"))
		}
		h, err := truncateHostname(pod.Name, *o)
		return h, "", err
	}
	hostname = pod.Name
	if pod.Spec.Hostname != "" {
		if msgs := validation.IsDNS1123Label(pod.Spec.Hostname); len(msgs) != 0 {
			return "", "", fmt.Errorf("cri: pod Hostname %q is not a valid DNS label: %s", pod.Spec.Hostname, strings.Join(msgs, ";"))
		}
		hostname = pod.Spec.Hostname
	}
	if hostname, err = truncateHostname(pod.Name, hostname); err != nil {
		return "", "", err
	}
	if sd := pod.Spec.Subdomain; sd != "" {
		if msgs := validation.IsDNS1123Label(sd); len(msgs) != 0 {
			return "", "", fmt.Errorf("cri: pod Subdomain %q is not a valid DNS label: %s", sd, strings.Join(msgs, ";"))
		}
		domain = sd + "." + pod.Namespace + ".svc." + c.ClusterDomain
	}
	return hostname, domain, nil
}

func truncateHostname(podName, hostname string) (string, error) {
	const maxLen = 63
	if len(hostname) <= maxLen {
		return hostname, nil
	}
	t := strings.TrimRight(hostname[:maxLen], "-.")
	if t == "" {
		return "", fmt.Errorf("cri: hostname for pod %q was invalid: %q", podName, hostname)
	}
	return t, nil
}

// kernelHostname is the name the sandbox's UTS namespace gets: the FQDN with
// setHostnameAsFQDN (at most 64 characters), otherwise the short name
// (GetNodenameForKernel in pkg/kubelet/util/util.go).
func kernelHostname(hostname, domain string, asFQDN *bool) (string, error) {
	if domain == "" || asFQDN == nil || !*asFQDN {
		return hostname, nil
	}
	fqdn := hostname + "." + domain
	if len(fqdn) > 64 {
		return "", fmt.Errorf("cri: failed to construct FQDN from pod hostname and cluster domain, FQDN %s is too long (64 characters is the max, %d characters requested)", fqdn, len(fqdn))
	}
	return fqdn, nil
}
