# checkpoint-quota: quotas for container checkpoint archives.
# `make help` lists the targets.

# Image to build and deploy.
IMG ?= checkpoint-quota:latest
# The image name written in config/ (manager and agent); deploy and build-installer replace it with IMG.
CONFIG_IMG = checkpoint-quota:latest
# config/default issues the webhook certificate with cert-manager; OVERLAY=no-cert-manager
# uses the manager's built-in rotation instead.
OVERLAY ?= default
NAMESPACE ?= checkpoint-quota-system
CONTAINER_TOOL ?= docker
PLATFORMS ?= linux/amd64,linux/arm64
# kubectl for the target cluster; without one on PATH, the test bed's (which includes kustomize).
KUBECTL ?= $(or $(shell command -v kubectl 2>/dev/null),$(TESTBIN)/kubectl)
KUSTOMIZE = $(KUBECTL) kustomize

# Tool versions. Go tools install with `go install`, so they come from the module proxy.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint

export GOTOOLCHAIN ?= local

# The kube-apiserver, etcd and kubectl of the test bed: built once from Go modules
# into a cache outside the clone (hack/testbin.sh), or KUBEBUILDER_ASSETS if set.
TESTBIN = $(shell $(CURDIR)/hack/testbin.sh)
# The helm CLI, built once from its Go module (hack/helm.sh) into the same cache, or HELM if set.
HELM_BIN = $(shell $(CURDIR)/hack/helm.sh)

GO_TEST_FLAGS ?= -timeout 30m

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: controller-gen ## Generate deepcopy code (zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

# Each binary gets its own ClusterRole, generated from the +kubebuilder:rbac markers of its own
# packages only, so that neither inherits the other's permissions. Package roots that do not
# exist yet are skipped (controller-gen fails on a missing path).
MANAGER_RBAC_PATHS = $(foreach d,controllers webhooks cmd/manager,$(if $(wildcard $(d)),paths=./$(d)/...))
AGENT_RBAC_PATHS = $(foreach d,nodeagent cmd/node-agent,$(if $(wildcard $(d)),paths=./$(d)/...))

.PHONY: manifests
manifests: controller-gen ## Generate CRDs, RBAC and webhook manifests into config/.
	$(CONTROLLER_GEN) crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=manager-role $(MANAGER_RBAC_PATHS) output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=node-agent-role $(AGENT_RBAC_PATHS) output:rbac:artifacts:config=config/rbac/agent
	@$(MAKE) --no-print-directory chart-files

# The Helm chart cannot read config/: it gets copies of the generated CRDs, roles and webhook
# configurations, and of the pinned-checkpoint policy, which its templates rename.
CHART = charts/checkpoint-quota
.PHONY: chart-files
chart-files: ## Copy the CRDs, roles, webhooks and admission policy of config/ into the Helm chart.
	rm -f $(CHART)/crds/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	cp config/rbac/role.yaml $(CHART)/files/manager-role.yaml
	cp config/rbac/agent/role.yaml $(CHART)/files/node-agent-role.yaml
	cp config/webhook/manifests.yaml $(CHART)/files/webhooks.yaml
	cp config/admission-policy/pinned-checkpoint.yaml $(CHART)/files/pinned-checkpoint.yaml
	cp config/admission-policy/checkpoint-writes.yaml $(CHART)/files/checkpoint-writes.yaml

.PHONY: verify
verify: generate manifests ## Regenerate everything and fail if the tree changed.
	@if ! git diff --quiet -- api config charts || [ -n "$$(git ls-files --others --exclude-standard -- api config charts)" ]; then \
		echo "Generated files are out of date; run 'make generate manifests' and commit:"; \
		git --no-pager diff --stat -- api config charts; git ls-files --others --exclude-standard -- api config charts; exit 1; fi
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: golangci-lint ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: testbin
testbin: ## Build (once) and print the test bed's control-plane binaries.
	@echo $(TESTBIN)

