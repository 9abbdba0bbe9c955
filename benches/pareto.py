#!/usr/bin/env python3
"""The Pareto tiers: knobs beside Optuna's multi-objective samplers, pymoo's NSGA-II and
random search on problems with known fronts, judged by the hypervolume of the front each finds.

    PEERS=../shared/bench/peers target/peers-venv/bin/python benches/pareto.py            # model tier
    ... benches/pareto.py --tier population                                              # 5,000 evaluations
    ... benches/pareto.py --optimizers knobs-auto,optuna-tpe --problems zdt1 --seeds 0-2  # a subset
    ... benches/pareto.py --summary-only

Problems (written here from their published definitions; every objective minimized):

- zdt1, zdt2, zdt3 (Zitzler, Deb and Thiele 2000): 10 variables in [0, 1] in the model tier,
  30 in the population tier; reference point (11, 11);
- dtlz2 (Deb, Thiele, Laumanns and Zitzler 2002): 3 objectives, 7 variables (12 in the
  population tier); reference (1.1, 1.1, 1.1);
- service: the harness's mixed_service latency (pool size, cache TTL, GC threshold,
  eviction) against a memory model of the same settings (connections, cache entries kept by
  the TTL, heap grown by the GC threshold), a mixed int / log-float / categorical space;
  reference (60 ms, 1600 MB).

The hypervolume is computed here, the same way for every optimizer (pymoo's exact indicator),
from the non-dominated set of every evaluation of a run. Overhead is the time an optimizer
spends in its own calls (ask, tell, for knobs the process round trips), per evaluation.

Optimizers: knobs-NAME drives `knobs stdio --optimizer NAME` with protocol 2 (knobs-auto,
knobs-parego, knobs-nsga2, knobs-nsga3); optuna-nsga2, optuna-tpe, optuna-gp (Optuna's
NSGAIISampler, TPESampler, GPSampler with their defaults, several directions) and
optuna-random; pymoo-nsga2 (pymoo's NSGA2, default population 100, on the unit cube,
categoricals by bins).

Runs are appended to OUT/runs.jsonl (resumable) and the summary is written to OUT/summary.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Sequence, Tuple

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from noisy import load, parse_seeds, setup_imports  # noqa: E402  (PEERS, seed ranges, runs.jsonl as the noisy tier)
PROBLEMS = ["zdt1", "zdt2", "zdt3", "dtlz2", "service"]
TIERS = {
    "model": {"budget": 100, "seeds": "0-9",
              "optimizers": ["knobs-auto", "optuna-nsga2", "optuna-tpe", "optuna-gp", "pymoo-nsga2", "optuna-random"]},
    "population": {"budget": 5000, "seeds": "0-4", "optimizers": ["knobs-nsga2", "optuna-nsga2", "pymoo-nsga2"]},
}


# --- problems ---------------------------------------------------------------------------------


def zdt(kind: int, x: Sequence[float]) -> List[float]:
    f1 = x[0]
    g = 1.0 + 9.0 * sum(x[1:]) / (len(x) - 1)
    r = f1 / g
    h = {1: 1.0 - math.sqrt(r), 2: 1.0 - r * r, 3: 1.0 - math.sqrt(r) - r * math.sin(10.0 * math.pi * f1)}[kind]
    return [f1, g * h]


def dtlz2(x: Sequence[float]) -> List[float]:
    g = sum((v - 0.5) ** 2 for v in x[2:])
    a, b = x[0] * math.pi / 2.0, x[1] * math.pi / 2.0
    return [(1.0 + g) * math.cos(a) * math.cos(b), (1.0 + g) * math.cos(a) * math.sin(b), (1.0 + g) * math.sin(a)]


# Memory of the service's settings: connections, cache entries kept by the TTL (LFU keeps its
# counters, FIFO the least), heap grown by the GC threshold.
SERVICE_CACHE_MB = {"lru": 1.0, "lfu": 1.15, "fifo": 0.9}


def service(p: Dict[str, Any]) -> List[float]:
    import functions

    c, t, g, k = int(p["pool_size"]), float(p["cache_ttl_s"]), int(p["gc_threshold"]), str(p["eviction"])
    latency = functions.mixed_service_raw(c, t, g, k)
    x = t / 30.0
    memory = 4.0 * c + 600.0 * (x / (1.0 + x)) * SERVICE_CACHE_MB[k] + g / 200.0
    return [latency, memory]


def problem(name: str, tier: str):
    """(space, objective function of a params dict, reference point, objective names)."""
    setup_imports()
    from functions import Param, Space

    def box(d: int) -> Space:
        return Space([Param(f"x{i}", "float", 0.0, 1.0) for i in range(d)])

    def vec(p: Dict[str, Any], d: int) -> List[float]:
        return [float(p[f"x{i}"]) for i in range(d)]

    big = tier == "population"
    if name.startswith("zdt"):
        d, kind = (30 if big else 10), int(name[3])
        return box(d), (lambda p: zdt(kind, vec(p, d))), [11.0, 11.0], ["f1", "f2"]
    if name == "dtlz2":
        d = 12 if big else 7
        return box(d), (lambda p: dtlz2(vec(p, d))), [1.1, 1.1, 1.1], ["f1", "f2", "f3"]
    if name == "service":
        space = Space([
            Param("pool_size", "int", 1, 256),
            Param("cache_ttl_s", "float", 1.0, 86400.0, log=True),
            Param("gc_threshold", "int", 100, 100000, log=True),
            Param("eviction", "categorical", choices=("lru", "lfu", "fifo")),
        ])
        return space, service, [60.0, 1600.0], ["latency_ms", "memory_mb"]
    raise SystemExit(f"unknown problem {name}")


def hypervolume(points: List[List[float]], reference: List[float]) -> float:
    import numpy as np
    from pymoo.indicators.hv import HV

    inside = [p for p in points if all(v < r for v, r in zip(p, reference))]
    if not inside:
        return 0.0
    return float(HV(ref_point=np.array(reference))(np.array(inside)))


# --- optimizers -------------------------------------------------------------------------------


class Knobs:
    """`knobs stdio` with protocol 2."""

    def __init__(self, binary: str, optimizer: str, space, names, budget: int, seed: int):
        self.proc = subprocess.Popen([binary, "stdio", "--optimizer", optimizer], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self.pending: List[Dict[str, Any]] = []
        self.call({"op": "init", "protocol": 2, "space": space.to_json(), "budget": budget, "seed": seed,
                   "objectives": [{"name": n} for n in names]})

    def call(self, msg: Dict[str, Any]) -> Dict[str, Any]:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"knobs: {reply.get('error')}")
        return reply

    def ask(self, n: int) -> List[Tuple[Any, Dict[str, Any]]]:
        if self.pending:
            self.call({"op": "tell", "results": self.pending})
            self.pending = []
        return [(t["id"], t["params"]) for t in self.call({"op": "ask", "n": n})["trials"]]

    def tell(self, token, values: List[float]) -> None:
        self.pending.append({"id": token, "values": values})

    def close(self) -> None:
        try:
            if self.pending:
                self.call({"op": "tell", "results": self.pending})
            self.call({"op": "close"})
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()


class Optuna:
    def __init__(self, sampler: str, space, names, budget: int, seed: int):
        import optuna
        import peers

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if sampler == "GPSampler":
            import torch

            torch.set_num_threads(1)
        self.dists = peers.optuna_distributions(space)
        self.study = optuna.create_study(directions=["minimize"] * len(names),
                                         sampler=getattr(optuna.samplers, sampler)(seed=seed))
        self.trials: Dict[int, Any] = {}

    def ask(self, n: int):
        t = self.study.ask(self.dists)
        self.trials[t.number] = t
        return [(t.number, dict(t.params))]

    def tell(self, token, values):
        self.study.tell(self.trials.pop(token), values)

    def close(self):
        pass


class Pymoo:
    """pymoo's NSGA2 through its ask/tell interface, on the unit cube."""

    def __init__(self, space, names, budget: int, seed: int):
        import numpy as np
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem

        self.space = space
        self.algorithm = NSGA2()
        self.algorithm.setup(Problem(n_var=space.dim, n_obj=len(names), xl=np.zeros(space.dim),
                                     xu=np.ones(space.dim)), termination=("n_eval", budget), seed=seed)
        self.batch = None
        self.values: Dict[int, List[float]] = {}

    def ask(self, n: int):
        import peers

        self.batch = self.algorithm.ask()
        X = self.batch.get("X")
        return [(i, peers.from_unit(self.space, X[i])) for i in range(min(n, len(X)))]

    def tell(self, token, values):
        self.values[token] = values
        if len(self.values) == len(self.batch.get("X")):
            import numpy as np

            self.batch.set("F", np.array([self.values[i] for i in range(len(self.values))]))
            self.algorithm.tell(infills=self.batch)
            self.values = {}

    def close(self):
        pass


