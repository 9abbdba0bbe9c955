#!/usr/bin/env python3
"""Measure one PostgreSQL configuration with pgbench (TPC-B-like load).

Usage: bench.py --set NAME=VALUE ... [--seconds N] [--clients N]

Applies the settings with ALTER SYSTEM to the private instance that run.sh
started (PGHOST/PGPORT/PGDATA in the environment), restarts it so that every
setting takes effect (shared_buffers and wal_buffers need a restart), runs
pgbench for --seconds and prints one JSON line:

  {"tps": ..., "latency_ms": ...}

Durability settings (fsync, synchronous_commit, full_page_writes) are never
touched: they stay on. Everything else goes to stderr; a non-zero exit fails
the trial.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys

# Settings this script may change, with their units as ALTER SYSTEM takes them.
ALLOWED = {
    "shared_buffers": "MB",
    "wal_buffers": "kB",
    "max_wal_size": "MB",
    "checkpoint_timeout": "s",
    "checkpoint_completion_target": "",
    "commit_delay": "",
    "commit_siblings": "",
    "wal_compression": "",
    "wal_writer_delay": "ms",
    "bgwriter_lru_maxpages": "",
}


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"{shlex.join(cmd)} exited with {r.returncode}")
    return r.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("PGBENCH_SECONDS", "10")))
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    pg_ctl = shlex.split(os.environ.get("PG_CTL", "pg_ctl"))
    data = os.environ["PGDATA"]
    statements = ["ALTER SYSTEM RESET ALL;"]
    for item in a.set:
        name, _, value = item.partition("=")
        if name not in ALLOWED or not re.fullmatch(r"[A-Za-z0-9_.]+", value):
            raise SystemExit(f"refusing setting {item!r}")
        statements.append(f"ALTER SYSTEM SET {name} = '{value}{ALLOWED[name]}';")
    # One -c per statement: ALTER SYSTEM cannot run inside a transaction block.
    run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"] + [x for s in statements for x in ("-c", s)])
    run(pg_ctl + ["-D", data, "-w", "-m", "fast", "restart", "-l", os.path.join(data, "server.log")])
    out = run(["pgbench", "-n", "-M", "prepared", "-c", str(a.clients), "-j", "2", "-T", str(a.seconds), "bench"])
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    lat = re.search(r"latency average = ([0-9.]+) ms", out)
    if not tps or not lat:
        sys.stderr.write(out)
        raise SystemExit("no tps in pgbench's output")
    print(json.dumps({"tps": float(tps.group(1)), "latency_ms": float(lat.group(1))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
