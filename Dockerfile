# The infaas image: one binary for both roles (`infaas controller`,
# `infaas worker`), with the ONNX Runtime shared library it loads at run
# time. Used by deploy/ (image name infaas).
#
#   docker build -t infaas:latest .
#
# Three stages: the Go build, the ONNX Runtime library (fetched the way the
# Makefile does), and a slim Debian runtime (glibc and libstdc++, which
# ONNX Runtime needs) running as a non-root user.

# --- 1. build infaas ------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# cgo: the ONNX Runtime binding loads libonnxruntime.so.1 with dlopen.
RUN CGO_ENABLED=1 go build -trimpath -ldflags "-s -w" -o /out/infaas ./cmd/infaas

# --- 2. ONNX Runtime, from the onnxruntime-node npm package ----------------
# As the Makefile's $(ORT_LIB) target: `npm pack` only fetches the tarball
# (`npm install` would run a script that downloads a GPU add-on).
FROM node:20-bookworm-slim AS ort
ARG ORT_VERSION=1.24.1
WORKDIR /ort
RUN npm pack onnxruntime-node@${ORT_VERSION} --silent >/dev/null && \
    tar -xzf onnxruntime-node-${ORT_VERSION}.tgz --strip-components=5 package/bin/napi-v6/linux/x64/libonnxruntime.so.1 && \
    rm -f onnxruntime-node-${ORT_VERSION}.tgz && \
    test -s libonnxruntime.so.1

# --- 3. runtime -------------------------------------------------------------
FROM debian:bookworm-slim
RUN groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin nonroot
COPY --from=build /out/infaas /usr/local/bin/infaas
COPY --from=ort /ort/libonnxruntime.so.1 /usr/local/lib/libonnxruntime.so.1
ENV INFAAS_ORT_LIB=/usr/local/lib/libonnxruntime.so.1
# nonroot (65532), as the Kubernetes manifests' runAsUser.
USER 65532:65532
# 8000 HTTP, 8001 gRPC, 8002 metrics, 8003 worker plane (controller);
# 8004 worker service (worker), as in deploy/.
EXPOSE 8000 8001 8002 8003 8004
ENTRYPOINT ["/usr/local/bin/infaas"]
