#!/usr/bin/env bash
# Run every cargo-fuzz target (or the ones named) for SECONDS each, two at a time, each from
# its hand-written seeds (fuzz/seeds/TARGET), the committed corpus (fuzz/corpus/TARGET: a
# small set of inputs that covers what every campaign so far reached) and what earlier runs
# here found (fuzz/target/found/TARGET, not in git). Runs never write into the committed
# folders. An input that panics, or takes over 10 s, or needs over 2 GiB, fails the run;
# libFuzzer leaves it in fuzz/artifacts/TARGET/ and this script prints its log.
#
#   fuzz/run.sh                       # 60 s per target
#   fuzz/run.sh 600 api spec          # ten minutes each for two targets
#   fuzz/run.sh --minimize [TARGETS]  # fold what runs found into fuzz/corpus/, minimized
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`) and a C++ compiler (libFuzzer);
# the stable toolchain works with RUSTC_BOOTSTRAP=1 and no sanitizer, as here.
set -euo pipefail
cd "$(dirname "$0")"
minimize=0
if [ "${1:-}" = "--minimize" ]; then
  minimize=1
else
  seconds="${1:-60}"
fi
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec telemetry stdio api)
export RUSTC_BOOTSTRAP=1
# 16 codegen units: the build takes a fraction of cargo-fuzz's default single unit, for
# somewhat slower executions; what CI's minute per target wants.
build=(--sanitizer none --codegen-units 16)

cargo fuzz build "${build[@]}"

if [ $minimize = 1 ]; then
  # libFuzzer's set-cover merge keeps, from every input given, a small set that reaches every
  # code edge they reach together (edges only, not hit counts: a corpus of a few hundred
  # small files rather than thousands), preferring the smaller ones; it replaces
  # fuzz/corpus/TARGET.
  for t in "${targets[@]}"; do
    new="$(mktemp -d)"
    mkdir -p "corpus/$t" "target/found/$t"
    cargo fuzz run "${build[@]}" "$t" "$new" "corpus/$t" "target/found/$t" -- \
      -set_cover_merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=10 >"$new.log" 2>&1 ||
      { tail -40 "$new.log" >&2; rm -rf "$new" "$new.log"; exit 1; }
    rm -rf "corpus/$t" "$new.log"
    mv "$new" "corpus/$t"
    echo "fuzz $t: corpus $(ls "corpus/$t" | wc -l) inputs, $(cat "corpus/$t"/* | wc -c) bytes"
  done
  exit 0
fi
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

run() {
  local t="$1"
  mkdir -p "target/found/$t" "corpus/$t"
  cargo fuzz run "${build[@]}" "$t" "target/found/$t" "corpus/$t" "seeds/$t" -- \
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
  echo "fuzz $t: ${seconds} s, ${runs} executions, $(ls "target/found/$t" | wc -l) inputs found here so far (fuzz/target/found/$t)"
done
if [ ${#failed[@]} -gt 0 ]; then
  for t in "${failed[@]}"; do
    echo "== fuzz target $t failed; its log:" >&2
    tail -60 "$logs/$t" >&2
  done
  exit 1
fi