def build(name: str, space, names, budget: int, seed: int, binary: str):
    if name.startswith("knobs-"):
        return Knobs(binary, name[len("knobs-"):], space, names, budget, seed)
    if name.startswith("optuna-"):
        sampler = {"nsga2": "NSGAIISampler", "tpe": "TPESampler", "gp": "GPSampler",
                   "random": "RandomSampler"}[name[len("optuna-"):]]
        return Optuna(sampler, space, names, budget, seed)
    if name == "pymoo-nsga2":
        return Pymoo(space, names, budget, seed)
    raise SystemExit(f"unknown optimizer {name}")


def measure(job: Tuple[str, str, str, int, int, str]) -> Dict[str, Any]:
    opt_name, fn, tier, seed, budget, binary = job
    rec: Dict[str, Any] = {"optimizer": opt_name, "problem": fn, "tier": tier, "seed": seed, "budget": budget}
    try:
        setup_imports()
        space, f, reference, names = problem(fn, tier)
        own = 0.0
        t0 = time.perf_counter()
        opt = build(opt_name, space, names, budget, seed, binary)
        setup = time.perf_counter() - t0
        seen: List[List[float]] = []
        while len(seen) < budget:
            t = time.perf_counter()
            asked = opt.ask(budget - len(seen))
            own += time.perf_counter() - t
            if not asked:
                break
            for token, params in asked[: budget - len(seen)]:
                values = [float(v) for v in f(space.coerce(params))]
                seen.append(values)
                t = time.perf_counter()
                opt.tell(token, values)
                own += time.perf_counter() - t
        t = time.perf_counter()
        opt.close()
        own += time.perf_counter() - t
        rec.update(status="ok", n_evals=len(seen), hypervolume=hypervolume(seen, reference), reference=reference,
                   overhead_ms=1000.0 * own / max(len(seen), 1), setup_s=setup)
    except Exception as e:  # recorded, not fatal
        rec.update(status="error", error=f"{type(e).__name__}: {e}")
    return rec


