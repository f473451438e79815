// Package staticpod gives a node agent the kubelet's static pods: pods a
// node runs from local manifests rather than from the apiserver, merged
// with other pod sources into one stream, and mirrored back to the
// apiserver. It is for authors of custom node agents, edge agents and node
// simulators who need this behaviour exactly as a Kubernetes v1.37 kubelet
// has it, without importing k8s.io/kubernetes.
//
// # Static pods
//
// Most pods reach a kubelet through the apiserver: the scheduler binds a
// pod to a node, and the kubelet watching pods with spec.nodeName=<node>
// runs it. A static pod instead comes from the node itself: a manifest file
// in a directory the kubelet watches (staticPodPath, usually
// /etc/kubernetes/manifests) or a URL it polls (--manifest-url). The
// kubelet runs it without asking anyone, restarts it forever, and stops it
// when the manifest goes away. This is how kubeadm bootstraps a control
// plane: etcd, kube-apiserver, the controller manager and the scheduler are
// static pods, because nothing else could run them before the apiserver
// exists.
//
// The kubelet turns a manifest into a pod with fixed rules, which this
// package follows (DecodeFile, DecodeURL):
//
//   - the name becomes "<name>-<node name in lower case>", so the pods of
//     many nodes do not clash; the namespace defaults to "default";
//     spec.nodeName is the node;
//   - the UID is a hash of the manifest (after API defaulting), the node
//     name and the file path or URL, unless the manifest sets metadata.uid;
//     the same hash goes into the kubernetes.io/config.hash annotation. A
//     changed manifest is therefore a new pod: the old one is stopped and
//     the new one started, there is no in-place update;
//   - kubernetes.io/config.source says where the pod came from ("file",
//     "http"), kubernetes.io/config.seen when the kubelet first saw it;
//   - file pods tolerate every NoExecute taint, so a not-ready or
//     unreachable node does not evict its own control plane;
//   - the pod is validated, and may not reference API objects (Secrets,
//     ConfigMaps, ServiceAccount tokens, PersistentVolumeClaims,
//     ResourceClaims, ...): it must run with no apiserver at all, and a
//     node must not reach objects through a pod it made up itself.
//
// Static pods are critical (Critical): the kubelet never evicts them and
// admits them under resource pressure.
//
// # Sources and merging
//
// A source (Dir for a directory or file, URL for a URL, and the
// apiserver source an agent adds) always reports its complete set of pods,
// an Update. The Merger, the kubelet's PodConfig, compares each set with
// the source's previous one and emits what changed: ADD for new pods,
// REMOVE for pods that left the set, UPDATE and DELETE (a deletion
// timestamp) for pods whose UID stayed but whose spec changed, RECONCILE
// for a status-only change. It also tracks which sources have sent a first
// set: until SeenAll, the agent must not delete anything for being absent,
// because a source that has not reported yet looks empty.
//
// # Mirror pods
//
// The apiserver does not know about static pods, so the kubelet creates a
// mirror pod for each: a copy in the apiserver, annotated
// kubernetes.io/config.mirror=<hash> and owned by the Node object, so that
// kubectl, the scheduler's accounting and monitoring see what runs on the
// node. A mirror pod is read-only in spirit; the manifest is the source of
// truth. Deleting a mirror pod only makes the kubelet create it again;
// editing it changes nothing on the node; a manifest change replaces it
// with a new one carrying the new hash; removing the manifest removes it.
// Mirror does this against any client-go clientset; with NodeRestriction,
// the clientset must authenticate as the node, as the kubelet's does.
//
// # Design notes
//
// The UID equals the kubelet's byte for byte. Upstream hashes a go-spew
// dump of its internal pod type; in v1.37 that type has the fields of
// k8s.io/api/core/v1.Pod in the same order, so this package writes the
// same dump from the v1 pod, naming types as the internal package would
// (hash.go), after applying the same API defaults (defaults.go). The
// conformance module checks the UIDs against upstream on generated
// manifests. Equal UIDs mean a node can move from the kubelet to a
// nodekit agent, or back, without restarting its static pods.
//
// Validation (validate.go) is the part of the apiserver's ValidatePodCreate
// that decides whether the pod can run safely, not all of it; the
// apiserver still validates the mirror pod and the Mirror reports a
// refusal. The conformance module compares acceptance with upstream on
// generated manifests.
//
// Where upstream loses information, nodekit keeps upstream's outcome and
// adds an error to the Update, so that nothing differs silently:
//
//   - two files define the same namespace/name: the later file (by name)
//     wins (ErrDuplicate);
//   - a YAML file with several documents: the first is used
//     (ErrExtraDocuments); a file with a PodList is refused (ErrNotPod);
//   - a single-file path holding an invalid manifest sends no set, so the
//     source is never seen (Keep, ErrNoSet);
//   - a directory path with glob metacharacters is still used as a glob
//     pattern (ErrGlobPattern);
//   - a URL that keeps returning a rejected body, or the same body again
//     after an empty one emptied the set, sends no set (ErrUnchanged), where
//     upstream stays silent.
//
// Two behaviours differ from upstream on purpose and are documented where
// they happen. The Dir source reads the whole directory on every change
// instead of patching a cache per event, so a file that becomes invalid
// loses its pod at once (upstream keeps the stale pod until the next 20s
// resync, or, when every file is invalid, keeps it in its cache and sends
// it again on the next event); the set is always exactly the pods of the
// files valid now. And a single-file path is watched through its directory,
// so an editor's atomic replace is seen at once (upstream loses the watch
// with the old inode and waits for the resync).
//
// Everything that decides is a pure function or a state machine with an
// injected clock (k8s.io/utils/clock): DecodeFile, DecodeURL, Dir.List,
// Merger. The shells (Dir.Run, URL.Run, Mirror.Run) only watch, poll and
// call the apiserver; each is Run(ctx) error and stops all it started when
// ctx ends.
package staticpod