.PHONY: test
test: generate manifests ## Run the whole suite against a real kube-apiserver and etcd.
	KUBEBUILDER_ASSETS="$(TESTBIN)" HELM="$(HELM_BIN)" go test $(GO_TEST_FLAGS) ./...

# A real node on this machine (hack/node): kubelet, kube-scheduler, containerd, runc, CRIU and
# the CNI plugins built once into ~/.cache/checkpoint-quota/node; the project's image imported
# into containerd; the operator installed with the Helm chart and with kustomize; stopped after.
.PHONY: test-node
test-node: ## Run the real-node suite (test/node): real pods checkpointed by a real kubelet. Needs root.
	./hack/node/test.sh

.PHONY: helm
helm: ## Build (once) and print the helm CLI of the chart tests.
	@echo $(HELM_BIN)

# helm lint renders as for a cluster without cert-manager (it has no --api-versions): the
# default auto lints as rotation, and the cert-manager modes are rendered with helm template.
.PHONY: helm-lint
helm-lint: chart-files ## Lint the Helm chart in every certificate mode, strictly.
	$(HELM_BIN) lint --strict $(CHART)
	$(HELM_BIN) lint --strict $(CHART) --set certificates.mode=rotation
	$(HELM_BIN) template $(CHART) --api-versions cert-manager.io/v1 >/dev/null
	$(HELM_BIN) template $(CHART) --api-versions cert-manager.io/v1 --set certificates.mode=cert-manager >/dev/null

# Each fuzz target runs for FUZZTIME, one after another; `make test` runs their seeds
# (testdata/fuzz, written by `go run ./hack/fuzzseeds`). A failing input is written into
# the package's testdata/fuzz: fix the code and commit the input as a regression seed.
FUZZTIME ?= 10m
FUZZ_TARGETS = ./internal/archive:FuzzReadFrom ./internal/archive:FuzzFileName \
	./webhooks:FuzzValidateCheckpointQuota ./webhooks:FuzzValidateClusterCheckpointQuota

.PHONY: fuzz
fuzz: ## Fuzz the archive reader, the file-name parser and the quota validators, FUZZTIME each.
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg) for $(FUZZTIME)"; \
		go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done

.PHONY: bench
bench: ## Run the benchmarks (figures for the closing notes and docs/benchmarks.md).
	KUBEBUILDER_ASSETS="$(TESTBIN)" go test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 60m ./...

# BenchmarkScale (controllers/scale_bench_test.go) only runs when CHECKPOINT_QUOTA_BENCH_SCALE
# is set; BENCH_SCALE=0.05 builds a twentieth of the cluster.
BENCH_SCALE ?= 1
.PHONY: bench-scale
bench-scale: ## Run the scale benchmark: 1,000 nodes, 30,000 pods, 100,000 Checkpoints, 300 quotas (BENCH_SCALE=0.05 for a twentieth).
	CHECKPOINT_QUOTA_BENCH_SCALE=$(BENCH_SCALE) KUBEBUILDER_ASSETS="$(TESTBIN)" go test -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 90m ./controllers/

# BenchmarkTenants (controllers/tenants_bench_test.go): 10,000 namespaces and 5,000 quotas
# with every list at its bound; admission p99 and the manager's memory growth, for the
# manager of this tree and of BENCH_BASE (the commit before issue 29's bounds), in one run.
BENCH_BASE ?= 2ad6dc9
.PHONY: bench-tenants
bench-tenants: ## Run the tenants benchmark: admission p99 and manager memory with 5,000 maximal quotas, against BENCH_BASE.
	CHECKPOINT_QUOTA_BENCH_BASE=$(BENCH_BASE) KUBEBUILDER_ASSETS="$(TESTBIN)" go test -run '^$$' -bench '^BenchmarkTenants$$' -benchtime 1x -timeout 90m ./controllers/

