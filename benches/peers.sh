#!/usr/bin/env bash
# knobs beside Optuna, Nevergrad and pycma, measured by the same harness
# (the team's peer harness: give its folder as PEERS), in one command:
#
#   benches/peers.sh                    # population tier: every knobs optimizer + the peers
#   benches/peers.sh model              # model tier (needs torch for optuna-gp: set PEERS_TORCH=1)
#   KNOBS_ONLY=1 benches/peers.sh       # only knobs (reuse peer runs already in the output dir)
#   SEEDS=0-2 FUNCTIONS=ackley10 benches/peers.sh    # a quick subset
#
# Environment: PEERS (harness dir), VENV (python venv, created if missing),
# OUT (run records; resumable: delete a .jsonl to redo it), WORKERS (default 2).
# Prints the harness summary (markdown) and writes it to $OUT/summary.md.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TIER="${1:-population}"
PEERS="${PEERS:-}"
if [ -z "$PEERS" ] || [ ! -f "$PEERS/harness.py" ]; then
  echo "benches/peers.sh: set PEERS to the peer harness folder (the one with harness.py)" >&2
  exit 2
fi
VENV="${VENV:-$ROOT/target/peers-venv}"
OUT="${OUT:-$ROOT/target/peers/$TIER}"
WORKERS="${WORKERS:-2}"
if [ "$TIER" = population ]; then
  KNOBS_OPTIMIZERS="${KNOBS_OPTIMIZERS:-random sobol genetic cmaes swarm annealing gradient auto}"
else
  # bayes costs milliseconds per ask: the model tier (100 evaluations) is its home.
  KNOBS_OPTIMIZERS="${KNOBS_OPTIMIZERS:-bayes auto}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV (the peers' pinned versions; torch only with PEERS_TORCH=1)" >&2
  python3 -m venv "$VENV"
  pkgs="optuna==5.0.0 cmaes==0.13.1 nevergrad==1.0.12 cma==4.5.0 numpy==2.3.5 scipy==1.17.1"
  if [ "$TIER" != population ]; then pkgs="$pkgs scikit-optimize==0.10.2 scikit-learn==1.9.1"; fi
  if [ "${PEERS_TORCH:-0}" = 1 ]; then pkgs="$pkgs torch==2.15.0"; fi
  "$VENV/bin/pip" install -q $pkgs
fi

echo "== building knobs (release)" >&2
(cd "$ROOT" && cargo build --release --quiet)
BIN="$ROOT/target/release/knobs"

args=(--tier "$TIER" --out "$OUT" --workers "$WORKERS")
[ -n "${SEEDS:-}" ] && args+=(--seeds "$SEEDS")
[ -n "${FUNCTIONS:-}" ] && args+=(--functions "$FUNCTIONS")
[ -n "${BUDGET:-}" ] && args+=(--budget "$BUDGET")
for o in $KNOBS_OPTIMIZERS; do
  args+=(--external "knobs-$o=$BIN stdio --optimizer $o")
done
if [ "${KNOBS_ONLY:-0}" = 1 ]; then
  args+=(--only-plugins)
elif [ -n "${PEER_OPTIMIZERS:-}" ]; then
  args+=(--optimizers "$PEER_OPTIMIZERS")
elif [ "$TIER" = model ] && [ "${PEERS_TORCH:-0}" != 1 ]; then
  # optuna-gp needs torch; run the other model-tier peers.
  args+=(--optimizers optuna-tpe,optuna-cmaes,optuna-random,skopt-gp,ng-ngopt,ng-pso,ng-de,ng-cma,pycma,random)
fi

mkdir -p "$OUT"
echo "== run_peers.py ${args[*]}" >&2
"$VENV/bin/python" "$PEERS/run_peers.py" "${args[@]}"
"$VENV/bin/python" "$PEERS/summarize.py" --runs "$OUT" --overhead "$PEERS/results/overhead.json" | tee "$OUT/summary.md"
