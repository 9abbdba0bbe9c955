#!/usr/bin/env python3
"""statsforecast (Nixtla) on the same rolling-origin backtests as `knobs forecast backtest`.

Reproduces, in plain Python, what knobs does before its backtest
(src/telemetry/{parse,resample,mod}.rs, src/cli/forecast.rs, src/forecast/mod.rs):

* read `timestamp,value` CSV; timestamps `YYYY-MM-DD HH:MM:SS` read as UTC
  (also RFC 3339 with a zone, or unix seconds rounded to the nearest second);
* sort by time, merge equal timestamps (mean: the default kind `gauge`);
* step = the lower median of the steps between consecutive distinct timestamps;
* buckets of `step` seconds starting at the first sample, the mean of the points
  in each bucket, empty buckets filled by linear interpolation between their
  neighbours (same floating-point operations, in the same order, as the Rust);
* period m = round(86400 / step), horizon h = ceil(86400 / step), 3 folds:
  fold k (k = 0, 1, 2) trains on y[:n - (3 - k) h] and forecasts the next h points;
* MASE: per-point |error| / (in-sample MAE of the seasonal naive at period m
  over that fold's training data), averaged over all held-out points;
  sMAPE: mean of 200 |e| / (|a| + |f|) (0 when both are 0);
  coverage: share of held-out points inside [lo-80, hi-80];
  seconds: wall time of StatsForecast(...).forecast(df=train, h=h, level=[80])
  summed over the three folds, per model, after one untimed warm-up run of every
  model (numba JIT compilation is not counted).

Models: MSTL(season_length=m, trend_forecaster=AutoETS(model="ZZN")) (the design of
knobs' mstl-ets), AutoETS(season_length=m) (optional, --autoets), SeasonalNaive(m).
Each series also gets a row `replica:knobs-seasonal-naive(m)`: knobs' own seasonal
naive re-implemented here on the same folds, whose figures must equal knobs'
`seasonal-naive(288)` row (a check of the folds and metrics, not a statsforecast model).
`--components` records which ETS model statsforecast selected in each fold (extra,
untimed fits).

`--knobs PATH/TO/knobs` also checks the resampling against the knobs binary: for each
series it runs `knobs forecast FILE --period 1d --model seasonal-naive --plots none
[--json]` and compares the number of points, the step, the forecast timestamps (which
are last timestamp + i * step), and the seasonal-naive forecast and its interval
(the last m resampled values, exactly, and the spread of all seasonal differences of
the whole resampled series) with the same computation on the series resampled here.

Usage:
    python backtest.py [--autoets] [--components] [--knobs ../../target/release/knobs] [--json out.json] FILES...
"""

from __future__ import annotations

import argparse
import calendar
import csv
import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

# One thread for the numerical libraries (knobs' backtest runs its models one after the
# other on one thread); must be set before numpy is imported.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DAY = 86400
LEVEL = 80
FOLDS = 3


# ---------------------------------------------------------------- reading & resampling


def parse_timestamp(s: str) -> int | None:
    s = s.strip()
    try:
        return calendar.timegm(datetime.strptime(s, "%Y-%m-%d %H:%M:%S").timetuple())
    except ValueError:
        pass
    try:
        d = datetime.fromisoformat(s.replace("Z", "+00:00"))
        if d.tzinfo is not None:
            return int(d.timestamp())
    except ValueError:
        pass
    try:
        x = float(s)
    except ValueError:
        return None
    return round(x) if math.isfinite(x) and abs(x) < 1e12 else None


def read_csv(path: Path) -> list[tuple[int, float]]:
    """Rows of a long-form `timestamp,value` CSV, in file order."""
    points = []
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        if len(header) != 2:
            raise SystemExit(f"{path}: expected a `timestamp,value` CSV, got header {header}")
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            t = parse_timestamp(row[0])
            v = float(row[1].strip())
            if t is None or not math.isfinite(v):
                raise SystemExit(f"{path}: line {line}: bad row {row}")
            points.append((t, v))
    return points