# BenchmarkPeer (controllers/peer_bench_test.go) runs the burst, the streams and the cold start
# against checkpoint-quota and, given PEER_OPERATOR (a binary of CRIU's
# checkpoint-restore-operator that you built from its source), against it in the same run.
# PEER_BASE, a git revision, adds checkpoint-quota as built from it ("before") to the same run.
PEER_OPERATOR ?=
PEER_BASE ?=
.PHONY: bench-peer
bench-peer: ## Compare with CRIU's operator: burst 5,000 to 500, streams at 20/s and 100/s, cold start (PEER_OPERATOR=/path/to/binary, PEER_BASE=rev, PEER_AUTH=token|both).
	CHECKPOINT_QUOTA_BENCH_PEER=1 CHECKPOINT_QUOTA_BENCH_PEER_BASE="$(PEER_BASE)" PEER_OPERATOR="$(PEER_OPERATOR)" PEER_AUTH="$(PEER_AUTH)" KUBEBUILDER_ASSETS="$(TESTBIN)" go test -run '^$$' -bench '^BenchmarkPeer$$' -benchtime 1x -timeout 90m -v ./controllers/

# run and demo build their program and exec it rather than `go run` it: `go run` exits 1 when
# the program it runs is interrupted, even after a clean shutdown, and make reports that as an error.
.PHONY: run
run: manifests ## Run the manager and the node agent here: on $$KUBECONFIG's cluster, or on a local control plane.
	go build -o $(LOCALBIN)/run ./hack/run
	exec $(LOCALBIN)/run $(RUN_ARGS)

.PHONY: demo
demo: ## With `make run` up: apply the sample quotas and write a stream of archives.
	go build -o $(LOCALBIN)/demo ./hack/demo
	exec $(LOCALBIN)/demo $(DEMO_ARGS)

##@ Build

.PHONY: build
build: generate ## Build the manager, node-agent and kubectl plugin binaries into bin/.
	go build -o $(LOCALBIN)/manager ./cmd/manager
	go build -o $(LOCALBIN)/node-agent ./cmd/node-agent
	go build -o $(LOCALBIN)/kubectl-checkpoint_quota ./cmd/kubectl-checkpoint_quota

.PHONY: docker-build
docker-build: ## Build the image (manager and node-agent) as IMG.
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push IMG.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: docker-buildx
docker-buildx: ## Build and push IMG for PLATFORMS.
	$(CONTAINER_TOOL) buildx build --platform=$(PLATFORMS) --tag $(IMG) --push .

.PHONY: build-installer
build-installer: manifests ## Render config/$(OVERLAY) with IMG into one file, dist/install.yaml.
	mkdir -p dist
	$(KUSTOMIZE) config/$(OVERLAY) | sed 's|image: $(CONFIG_IMG)$$|image: $(IMG)|' > dist/install.yaml

##@ Deployment

# Removes the CustomResourceDefinitions from rendered manifests (documents are separated by ---).
WITHOUT_CRDS = awk 'BEGIN { RS = "\n---\n"; ORS = "\n---\n" } !/(^|\n)kind: CustomResourceDefinition\n/'

.PHONY: install
install: manifests ## Install the CRDs into the cluster of $$KUBECONFIG.
	$(KUSTOMIZE) config/crd | $(KUBECTL) apply --server-side -f -

.PHONY: uninstall
uninstall: ## Remove the CRDs (and so the Checkpoint objects); the archives stay on the nodes, and a later install republishes them.
	$(KUSTOMIZE) config/crd | $(KUBECTL) delete --ignore-not-found -f -

.PHONY: deploy
deploy: manifests ## Deploy config/$(OVERLAY) with IMG to the cluster of $$KUBECONFIG (default overlay: needs cert-manager).
	$(KUSTOMIZE) config/$(OVERLAY) | sed 's|image: $(CONFIG_IMG)$$|image: $(IMG)|' | $(KUBECTL) apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator but keep the CRDs, the Checkpoint objects and every archive on the nodes.
	$(KUSTOMIZE) config/$(OVERLAY) | $(WITHOUT_CRDS) | $(KUBECTL) delete --ignore-not-found -f -

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen into bin/.
$(CONTROLLER_GEN): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Install golangci-lint into bin/.
$(GOLANGCI_LINT): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
