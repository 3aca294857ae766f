# One image, two static binaries: /manager (the Deployment's entrypoint) and /node-agent (the
# DaemonSet runs it by its command).
#
#   make docker-build IMG=registry.example/checkpoint-quota:v0.1.0
#
# BUILDPLATFORM/TARGETPLATFORM come from BuildKit; the Go compiler cross-compiles, so a
# multi-platform build (docker buildx build --platform linux/amd64,linux/arm64) needs no emulation.
ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath

# Modules first, so that source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

# .dockerignore admits only the Go sources of the binaries.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -ldflags="-s -w" -o /out/manager ./cmd/manager && \
    GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -ldflags="-s -w" -o /out/node-agent ./cmd/node-agent

# distroless/static: no shell, no package manager, CA certificates and /etc/passwd with the
# nonroot user 65532. The agent's DaemonSet overrides the user (see config/agent).
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="checkpoint-quota" \
      org.opencontainers.image.description="Quotas for container checkpoint archives" \
      org.opencontainers.image.source="https://github.com/checkpoint-quota/checkpoint-quota"
COPY --from=build /out/manager /out/node-agent /
USER 65532:65532
ENTRYPOINT ["/manager"]
