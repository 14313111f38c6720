#!/usr/bin/env bash
# Builds a real Kubernetes control plane from Go modules, offline:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and
# KWOK (fake nodes whose pods become Running without containers). The
# integration tests in ./k8s start these on loopback.
#
#   deploy/k8s-local/build.sh [DIR]     # default .cache/k8s; binaries in DIR/bin
#
# The first build takes about 20 minutes on 2 cores and peaks near 3 GB of
# memory (kube-apiserver); later runs find the binaries and return at once.
set -euo pipefail

K8S_VERSION=1.37.2        # k8s.io/kubernetes
STAGING_VERSION=0.37.2    # every k8s.io/<staging> module, pinned by replace (infaas's client-go too)
KWOK_VERSION=0.8.0        # sigs.k8s.io/kwok
ETCD_VERSION=3.7.3        # go.etcd.io/etcd/server/v3 (>= 3.5.13: KWOK's client needs RequestWatchProgress)

DIR=${1:-.cache/k8s}
mkdir -p "$DIR"; DIR=$(cd "$DIR" && pwd)
BIN=$DIR/bin; SRC=$DIR/src
mkdir -p "$BIN" "$SRC/k8s" "$SRC/etcd"
export GOFLAGS=-mod=mod

now() { date +%s; }

if [ ! -x "$BIN/etcd" ]; then
  t=$(now); cd "$SRC/etcd"
  printf 'module etcdbuild\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" > go.mod
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
  go mod tidy
  go build -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3 && mv "$BIN/etcd.tmp" "$BIN/etcd"
  echo "built etcd $ETCD_VERSION in $(( $(now) - t ))s"
fi

# The replace block is k8s.io/kubernetes's own, less sample-cli-plugin and
# sample-controller (not on the proxy at this version, required by nothing).
STAGING="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
cloud-provider cluster-bootstrap code-generator component-base component-helpers
controller-manager cri-api cri-client cri-streaming csi-translation-lib
dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator
kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
mount-utils pod-security-admission sample-apiserver streaming"
K8S_BINS="kube-apiserver kube-controller-manager kube-scheduler kubectl"
missing=""
for b in $K8S_BINS; do [ -x "$BIN/$b" ] || missing="$missing $b"; done
if [ -n "$missing" ]; then
  t=$(now); cd "$SRC/k8s"
  {
    printf 'module k8slocal\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "$K8S_VERSION"
    for m in $STAGING; do printf '\tk8s.io/%s => k8s.io/%s v%s\n' "$m" "$m" "$STAGING_VERSION"; done
    printf ')\n'
  } > go.mod
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for b in $K8S_BINS; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$b"; done
    printf ')\n'
  } > tools.go
  go mod tidy
  MAJOR=${K8S_VERSION%%.*}; MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
  LDFLAGS="-s -w"   # without a version the binaries say v0.0.0-master and kubectl refuses to parse it
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS="$LDFLAGS -X $pkg.gitVersion=v$K8S_VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
  done
  # one at a time: two links of this size at once do not fit a small machine
  for b in $missing; do
    go build -ldflags "$LDFLAGS" -o "$BIN/$b.tmp" "k8s.io/kubernetes/cmd/$b" && mv "$BIN/$b.tmp" "$BIN/$b"
    echo "built $b $K8S_VERSION ($(( $(now) - t ))s so far)"
  done
fi

if [ ! -x "$BIN/kwok" ]; then
  t=$(now)
  GOBIN=$BIN go install -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  echo "built kwok $KWOK_VERSION in $(( $(now) - t ))s"
fi

# KWOK needs Stage objects (what happens to nodes and pods); they ship in its module.
KWOK_DIR=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
S=$KWOK_DIR/kustomize/stage
for f in "$S/node/fast/node-initialize.yaml" "$S/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
         "$S/pod/fast/pod-ready.yaml" "$S/pod/fast/pod-complete.yaml" "$S/pod/fast/pod-delete.yaml"; do
  echo '---'; cat "$f"
done > "$BIN/kwok-stages.yaml.tmp" && mv "$BIN/kwok-stages.yaml.tmp" "$BIN/kwok-stages.yaml"
echo "control plane binaries in $BIN"
