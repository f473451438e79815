# The user's vocabulary. Every target that needs real components starts the
# test bed itself (hack/testbed-up.sh); run as root.
GO ?= go
SHELL := /bin/bash
STATICCHECK := $(shell . hack/lib.sh && echo $$NODEKIT_CACHE/staticcheck-$$STATICCHECK_VERSION/bin/staticcheck)

.PHONY: test lint unit conformance bench demo testbed testbed-check testbed-down clean-testbed

## test: the whole suite: lint, the test bed (and a check of its scripts),
## unit and real-component tests with -race, conformance.
test: lint testbed-check unit conformance

## unit: every package of the main module, with the race detector (real-component tests included).
unit:
	$(GO) test -race -count=1 ./...

## conformance: nodekit against k8s.io/kubernetes v1.37.2 (differential tests).
conformance:
	cd conformance && $(GO) test -count=1 ./...

## lint: gofmt, go vet and staticcheck on both modules.
lint: $(STATICCHECK)
	@out=$$(gofmt -l . ); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd conformance && $(GO) vet ./...
	$(STATICCHECK) ./...
	cd conformance && $(STATICCHECK) ./...

$(STATICCHECK):
	. hack/lib.sh && GOBIN=$(dir $@) $(GO) install honnef.co/go/tools/cmd/staticcheck@$$STATICCHECK_VERSION

## bench: benchmarks of nodekit and, side by side, of upstream (conformance).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee bench-nodekit.txt
	cd conformance && $(GO) test -run '^$$' -bench . -benchmem -count 6 ./... | tee ../bench-conformance.txt

## demo: start containerd and run a pod through the CRI.
demo:
	hack/containerd-up.sh
	$(GO) run ./examples/sandbox

## testbed: start containerd 2.x, containerd 1.6, etcd and kube-apiserver.
testbed:
	hack/testbed-up.sh

## testbed-check: prove the test bed's start/stop scripts; leaves it up.
testbed-check:
	hack/testbed-check.sh

## testbed-down: stop them; clean-testbed also deletes their state.
testbed-down:
	hack/testbed-down.sh

clean-testbed:
	hack/testbed-down.sh --purge
