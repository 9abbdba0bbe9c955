#!/usr/bin/env bash
# Tune a private PostgreSQL with knobs, then re-measure what it recommends.
#
#   configs/pgbench/run.sh
#
# Starts PostgreSQL in a temporary folder (Unix socket only, no TCP port),
# loads pgbench's tables (scale $PGBENCH_SCALE), runs the study in
# pgbench.yaml ($TRIALS trials of $PGBENCH_SECONDS s each; the run ends with
# knobs' confirmation phase), then re-measures rank 1 beside the baseline
# $REMEASURE times, interleaved (baseline, rank 1, baseline, rank 1, ...),
# with `knobs evaluate`. The server is stopped and the folder removed on exit,
# however the script ends. Results go to $OUT (default configs/pgbench/results).
#
# Exit 77 (and a line saying why) when PostgreSQL's programs are missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
TRIALS="${TRIALS:-40}"
REMEASURE="${REMEASURE:-5}"
export PGBENCH_SECONDS="${PGBENCH_SECONDS:-10}"
PGBENCH_SCALE="${PGBENCH_SCALE:-10}"
OUT="${OUT:-$here/results}"
KNOBS="${KNOBS:-$root/target/release/knobs}"

find_bin() {
  command -v "$1" 2>/dev/null && return
  ls /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}
declare -A bin
for b in initdb pg_ctl pgbench psql; do
  bin[$b]="$(find_bin "$b" || true)"
  if [ -z "${bin[$b]}" ]; then
    echo "skipped: PostgreSQL's \`$b\` is not installed (Debian: apt-get install postgresql postgresql-contrib)"
    exit 77
  fi
done
export PATH="$(dirname "${bin[pgbench]}"):$(dirname "${bin[pg_ctl]}"):$PATH"
if [ ! -x "$KNOBS" ]; then
  (cd "$root" && cargo build --release --quiet)
fi

# PostgreSQL refuses to run as root: then the server runs as an unprivileged user.
as_server=()
db_user="$(id -un)"
if [ "$(id -u)" = 0 ]; then
  db_user=postgres
  id "$db_user" >/dev/null 2>&1 || db_user=nobody
  as_server=(runuser -u "$db_user" --)
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/knobs-pgbench.XXXXXX")"
export PGDATA="$tmp/data" PGHOST="$tmp" PGPORT="${PGPORT_PRIVATE:-5499}" PGUSER="$db_user"
export PG_CTL="${as_server[*]} ${bin[pg_ctl]}"
cleanup() {
  "${as_server[@]}" "${bin[pg_ctl]}" -D "$PGDATA" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
[ "$(id -u)" = 0 ] && chown "$db_user" "$tmp"

echo "== starting PostgreSQL in $tmp"
"${as_server[@]}" "${bin[initdb]}" -D "$PGDATA" -U "$db_user" --auth=trust -E UTF8 >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log"; exit 1; }
"${as_server[@]}" "${bin[pg_ctl]}" -D "$PGDATA" -w -l "$PGDATA/server.log" \
  -o "-k $tmp -p $PGPORT -c listen_addresses=''" start >/dev/null
psql -X -q -d postgres -c "CREATE DATABASE bench"
pgbench -i -q -s "$PGBENCH_SCALE" bench >/dev/null 2>&1

echo "== tuning: $TRIALS trials of ${PGBENCH_SECONDS}s"
mkdir -p "$OUT"
rm -f "$OUT/pgbench.db"
"$KNOBS" run "$here/pgbench.yaml" --trials "$TRIALS" --storage "$OUT/pgbench.db" --out "$OUT" --no-progress \
  | tee "$OUT/results.txt"

echo "== re-measuring rank 1 beside the baseline, $REMEASURE times each, interleaved"
python3 - "$OUT/pgbench/recommendations.json" "$OUT/rank1.json" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
json.dump(recs["recommendations"][0]["config"], open(sys.argv[2], "w"))
PY
rm -f "$OUT"/remeasure-*.json
for i in $(seq "$REMEASURE"); do
  "$KNOBS" -q evaluate "$here/pgbench.yaml" --config "$OUT/rank1.json" --json >"$OUT/remeasure-$i.json"
done
python3 - "$OUT/pgbench/recommendations.json" "$OUT"/remeasure-*.json <<'PY' | tee "$OUT/remeasure.txt"
import json, statistics as st, sys
base, top = [], []
for path in sys.argv[2:]:
    for c in json.load(open(path))["evaluations"]:
        (base if c["label"] == "baseline" else top).append(c["metrics"]["tps"])
recs = json.load(open(sys.argv[1]))
imp = recs["recommendations"][0].get("improvement") or {}
gains = [100 * (t - b) / b for b, t in zip(base, top)]
print(f"baseline tps: {', '.join(f'{v:.0f}' for v in base)} (mean {st.mean(base):.0f})")
print(f"rank 1 tps:   {', '.join(f'{v:.0f}' for v in top)} (mean {st.mean(top):.0f})")
print(f"re-measured improvement: {100 * (st.mean(top) - st.mean(base)) / st.mean(base):+.1f}% "
      f"(pairs: {', '.join(f'{g:+.1f}%' for g in gains)})")
iv = imp.get("interval_percent")
print(f"knobs reported: {imp.get('percent', float('nan')):+.1f}%"
      + (f", 90% interval [{iv[0]:+.1f}%, {iv[1]:+.1f}%]" if iv else "")
      + (f", P(better) {imp['probability_better']:.2f}" if "probability_better" in imp else ""))
PY