# --- summary ----------------------------------------------------------------------------------


def summarize(runs: List[Dict[str, Any]]) -> str:
    out: List[str] = []
    for tier in TIERS:
        rs = [r for r in runs if r.get("tier") == tier and r.get("status") == "ok"]
        if not rs:
            continue
        opts = sorted({r["optimizer"] for r in rs}, key=lambda o: (not o.startswith("knobs"), o))
        out += [f"### {tier} tier ({rs[0]['budget']} evaluations): median hypervolume (higher is better; in "
                "brackets the runs), median overhead per evaluation", "",
                "| problem | " + " | ".join(opts) + " |", "|---|" + "---:|" * len(opts)]
        cells: Dict[str, Dict[str, float]] = {}
        for fn in PROBLEMS:
            med = {}
            for o in opts:
                hv = [r["hypervolume"] for r in rs if r["problem"] == fn and r["optimizer"] == o]
                if hv:
                    med[o] = (statistics.median(hv), len(hv))
            if not med:
                continue
            cells[fn] = {o: v[0] for o, v in med.items()}
            best = max(v[0] for v in med.values())
            row = [(f"**{med[o][0]:.4g}** ({med[o][1]})" if med[o][0] == best else f"{med[o][0]:.4g} ({med[o][1]})")
                   if o in med else "-" for o in opts]
            out.append(f"| {fn} | " + " | ".join(row) + " |")
        over = []
        for o in opts:
            ms = [r["overhead_ms"] for r in rs if r["optimizer"] == o]
            over.append(f"{statistics.median(ms):.3g} ms" if ms else "-")
        out += ["| overhead / evaluation | " + " | ".join(over) + " |", ""]
        for k in [o for o in opts if o.startswith("knobs")]:
            peers_ = [o for o in opts if not o.startswith("knobs")]
            n = sum(1 for fn, med in cells.items() if k in med and all(med[k] >= med.get(p, -1.0) for p in peers_))
            out.append(f"- {k}: at least every peer's median hypervolume on {n} of {len(cells)} problems")
        out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tier", choices=list(TIERS), default="model")
    ap.add_argument("--optimizers")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--seeds")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "pareto"))
    ap.add_argument("--knobs", default=os.path.join(ROOT, "target", "release", "knobs"))
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    tier = TIERS[args.tier]
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "runs.jsonl")
    if not args.summary_only:
        done = {(r["optimizer"], r["problem"], r["tier"], r["seed"]) for r in load(path) if r.get("status") == "ok"}
        optimizers = args.optimizers.split(",") if args.optimizers else tier["optimizers"]
        jobs = [(o, fn, args.tier, s, tier["budget"], os.path.abspath(args.knobs))
                for o in optimizers for fn in args.problems.split(",")
                for s in parse_seeds(args.seeds or tier["seeds"]) if (o, fn, args.tier, s) not in done]
        jobs.sort(key=lambda j: (j[0] != "optuna-gp", j[0]))
        print(f"== {len(jobs)} runs ({len(done)} already recorded) -> {path}", file=sys.stderr)
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers, maxtasksperchild=1) as pool, open(path, "a") as f:
            for i, rec in enumerate(pool.imap_unordered(measure, jobs), 1):
                f.write(json.dumps(rec) + "\n")
                f.flush()
                what = (f"hypervolume {rec['hypervolume']:.4g}, {rec['overhead_ms']:.3g} ms/eval"
                        if rec["status"] == "ok" else rec["error"])
                print(f"[{i}/{len(jobs)}] {rec['optimizer']} {rec['problem']} seed {rec['seed']}: {what}",
                      file=sys.stderr)
    summary = summarize(load(path))
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(summary)
    print(summary)


if __name__ == "__main__":
    main()
