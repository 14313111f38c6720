#!/usr/bin/env bash
# Regenerates sim/catalogs/convnets.json: writes the three convnets
# (go run ./sim/catalogs/gen), registers them with a fresh `infaas serve`
# on this machine — which generates their variants and profiles them —
# and saves what it measured. Run from the repository root: make sim-catalog
set -euo pipefail
bin=${INFAAS_BIN:-./bin/infaas}
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go run ./sim/catalogs/gen "$work/models" > "$work/models.txt"
port=$((20000 + RANDOM % 20000))
"$bin" serve --data "$work/data" --http 127.0.0.1:$port --grpc 127.0.0.1:$((port + 1)) --metrics 127.0.0.1:$((port + 2)) \
	--cluster 127.0.0.1:$((port + 3)) --profile-time "${PROFILE_TIME:-300ms}" > "$work/serve.log" 2>&1 &
pid=$!
server=http://127.0.0.1:$port
for _ in $(seq 150); do "$bin" models --server "$server" > /dev/null 2>&1 && break; sleep 0.2; done
while read -r name path accuracy; do
	"$bin" register --server "$server" --name "$name" --task classification --dataset synthetic --file "$path" --accuracy "$accuracy"
done < "$work/models.txt"
"$bin" simulate --from "$server" --save-catalog sim/catalogs/convnets.json
echo "wrote sim/catalogs/convnets.json"
