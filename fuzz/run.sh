#!/usr/bin/env bash
# Run every cargo-fuzz target (or the ones named) for SECONDS each, two at a time, each from
# its seeds in fuzz/seeds/ and the corpus of earlier runs here (fuzz/corpus/, not in git).
# An input that panics, or takes over 10 s, or needs over 2 GiB, fails the run; libFuzzer
# leaves it in fuzz/artifacts/TARGET/ and this script prints its log.
#
#   fuzz/run.sh                 # 60 s per target
#   fuzz/run.sh 600 api spec    # ten minutes each for two targets
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler (libFuzzer);
# the stable toolchain works with RUSTC_BOOTSTRAP=1 and no sanitizer, as here.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec telemetry stdio api)
export RUSTC_BOOTSTRAP=1
# 16 codegen units: the build takes a fraction of cargo-fuzz's default single unit, for
# somewhat slower executions; what CI's minute per target wants.
build=(--sanitizer none --codegen-units 16)

cargo fuzz build "${build[@]}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

run() {
  local t="$1"
  mkdir -p "corpus/$t"
  cargo fuzz run "${build[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$logs/$t" 2>&1
}

failed=()
pids=()
names=()
for t in "${targets[@]}"; do
  run "$t" &
  pids+=($!)
  names+=("$t")
  if [ ${#pids[@]} -eq 2 ]; then
    for i in 0 1; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done
    pids=(); names=()
  fi
done
for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("${names[$i]}"); done

for t in "${targets[@]}"; do
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t" | grep -o '[0-9]*$' || echo '?')"
  echo "fuzz $t: ${seconds} s, ${runs} executions, corpus $(ls "corpus/$t" | wc -l) inputs"
done
if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "== fuzz target $t failed; its log:" >&2
    tail -60 "$logs/$t" >&2
  done
  exit 1
fi
