#!/usr/bin/env python3
"""Insert-heavy SQLite workload, measured for one configuration.

Usage: bench.py --cache-size N --page-size N --journal-mode M --synchronous S
                [--rows N] [--batch N]

Creates a fresh database in a temporary directory, inserts --rows rows of
realistic width in transactions of --batch rows each (as an ingest service
does), then runs a small read query, and prints one JSON line of metrics:

  {"rows_per_s": ..., "insert_s": ..., "query_ms": ..., "db_mb": ...}

Everything else goes to stderr. Exit status is non-zero on failure.
"""
import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache-size", type=int, required=True, help="PRAGMA cache_size in KiB")
    ap.add_argument("--page-size", type=int, required=True)
    ap.add_argument("--journal-mode", required=True)
    ap.add_argument("--synchronous", required=True)
    ap.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_ROWS", "40000")))
    ap.add_argument("--batch", type=int, default=500)
    a = ap.parse_args()

    rng = random.Random(1234)  # same workload for every configuration
    payload = [("user%06d" % rng.randrange(10**6), rng.random() * 1000.0, "x" * rng.randrange(20, 200))
               for _ in range(2000)]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "bench.db")
        con = sqlite3.connect(path, isolation_level=None)
        con.execute(f"PRAGMA page_size={a.page_size}")
        con.execute(f"PRAGMA cache_size=-{a.cache_size}")
        mode = con.execute(f"PRAGMA journal_mode={a.journal_mode}").fetchone()[0]
        con.execute(f"PRAGMA synchronous={a.synchronous}")
        print(f"journal_mode={mode} page_size={a.page_size} cache={a.cache_size}KiB sync={a.synchronous}", file=sys.stderr)
        con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, user TEXT, amount REAL, note TEXT, ts REAL)")
        con.execute("CREATE INDEX events_user ON events(user)")
        t0 = time.perf_counter()
        i = 0
        while i < a.rows:
            n = min(a.batch, a.rows - i)
            con.execute("BEGIN")
            con.executemany("INSERT INTO events (user, amount, note, ts) VALUES (?, ?, ?, ?)",
                            [(*payload[(i + k) % len(payload)], float(i + k)) for k in range(n)])
            con.execute("COMMIT")
            i += n
        insert_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        for u in range(50):
            con.execute("SELECT count(*), sum(amount) FROM events WHERE user = ?", (payload[u * 7][0],)).fetchone()
        query_ms = (time.perf_counter() - t1) * 1000.0 / 50
        con.close()
        size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(json.dumps({"rows_per_s": a.rows / insert_s, "insert_s": insert_s, "query_ms": query_ms,
                      "db_mb": size / 2**20}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
