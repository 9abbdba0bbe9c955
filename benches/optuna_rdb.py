#!/usr/bin/env python3
"""Optuna's RDB storage under the load of benches/serve_load.rs, for a side-by-side figure.

What it measures
----------------
The same loop as `cargo bench --bench serve_load` runs against `knobs serve`,
done with Optuna's own RDB storage instead of our HTTP server:

* one study (minimize) on a shared storage, a fresh one per row:
  - SQLite: `sqlite:///<tmpdir>/optuna-<sampler>.db`, a new file in a new
    temporary directory, removed afterwards;
  - PostgreSQL: a new database `optuna_bench_<pid>_<n>` created on the server of
    `--pg-url` (default `postgresql+psycopg2://postgres@127.0.0.1:5432/test`,
    the test server; that database is only used to issue CREATE/DROP DATABASE)
    and dropped (`DROP DATABASE ... WITH (FORCE)`) when the row ends, also on
    error, Ctrl-C or SIGTERM to the parent. Nothing is created in `test` itself.
* `--procs` (default 8) worker processes (multiprocessing, "spawn"), each doing
  its own `optuna.load_study(study_name=..., storage=<url>, sampler=...)` on the
  shared storage. With a URL, Optuna builds its default `RDBStorage` (wrapped in
  its `_CachedStorage`) with Optuna's default engine settings: SQLAlchemy's
  defaults, i.e. for SQLite Python's sqlite3 busy timeout of 5 s, no WAL.
* each process loops until the common deadline:
      t0; trial = study.ask({"x0": FloatDistribution(-5, 10),
                             "x1": FloatDistribution(0, 15)}); t1
      y = branin(x0, x1); study.tell(trial, y); t_end
  and records the ask latency (t1 - t0) and the round-trip latency
  (t_end - t0), both in ms (time.perf_counter).
  branin(x0, x1) = (x1 - 5.1/(4 pi^2) x0^2 + 5/pi x0 - 6)^2 + 10 (1 - 1/(8 pi)) cos(x0) + 10.
* samplers: `random` = `RandomSampler(seed=seed + i)` (our "random"), and
  `tpe` = `TPESampler(seed=seed + i)` with Optuna's default settings (10
  random startup trials, independent sampling). Process i gets seed + i so the
  8 processes do not propose the same points; --seed defaults to 1 like the
  Rust bench. Our "bayes" is GP-based: the TPE row is Optuna's default
  model-based sampler, not the same algorithm.
* start and timing: every process loads its study first and reports ready;
  when all are, the parent takes the common start (time.monotonic, system-wide on
  Linux) and releases them together (a shared Event); each stops starting round trips at
  start + --secs. Elapsed = from the common start to the end of the last
  process's last round trip (so, like the Rust bench, it includes the round
  trips in flight at the deadline). Rate = successful round trips / elapsed.
* percentiles over all processes' samples: sorted[ceil(p*n) - 1] (as `pct` in
  serve_load.rs).
* errors are not hidden: an exception from ask or tell (e.g. SQLite's
  "database is locked" under 8 writers) is counted per row, the loop goes on,
  and the failed round trip is left out of the rate and the percentiles. The
  row prints `errors N`, and each distinct error (phase, type, first line of
  the message, and of its root cause: Optuna wraps sqlite3's "database is
  locked" in StorageInternalError) is listed below it with its count. After the run the parent
  counts the study's COMPLETE trials in the storage (`complete_in_storage` in
  the JSON), which should equal the successful round trips.
* SQLite with Optuna's defaults runs in rollback-journal mode (SQLite's
  default, synchronous=FULL): every commit fsyncs, and one round trip is
  several commits (create trial, one per parameter, the tell). knobs' own
  SQLite storage uses WAL with synchronous=FULL. This script does not change
  the journal mode: the row is Optuna as shipped.
* Optuna's INFO logging ("Trial N finished ...") is set to WARNING in the
  workers, so log formatting is not part of the figure.

`--sqlite-timeout SECS` passes `engine_kwargs={"connect_args": {"timeout": SECS}}`
to `RDBStorage` for SQLite (default: not passed, Optuna's defaults). Use it only
to add a second figure if the defaults make the loop fail outright, and report
both.

Setup (outside the repo; no torch needed)
-----------------------------------------
    python3 -m venv /work/optuna-rdb-venv
    /work/optuna-rdb-venv/bin/pip install optuna==5.0.0 psycopg2-binary

Written and tried with Python 3.11.7, optuna 5.0.0, SQLAlchemy 2.1.9,
alembic 1.20.1, psycopg2-binary 2.9.13, numpy 2.4.6, PostgreSQL 15.

Run
---
    /work/optuna-rdb-venv/bin/python benches/optuna_rdb.py                 # 10 s per row, 8 procs, all rows
    /work/optuna-rdb-venv/bin/python benches/optuna_rdb.py --secs 2 --samplers random --storages sqlite
    /work/optuna-rdb-venv/bin/python benches/optuna_rdb.py --json          # plus one JSON line per row

Options: --secs (10), --procs (8), --samplers random,tpe, --storages
sqlite,postgres, --seed (1), --pg-url, --sqlite-timeout, --json. One line per
(storage, sampler), in the shape of serve_load.rs with `procs` in place of
`clients` and `errors N` at the end:

    sqlite      random  procs 8     N round trips in 10.0 s =   X/s   round trip p50 A ms p99 B ms   ask p50 C ms p99 D ms   errors E

Rows run sampler by sampler, SQLite then PostgreSQL, as serve_load.rs does.
The machine has 2 cores: 8 Python processes compete for them, as the 8 client
threads and the server do in the Rust bench. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import queue
import shutil
import signal
import sys
import tempfile
import time
import traceback

DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
STUDY = "optuna-rdb-load"
READY_TIMEOUT = 300.0  # seconds for all processes to load the study


def branin(x0: float, x1: float) -> float:
    pi = math.pi
    b = 5.1 / (4.0 * pi * pi)
    c = 5.0 / pi
    return (x1 - b * x0 * x0 + c * x0 - 6.0) ** 2 + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * math.cos(x0) + 10.0


def pct(sorted_vals: list[float], p: float) -> float:
    if not sorted_vals:
        return float("nan")
    n = len(sorted_vals)
    return sorted_vals[min(max(math.ceil(p * n), 1), n) - 1]


def make_sampler(name: str, seed: int):
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r} (random, tpe)")


def open_storage(url: str, engine_kwargs: dict | None):
    """The storage argument for create/load_study: the URL itself (Optuna's
    defaults) unless engine_kwargs were asked for."""
    if not engine_kwargs:
        return url
    import optuna

    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else ""


def error_key(phase: str, e: BaseException) -> str:
    """phase, type and first message line of the error, and of its root cause
    (Optuna wraps e.g. sqlite3's "database is locked" in StorageInternalError)."""
    key = f"{phase}: {type(e).__name__}: {first_line(e)}"
    root, seen = e, {id(e)}
    while True:
        nxt = root.__cause__ or root.__context__
        if nxt is None or id(nxt) in seen:
            break
        seen.add(id(nxt))
        root = nxt
    if root is not e:
        key += f" <- {type(root).__module__}.{type(root).__name__}: {first_line(root)}"
    return key


def worker(i, url, engine_kwargs, sampler_name, seed, secs, go, start_val, out):
    parent = os.getppid()
    try:
        import optuna
        from optuna.distributions import FloatDistribution

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(
            study_name=STUDY,
            storage=open_storage(url, engine_kwargs),
            sampler=make_sampler(sampler_name, seed + i),
        )
        dists = {"x0": FloatDistribution(-5.0, 10.0), "x1": FloatDistribution(0.0, 15.0)}
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        out.put(("setup_error", i, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
        return
    out.put(("ready", i))
    while not go.wait(1.0):
        if os.getppid() != parent:  # the parent is gone: never start
            return
    deadline = start_val.value + secs
    rounds: list[float] = []
    asks: list[float] = []
    errors: dict[str, int] = {}
    perf = time.perf_counter
    mono = time.monotonic
    while mono() < deadline:
        t0 = perf()
        try:
            trial = study.ask(dists)
        except Exception as e:  # noqa: BLE001 - counted, never hidden
            k = error_key("ask", e)
            errors[k] = errors.get(k, 0) + 1
            continue
        t1 = perf()
        y = branin(trial.params["x0"], trial.params["x1"])
        try:
            study.tell(trial, y)
        except Exception as e:  # noqa: BLE001
            k = error_key("tell", e)
            errors[k] = errors.get(k, 0) + 1
            continue
        t2 = perf()
        asks.append((t1 - t0) * 1e3)
        rounds.append((t2 - t0) * 1e3)
    end = mono()
    out.put(("done", i, rounds, asks, errors, end))


class PgDatabase:
    """A fresh database on the server of base_url, dropped by drop()."""

    def __init__(self, base_url: str, n: int):
        import sqlalchemy

        self.base = sqlalchemy.engine.make_url(base_url)
        self.name = f"optuna_bench_{os.getpid()}_{n}"
        self.admin = sqlalchemy.create_engine(self.base, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as c:
            c.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.url = self.base.set(database=self.name).render_as_string(hide_password=False)

    def drop(self):
        with self.admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()


def run_row(storage_kind: str, url: str, engine_kwargs, sampler_name: str, args) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Create the study (and the tables) here, then let go of every connection.
    st = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs or {})
    optuna.create_study(study_name=STUDY, storage=st, direction="minimize")
    st.engine.dispose()

    ctx = mp.get_context("spawn")
    go = ctx.Event()
    start_val = ctx.Value("d", 0.0)
    out = ctx.Queue()
    procs = [
        ctx.Process(
            target=worker,
            args=(i, url, engine_kwargs, sampler_name, args.seed, args.secs, go, start_val, out),
            daemon=True,
        )
        for i in range(args.procs)
    ]

    def collect(kind: str, until: float) -> list:
        """Messages of `kind`, one per process. Waits in short slices so that
        SIGINT/SIGTERM are handled at once; fails on a worker's error, on a
        worker that died, or at `until`."""
        got = []
        while len(got) < args.procs:
            try:
                m = out.get(timeout=0.2)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(
                        "worker process(es) died: " + ", ".join(f"pid {p.pid} exit {p.exitcode}" for p in dead)
                    )
                if time.monotonic() > until:
                    raise RuntimeError(f"timed out waiting for {args.procs - len(got)} worker(s) ({kind})")
                continue
            if m[0] == "setup_error":
                raise RuntimeError(f"process {m[1]} could not load the study: {m[2]}")
            if m[0] == kind:
                got.append(m)
        return got

    for p in procs:
        p.start()
    try:
        collect("ready", time.monotonic() + READY_TIMEOUT)
        start = time.monotonic()
        start_val.value = start
        go.set()
        results = collect("done", start + args.secs + 600.0)
        for p in procs:
            p.join(10.0)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()

    elapsed = max(r[5] for r in results) - start
    rounds = sorted(x for r in results for x in r[2])
    asks = sorted(x for r in results for x in r[3])
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r[4].items():
            errors[k] = errors.get(k, 0) + v

    st = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs or {})
    study = optuna.load_study(study_name=STUDY, storage=st)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    complete = sum(1 for s in states if s == optuna.trial.TrialState.COMPLETE)
    running = sum(1 for s in states if s == optuna.trial.TrialState.RUNNING)
    st.engine.dispose()
    del study, st

    return {
        "storage": storage_kind,
        "sampler": sampler_name,
        "procs": args.procs,
        "secs": args.secs,
        "round_trips": len(rounds),
        "elapsed_s": elapsed,
        "per_s": len(rounds) / elapsed,
        "round_trip_p50_ms": pct(rounds, 0.5),
        "round_trip_p99_ms": pct(rounds, 0.99),
        "ask_p50_ms": pct(asks, 0.5),
        "ask_p99_ms": pct(asks, 0.99),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "complete_in_storage": complete,
        "running_in_storage": running,
        "engine_kwargs": engine_kwargs or None,
        "seed": args.seed,
        "optuna": optuna.__version__,
    }


def print_row(row: dict, as_json: bool):
    print(
        f"{row['storage']:<11} {row['sampler']:<7} procs {row['procs']}  "
        f"{row['round_trips']:>7} round trips in {row['elapsed_s']:.1f} s = {row['per_s']:>7.0f}/s   "
        f"round trip p50 {row['round_trip_p50_ms']:>6.2f} ms p99 {row['round_trip_p99_ms']:>7.2f} ms   "
        f"ask p50 {row['ask_p50_ms']:>6.2f} ms p99 {row['ask_p99_ms']:>7.2f} ms   errors {row['errors']}",
        flush=True,
    )
    for k, v in sorted(row["error_kinds"].items(), key=lambda kv: -kv[1]):
        print(f"    {v:>6} x {k}", flush=True)
    if row["complete_in_storage"] != row["round_trips"] or row["running_in_storage"]:
        print(
            f"    note: {row['complete_in_storage']} COMPLETE and {row['running_in_storage']} RUNNING trials "
            f"in storage for {row['round_trips']} successful round trips",
            flush=True,
        )
    if as_json:
        print(json.dumps(row), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--secs", type=float, default=10.0, help="wall time per row (default 10)")
    ap.add_argument("--procs", type=int, default=8, help="worker processes (default 8)")
    ap.add_argument("--samplers", default="random,tpe", help="comma list of random,tpe")
    ap.add_argument("--storages", default="sqlite,postgres", help="comma list of sqlite,postgres")
    ap.add_argument("--seed", type=int, default=1, help="base seed; process i uses seed + i (default 1)")
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL, help=f"server to create the throwaway database on (default {DEFAULT_PG_URL})")
    ap.add_argument(
        "--sqlite-timeout",
        type=float,
        default=None,
        help='pass engine_kwargs={"connect_args": {"timeout": SECS}} for SQLite (default: Optuna defaults)',
    )
    ap.add_argument("--json", action="store_true", help="also print one JSON line per row")
    args = ap.parse_args()
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    storages = [s.strip() for s in args.storages.split(",") if s.strip()]
    for s in samplers:
        if s not in ("random", "tpe"):
            ap.error(f"unknown sampler {s!r}")
    for s in storages:
        if s not in ("sqlite", "postgres"):
            ap.error(f"unknown storage {s!r}")

    # SIGTERM unwinds like Ctrl-C, so the throwaway database and files are still removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    import optuna
    import sqlalchemy

    print(
        f"# optuna {optuna.__version__}, SQLAlchemy {sqlalchemy.__version__}, Python {sys.version.split()[0]}; "
        f"{args.procs} processes, {args.secs:g} s per row, seed {args.seed}"
        + (f", SQLite connect timeout {args.sqlite_timeout:g} s" if args.sqlite_timeout is not None else ""),
        flush=True,
    )
    failed = False
    n = 0
    for sampler_name in samplers:
        for kind in storages:
            n += 1
            try:
                if kind == "sqlite":
                    tmp = tempfile.mkdtemp(prefix="optuna-rdb-")
                    try:
                        url = f"sqlite:///{tmp}/optuna-{sampler_name}.db"
                        ek = {"connect_args": {"timeout": args.sqlite_timeout}} if args.sqlite_timeout is not None else None
                        row = run_row(kind, url, ek, sampler_name, args)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                else:
                    db = PgDatabase(args.pg_url, n)
                    try:
                        row = run_row(kind, db.url, None, sampler_name, args)
                    finally:
                        db.drop()
                print_row(row, args.json)
            except Exception as e:  # noqa: BLE001 - a row that fails outright is reported, the rest still run
                failed = True
                print(f"{kind:<11} {sampler_name:<7} procs {args.procs}  FAILED: {type(e).__name__}: {e}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the finally blocks have removed the database / files
        print("interrupted", file=sys.stderr)
        sys.exit(130)
