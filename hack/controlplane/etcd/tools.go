//go:build tools

// Package etcd pins the etcd server the test bed builds (go.etcd.io/etcd/server/v3,
// the version Kubernetes 1.37 expects). Its go.mod has replace directives, so
// it is built through this wrapper module rather than `go install`.
package etcd

import _ "go.etcd.io/etcd/server/v3"