def normalize(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """Stable sort by time; equal timestamps merged by their mean (gauge)."""
    pts = sorted(points, key=lambda p: p[0])
    merged: list[list] = []  # [t, sum, run]
    for t, v in pts:
        if merged and merged[-1][0] == t:
            merged[-1][1] += v
            merged[-1][2] += 1
        else:
            merged.append([t, v, 1])
    return [(t, s / r if r > 1 else s) for t, s, r in merged]


def infer_step(points: list[tuple[int, float]]) -> int:
    ts = sorted({p[0] for p in points})
    steps = sorted(b - a for a, b in zip(ts, ts[1:]))
    return steps[(len(steps) - 1) // 2]  # the lower median, as select_nth_unstable((len-1)/2)


def resample(points: list[tuple[int, float]], step: int):
    """Buckets of `step` s from the first sample; mean per bucket; gaps interpolated."""
    first = min(p[0] for p in points)
    last = max(p[0] for p in points)
    n = (last - first) // step + 1
    sums = [0.0] * n
    counts = [0] * n
    for t, v in points:
        b = (t - first) // step
        sums[b] += v
        counts[b] += 1
    values = [None if c == 0 else s / c for s, c in zip(sums, counts)]
    gaps = missing = 0
    i = 0
    while i < n:
        if values[i] is not None:
            i += 1
            continue
        start = i
        while values[i] is None:
            i += 1
        left, right = values[start - 1], values[i]
        span = float(i - start + 1)
        for k in range(i - start):
            w = (k + 1) / span
            values[start + k] = left + (right - left) * w
        gaps += 1
        missing += i - start
    ts = [first + b * step for b in range(n)]
    return ts, np.array(values, dtype=float), gaps, missing


def load(path: Path):
    pts = normalize(read_csv(path))
    step = infer_step(pts)
    ts, y, gaps, missing = resample(pts, step)
    return {"name": path.stem, "step": step, "ts": ts, "y": y, "samples": len(pts), "gaps": gaps, "missing": missing}


# ---------------------------------------------------------------- metrics (as knobs' backtest)


def mase_scale(train: np.ndarray, m: int) -> float:
    tr = train.tolist()
    return sum(abs(tr[t] - tr[t - m]) for t in range(m, len(tr))) / (len(tr) - m)


class Acc:
    def __init__(self):
        self.abs_scaled = self.smape = 0.0
        self.covered = self.count = 0
        self.seconds = 0.0

    def add(self, test, point, lower, upper, scale):
        for a, f, lo, hi in zip(test.tolist(), point.tolist(), lower.tolist(), upper.tolist()):
            e = abs(a - f)
            self.abs_scaled += e / scale if scale > 0 else e
            d = abs(a) + abs(f)
            self.smape += 200.0 * e / d if d > 0 else 0.0
            self.covered += int(lo <= a <= hi)
            self.count += 1

    def row(self):
        return {
            "mase": self.abs_scaled / self.count,
            "smape": self.smape / self.count,
            "coverage": self.covered / self.count,
            "seconds": self.seconds,
        }


# ---------------------------------------------------------------- statsforecast


def make_models(m: int, autoets: bool):
    from statsforecast.models import MSTL, AutoETS, SeasonalNaive

    models = [("MSTL", MSTL(season_length=m, trend_forecaster=AutoETS(model="ZZN")))]
    if autoets:
        models.append(("AutoETS", AutoETS(season_length=m)))
    models.append(("SeasonalNaive", SeasonalNaive(season_length=m)))
    return models


def sf_forecast(model, ds, y, step: int, h: int):
    from statsforecast import StatsForecast

    df = pd.DataFrame({"unique_id": "s", "ds": ds, "y": y})
    sf = StatsForecast(models=[model], freq=f"{step}s", n_jobs=1)
    t0 = time.perf_counter()
    fc = sf.forecast(df=df, h=h, level=[LEVEL])
    secs = time.perf_counter() - t0
    alias = str(model)
    return (
        fc[alias].to_numpy(float),
        fc[f"{alias}-lo-{LEVEL}"].to_numpy(float),
        fc[f"{alias}-hi-{LEVEL}"].to_numpy(float),
        secs,
    )


def warm_up(m: int, h: int, autoets: bool, step: int):
    """One untimed fit+forecast of every model on a synthetic series, to JIT-compile."""
    n = 6 * m
    t = np.arange(n)
    y = 10 + np.sin(2 * np.pi * t / m) + 0.01 * t + 0.1 * np.sin(t * 12.9898)
    ds = pd.to_datetime(1_400_000_000 + t * step, unit="s")
    secs = {}
    for name, model in make_models(m, autoets):
        *_, s = sf_forecast(model, ds, y, step, h)
        secs[name] = s
    return secs


def components(name: str, model, train: np.ndarray) -> str:
    """The ETS model that statsforecast selected (an extra, untimed fit)."""
    fitted = model.new().fit(y=train)
    if name == "MSTL":
        return "trend " + fitted.trend_forecaster.model_["components"]
    return f"{fitted.model_['components']} m={fitted.model_['m']}"


def backtest_series(s, autoets: bool, model_filter=None, with_components=False):
    step, y = s["step"], s["y"]
    m = max(round(DAY / step), 1)
    h = max(math.ceil(DAY / step), 1)
    n = len(y)
    if n < FOLDS * h + 2 * m + 2:
        raise SystemExit(f"{s['name']}: too short for {FOLDS} folds of {h}")
    ds_all = pd.to_datetime(np.array(s["ts"], dtype=np.int64), unit="s")
    rows = []
    # knobs' own seasonal naive, replicated here on the same folds: its MASE, sMAPE and
    # coverage must equal the `seasonal-naive(288)` row of `knobs forecast backtest`,
    # which checks the folds and the metrics (not a statsforecast model).
    acc = Acc()
    for k in range(FOLDS):
        origin = n - (FOLDS - k) * h
        point, lo, hi = knobs_seasonal_naive(y[:origin], m, h, LEVEL / 100)
        acc.add(y[origin : origin + h], np.array(point), np.array(lo), np.array(hi), mase_scale(y[:origin], m))
    rows.append({"series": s["name"], "model": f"replica:knobs-seasonal-naive({m})", "n": n, "step": step, **acc.row()})
    for name, model in make_models(m, autoets):
        if model_filter and name not in model_filter:
            continue
        acc = Acc()
        comps = []
        for k in range(FOLDS):
            origin = n - (FOLDS - k) * h
            train, test = y[:origin], y[origin : origin + h]
            scale = mase_scale(train, m)
            point, lo, hi, secs = sf_forecast(model, ds_all[:origin], train, step, h)
            if len(point) != h or not np.all(np.isfinite(point)):
                raise SystemExit(f"{s['name']} {name}: bad forecast (len {len(point)}, non-finite values)")
            acc.add(test, point, lo, hi, scale)
            acc.seconds += secs
            if with_components and name != "SeasonalNaive":
                comps.append(components(name, model, train))
        rows.append({"series": s["name"], "model": f"sf:{name}({m})", "n": n, "step": step, **acc.row()})
        if comps:
            rows[-1]["selected"] = comps
        print(
            f"  {s['name']:<36} {rows[-1]['model']:<34} MASE {rows[-1]['mase']:.3f}  sMAPE {rows[-1]['smape']:.2f}  "
            f"cov {100 * rows[-1]['coverage']:.1f}%  {rows[-1]['seconds']:.3f} s  {rows[-1].get('selected', '')}",
            file=sys.stderr,
            flush=True,
        )
    return rows


# ---------------------------------------------------------------- check against the knobs binary


def normal_quantile(p: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(p))


def knobs_seasonal_naive(y: np.ndarray, m: int, h: int, level: float):
    """knobs' SeasonalNaive::forecast, line for line."""
    yl = y.tolist()
    n = len(yl)
    diffs = [yl[t] - yl[t - m] for t in range(m, n)]
    sigma = math.sqrt(sum(d * d for d in diffs) / len(diffs))
    z = normal_quantile(0.5 + level / 2)
    point, lower, upper = [], [], []
    for i in range(h):
        p = yl[n - m + (i % m)]
        half = z * sigma * math.sqrt(i // m + 1)
        point.append(p)
        lower.append(p - half)
        upper.append(p + half)
    return point, lower, upper


def verify_with_knobs(knobs: str, path: Path, s) -> dict:
    base = [knobs, "forecast", str(path), "--period", "1d", "--model", "seasonal-naive", "--plots", "none"]
    text = subprocess.run(base, check=True, capture_output=True, text=True).stdout.splitlines()[0]
    # "<name>: <N> points every <S> s; ..."
    head = text.split(": ", 1)[1].split(";")[0].split()
    k_n, k_step = int(head[0]), int(head[3])
    out = json.loads(subprocess.run(base + ["--json"], check=True, capture_output=True, text=True).stdout)[0]
    step, y = s["step"], s["y"]
    m = max(round(DAY / step), 1)
    h = max(math.ceil(DAY / step), 1)
    point, lower, upper = knobs_seasonal_naive(y, m, h, 0.8)
    exp_ts = [datetime.fromtimestamp(s["ts"][-1] + i * step, timezone.utc).replace(tzinfo=None) for i in range(1, h + 1)]
    k_ts = [datetime.strptime(t.replace("T", " ").rstrip("Z")[:19], "%Y-%m-%d %H:%M:%S") for t in out["timestamps"]]
    res = {
        "series": s["name"],
        "knobs_points": k_n,
        "py_points": len(y),
        "knobs_step": k_step,
        "py_step": step,
        "timestamps_equal": k_ts == exp_ts,
        "point_max_abs_diff": max(abs(a - b) for a, b in zip(point, out["point"])),
        "point_bit_identical": point == out["point"],
        "interval_max_rel_diff": max(
            abs(a - b) / max(abs(b), 1e-300) for a, b in zip(lower + upper, out["lower"] + out["upper"])
        ),
    }
    res["ok"] = (
        k_n == len(y)
        and k_step == step
        and res["timestamps_equal"]
        and res["point_bit_identical"]
        and res["interval_max_rel_diff"] < 1e-8
    )
    return res


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--autoets", action="store_true", help="also run AutoETS(season_length=m) (slow)")
    ap.add_argument("--models", default="", help="comma-separated subset: MSTL,AutoETS,SeasonalNaive")
    ap.add_argument("--knobs", help="path to the knobs binary: check the resampling against it")
    ap.add_argument("--verify-only", action="store_true", help="with --knobs: only check, no backtest")
    ap.add_argument(
        "--components", action="store_true", help="record the ETS model selected per fold (extra untimed fits)"
    )
    ap.add_argument("--json", type=Path, help="write all rows (and checks) to this JSON file")
    a = ap.parse_args()

    series = [(p, load(p)) for p in a.files]
    for p, s in series:
        print(
            f"{s['name']}: {s['samples']} distinct timestamps -> {len(s['y'])} points every {s['step']} s "
            f"({s['gaps']} gaps, {s['missing']} filled buckets)",
            file=sys.stderr,
        )
    checks = []
    if a.knobs:
        for p, s in series:
            c = verify_with_knobs(a.knobs, p, s)
            checks.append(c)
            print("  check:", json.dumps(c), file=sys.stderr)
        if not all(c["ok"] for c in checks):
            raise SystemExit("resampling does not match knobs")
    if a.verify_only:
        if a.json:
            a.json.write_text(json.dumps({"checks": checks}, indent=2))
        return

    model_filter = set(filter(None, a.models.split(","))) or None
    steps = {s["step"] for _, s in series}
    warm = {}
    for step in sorted(steps):
        m, h = max(round(DAY / step), 1), max(math.ceil(DAY / step), 1)
        warm[step] = warm_up(m, h, a.autoets and (not model_filter or "AutoETS" in model_filter), step)
        print(f"warm-up (untimed in the results), step {step}: {warm[step]}", file=sys.stderr)
    rows = []
    for _, s in series:
        rows += backtest_series(s, a.autoets, model_filter, a.components)

    print(f"{'series':<36}  {'model':<34}  {'MASE':>6}  {'sMAPE%':>7}  {'coverage':>9}  {'seconds':>8}")
    for r in rows:
        print(
            f"{r['series']:<36}  {r['model']:<34}  {r['mase']:>6.3f}  {r['smape']:>7.2f}  "
            f"{100 * r['coverage']:>8.1f}%  {r['seconds']:>8.3f}"
        )
    if a.json:
        a.json.write_text(json.dumps({"rows": rows, "checks": checks, "warm_up_seconds": warm}, indent=2))


if __name__ == "__main__":
    main()
