#!/usr/bin/env python3
"""The noisy tier: knobs beside Optuna's TPE and GP samplers and random search on the peer
harness's model-tier problems with noise added to every evaluation, judged by the TRUE
(noise-free) value of the configuration each one recommends.

    PEERS=../shared/bench/peers target/peers-venv/bin/python benches/noisy.py
    ... benches/noisy.py --optimizers knobs-auto --seeds 0-2 --noise gauss20   # a subset
    ... benches/noisy.py --summary-only                                         # tables again

What is measured, per (problem, noise, optimizer, seed):

- noise: `gauss5` / `gauss20` add Gaussian noise with a standard deviation of 5% / 20% of the
  objective's spread across the box (the standard deviation of its values at 4096 uniform
  random points, fixed seed); `heavy` adds Student-t noise with 3 degrees of freedom, scale 5%
  of the spread (occasional outliers several times larger); `none` (not run by default) is the
  same runs without noise, a control lane that shows what the noise itself costs;
- the recommended configuration: for knobs, what a user following `knobs stdio` deploys at
  `close` (`"recommend": true`): its rank 1, ranked by its noise-aware estimate after its
  confirmation phase, or the baseline when the reply says `"better_than_baseline": false` (the
  table's "keep today's values"); rank 1 alone is reported beside it; for the peers, their best
  observed trial (Optuna's `best_trial`), which is what their users deploy;
- its true value, the true value of the baseline (every coordinate at 30% of its range, the
  first choice of a categorical: "today's settings", given to knobs as the space's defaults;
  knobs spends evaluations measuring it, the peers do not), and for knobs whether its 90%
  improvement interval contains the true improvement (calibration).

Runs are appended to OUT/runs.jsonl (resumable: a recorded run is not repeated) and the
summary is printed as markdown and written to OUT/summary.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from typing import Any, Dict, List, Tuple

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBLEMS = ["branin", "hartmann6", "ackley10", "rosenbrock10", "mixed_service"]
NOISES = ["gauss5", "gauss20", "heavy"]
# `none`: the same runs without noise, a control lane (not run by default).
ALL_NOISES = NOISES + ["none"]
PEER_OPTIMIZERS = ["optuna-tpe", "optuna-gp", "random"]
BASELINE_AT = 0.3


def peers_path() -> str:
    p = os.environ.get("PEERS", "")
    if not p or not os.path.isfile(os.path.join(p, "harness.py")):
        sys.exit(f"benches/{os.path.basename(sys.argv[0])}: set PEERS to the peer harness folder (the one with harness.py)")
    return os.path.abspath(p)


def setup_imports() -> None:
    p = peers_path()
    if p not in sys.path:
        sys.path.insert(0, p)


def spread(problem) -> float:
    """Standard deviation of the objective over 4096 uniform random points of the box."""
    import numpy as np
    import peers

    rng = np.random.default_rng(20261204)
    d = len(problem.space.params)
    vals = [problem(peers.from_unit(problem.space, rng.random(d))) for _ in range(4096)]
    return float(np.std(vals))


def baseline(problem) -> Dict[str, Any]:
    import numpy as np
    import peers

    return problem.space.coerce(peers.from_unit(problem.space, np.full(len(problem.space.params), BASELINE_AT)))


def noise_draw(rng, kind: str, scale: float) -> float:
    if kind == "gauss5":
        return float(rng.normal(0.0, 0.05 * scale))
    if kind == "gauss20":
        return float(rng.normal(0.0, 0.20 * scale))
    if kind == "heavy":
        return float(rng.standard_t(3) * 0.05 * scale)
    if kind == "none":
        return 0.0
    raise ValueError(f"unknown noise {kind}")


def knobs_class(binary: str, optimizer: str, base: Dict[str, Any]):
    """The harness's external-process adapter, telling knobs the baseline (as the space's
    defaults) and asking for its recommendation at close."""
    import harness

    class Knobs(harness.ProcessOptimizer):
        command = [binary, "stdio", "--optimizer", optimizer]

        def __init__(self, space, budget, seed):  # noqa: D401 - the harness's signature
            harness.AskTellOptimizer.__init__(self, space, budget, seed)
            import subprocess

            self.proc = subprocess.Popen(list(self.command), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, bufsize=1)
            self.pending = []
            self.closed_reply = None
            js = space.to_json()
            for p in js["params"]:
                p["default"] = base[p["name"]]
            init = {"op": "init", "protocol": 1, "space": js, "budget": budget, "seed": seed,
                    "direction": "minimize"}
            init.update(json.loads(os.environ.get("NOISY_KNOBS_INIT", "{}")))
            self.info = self._call(init)

        def close(self):
            if self.proc.poll() is None and self.closed_reply is None:
                self._flush()
                self.closed_reply = self._call({"op": "close", "recommend": True})
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait()

    return Knobs


def run_one(job: Tuple[str, str, str, int, int, str]) -> Dict[str, Any]:
    try:
        return measure(*job)
    except Exception as e:  # recorded, not fatal: the other runs go on
        opt_name, fn, noise, seed, budget, _ = job
        return {"optimizer": opt_name, "function": fn, "noise": noise, "seed": seed, "budget": budget,
                "status": "error", "error": f"{type(e).__name__}: {e}", "true_value": math.nan, "f_star": 0.0,
                "wall_s": 0.0}


def measure(opt_name: str, fn: str, noise: str, seed: int, budget: int, binary: str) -> Dict[str, Any]:
    setup_imports()
    import numpy as np
    import functions
    import harness
    import peers

    problem = functions.get_problem(fn)
    scale = spread(problem)
    base = baseline(problem)
    rng = np.random.default_rng([seed, ALL_NOISES.index(noise), PROBLEMS.index(fn), 7])
    noisy = dataclasses.replace(problem, fn=lambda p: problem.fn(p) + noise_draw(rng, noise, scale))
    if opt_name.startswith("knobs-"):
        cls = knobs_class(binary, opt_name[len("knobs-"):], base)
    else:
        cls = peers.REGISTRY[opt_name]
        cls.preload()
    ev = harness.Evaluator(noisy, budget)
    t0 = time.perf_counter()
    opt = cls(problem.space, budget, seed)
    rec: Dict[str, Any] = {"optimizer": opt_name, "function": fn, "noise": noise, "seed": seed, "budget": budget,
                           "f_star": problem.f_star, "spread": scale}
    try:
        stopped = harness.drive_ask_tell(opt, ev)
    finally:
        opt.close()
    rec["wall_s"] = time.perf_counter() - t0
    rec["n_evals"] = ev.n
    rec["stopped_early"] = stopped
    base_true = problem(base)
    if opt_name.startswith("knobs-"):
        reply = opt.closed_reply or {}
        r = reply.get("recommended") or {}
        params = problem.space.coerce(r["params"]) if r.get("params") else ev.best_params
        imp = r.get("improvement") or {}
        rec["knobs"] = {"value": r.get("value"), "evaluations": r.get("evaluations"),
                        "improvement": imp, "confirmation": reply.get("confirmation")}
        b = reply.get("best") or {}
        if b.get("params"):
            # What a user of knobs would deploy by taking its best single measurement instead.
            rec["best_observed_true"] = problem(problem.space.coerce(b["params"]))
        true_imp = base_true - problem(params)
        iv = imp.get("interval")
        rec["interval_contains"] = None if not iv else bool(iv[0] <= true_imp <= iv[1])
    else:
        params = ev.best_params
    rec["recommended"] = params
    rec["true_value"] = problem(params)
    if opt_name.startswith("knobs-"):
        # What a user following knobs deploys: rank 1, or today's values when knobs says that no
        # recommendation beats them with 80% probability ("keep today's values").
        rec["keep_baseline"] = (opt.closed_reply or {}).get("better_than_baseline") is False
        rec["deployed_true"] = base_true if rec["keep_baseline"] else rec["true_value"]
    rec["best_observed"] = ev.best
    rec["baseline_true"] = base_true
    rec["status"] = "ok"
    return rec


def parse_seeds(s: str) -> List[int]:
    out: List[int] = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def load(path: str) -> List[Dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def summarize(runs: List[Dict[str, Any]]) -> str:
    """Median true regret per (problem, noise, optimizer), wins of each knobs optimizer, and the
    calibration of knobs' improvement intervals."""
    by: Dict[Tuple[str, str, str], List[float]] = {}
    for r in runs:
        if r.get("status") == "ok":
            v = r.get("deployed_true", r["true_value"])
            by.setdefault((r["function"], r["noise"], r["optimizer"]), []).append(v - r["f_star"])
    opts = sorted({k[2] for k in by}, key=lambda o: (not o.startswith("knobs"), o))
    out = ["Median true regret (true value of the recommended configuration minus the optimum; lower "
           "is better; for knobs, what its verdict deploys) over seeds; in brackets, the seeds run.", ""]
    out.append("| problem | noise | " + " | ".join(opts) + " |")
    out.append("|---|---|" + "---:|" * len(opts))
    wins: Dict[Tuple[str, str], int] = {}
    cells: Dict[Tuple[str, str], Dict[str, float]] = {}
    for fn in PROBLEMS:
        for noise in ALL_NOISES:
            med = {o: statistics.median(by[(fn, noise, o)]) for o in opts if (fn, noise, o) in by}
            if not med:
                continue
            cells[(fn, noise)] = med
            best = min(med.values())
            row = []
            for o in opts:
                if o in med:
                    v = f"{med[o]:.4g} ({len(by[(fn, noise, o)])})"
                    row.append(f"**{v}**" if med[o] == best else v)
                else:
                    row.append("-")
            out.append(f"| {fn} | {noise} | " + " | ".join(row) + " |")
    out.append("")
    knobs = [o for o in opts if o.startswith("knobs")]
    for k in knobs:
        out.append(f"{k}: what it deploys, its rank 1, and its own best single measurement (median true "
                   "regret; runs where it said to keep today's values):")
        out.append("")
        out.append("| problem | noise | deployed | rank 1 | best observed | kept today's values |")
        out.append("|---|---|---:|---:|---:|---:|")
        for fn in PROBLEMS:
            for noise in ALL_NOISES:
                rs = [r for r in runs if r.get("optimizer") == k and r["function"] == fn and r["noise"] == noise
                      and r.get("status") == "ok" and "best_observed_true" in r]
                if rs:
                    dep = statistics.median(r.get("deployed_true", r["true_value"]) - r["f_star"] for r in rs)
                    rec = statistics.median(r["true_value"] - r["f_star"] for r in rs)
                    obs = statistics.median(r["best_observed_true"] - r["f_star"] for r in rs)
                    kept = sum(1 for r in rs if r.get("keep_baseline"))
                    out.append(f"| {fn} | {noise} | {dep:.4g} | {rec:.4g} | {obs:.4g} | {kept} of {len(rs)} |")
        out.append("")
    peers_ = [o for o in opts if not o.startswith("knobs")]
    for k in knobs:
        for noise in ALL_NOISES:
            n = sum(1 for (fn, ns), med in cells.items()
                    if ns == noise and k in med and all(p in med and med[k] < med[p] for p in peers_))
            total = sum(1 for (fn, ns), med in cells.items() if ns == noise and k in med)
            wins[(k, noise)] = n
            out.append(f"- {k}, {noise}: better than every peer ({', '.join(peers_)}) on {n} of {total} problems")
    out.append("")
    for k in knobs:
        rs = [r for r in runs if r.get("optimizer") == k and r.get("status") == "ok"]
        with_iv = [r for r in rs if r.get("interval_contains") is not None]
        inside = sum(1 for r in with_iv if r["interval_contains"])
        share = f"{100.0 * inside / len(with_iv):.1f}%" if with_iv else "-"
        out.append(f"- {k}: the 90% improvement interval contains the true improvement in {inside} of "
                   f"{len(with_iv)} runs ({share}); {len(rs) - len(with_iv)} runs gave no interval")
        for noise in ALL_NOISES:
            w = [r for r in with_iv if r["noise"] == noise]
            if w:
                out.append(f"  - {noise}: {sum(1 for r in w if r['interval_contains'])} of {len(w)}")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--optimizers", default="knobs-auto," + ",".join(PEER_OPTIMIZERS))
    ap.add_argument("--functions", default=",".join(PROBLEMS))
    ap.add_argument("--noise", default=",".join(NOISES))
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "noisy"))
    ap.add_argument("--knobs", default=os.path.join(ROOT, "target", "release", "knobs"))
    ap.add_argument("--summary-only", action="store_true")
    ap.add_argument("--knobs-init", default="{}",
                    help='extra fields of knobs\' init message, e.g. \'{"confirm": false}\' (use its own --out)')
    args = ap.parse_args()
    os.environ["NOISY_KNOBS_INIT"] = json.dumps(json.loads(args.knobs_init))  # read by the pool's workers
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "runs.jsonl")
    if not args.summary_only:
        setup_imports()
        done = {(r["optimizer"], r["function"], r["noise"], r["seed"]) for r in load(path) if r.get("status") == "ok"}
        jobs = [(o, fn, nz, s, args.budget, os.path.abspath(args.knobs))
                for o in args.optimizers.split(",") for fn in args.functions.split(",")
                for nz in args.noise.split(",") for s in parse_seeds(args.seeds)
                if (o, fn, nz, s) not in done]
        # The slow ones first, so that the two lanes end together.
        jobs.sort(key=lambda j: (j[0] != "optuna-gp", j[0]))
        print(f"== {len(jobs)} runs ({len(done)} already recorded) -> {path}", file=sys.stderr)
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool, open(path, "a") as f:
            for i, rec in enumerate(pool.imap_unordered(run_one, jobs), 1):
                f.write(json.dumps(rec) + "\n")
                f.flush()
                print(f"[{i}/{len(jobs)}] {rec['optimizer']} {rec['function']} {rec['noise']} seed {rec['seed']}: "
                      f"true regret {rec['true_value'] - rec['f_star']:.4g} ({rec['wall_s']:.1f} s)", file=sys.stderr)
    summary = summarize(load(path))
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)


if __name__ == "__main__":
    main()
