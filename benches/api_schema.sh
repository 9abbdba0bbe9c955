#!/usr/bin/env bash
# An OpenAPI-driven run against `knobs serve`: Schemathesis (from PyPI, in its own virtualenv
# under target/) reads /v1/openapi.json and sends generated requests for SECONDS (default 120),
# checking every answer: no 5xx, every status and body as the document declares, invalid
# requests refused, auth enforced. Exit status: Schemathesis's (0: no failure).
#
#   benches/api_schema.sh          # 2 minutes, SQLite storage in a temp folder
#   benches/api_schema.sh 600
#   KNOBS=target/debug/knobs benches/api_schema.sh 60    # the binary `cargo test` built (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-120}"
venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi
knobs="${KNOBS:-target/release/knobs}"
[ -n "${KNOBS:-}" ] || [ -x "$knobs" ] || cargo build --release
dir="$(mktemp -d)"
token="api-schema-$(date +%s%N)"
KNOBS_TOKEN="$token" "$knobs" serve --storage "$dir/knobs.db" --port 0 -q >"$dir/out" 2>"$dir/err" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do
  grep -q '^listening on ' "$dir/out" && break
  sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$dir/out" | head -1)"
[ -n "$url" ] || { echo "knobs serve did not start:" >&2; cat "$dir/err" >&2; exit 1; }
"$venv/bin/schemathesis" --config-file benches/schemathesis.toml run "$url/v1/openapi.json" \
  -H "Authorization: Bearer $token" --max-time "$seconds" --seed 1 --no-color
