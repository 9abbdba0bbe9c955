#!/usr/bin/env bash
# Peak RSS and wall time of `knobs run` with SQLite storage at growing trial
# counts, for every optimizer: benches/memory.sh [trials...] (default 1000 5000 20000).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$ROOT" && cargo build --release --quiet)
BIN="$ROOT/target/release/knobs"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
counts=("$@"); [ ${#counts[@]} -eq 0 ] && counts=(1000 5000 20000)
printf '| optimizer | trials | peak RSS (MB) | wall (s) | db size (MB) |\n|---|---:|---:|---:|---:|\n'
for opt in ${OPTIMIZERS:-random sobol genetic cmaes swarm annealing}; do
  for n in "${counts[@]}"; do
    sed "s/optimizer: cmaes/optimizer: $opt/" "$ROOT/benches/specs/ackley10.yaml" > "$TMP/spec.yaml"
    rm -f "$TMP/k.db"*
    /usr/bin/time -f '%M %e' -o "$TMP/time" "$BIN" -q run "$TMP/spec.yaml" --trials "$n" \
      --storage "$TMP/k.db" --out "$TMP/out" --no-progress > /dev/null
    read -r kb secs < "$TMP/time"
    db=$(du -m "$TMP/k.db" | cut -f1)
    printf '| %s | %d | %.1f | %s | %s |\n' "$opt" "$n" "$(echo "$kb / 1024" | bc -l)" "$secs" "$db"
  done
done
