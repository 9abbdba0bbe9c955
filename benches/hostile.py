#!/usr/bin/env python3
"""Hostile spec files and telemetry recordings: how long knobs takes to refuse (or read) each,
and its peak memory (`knobs validate` for specs, `knobs telemetry` for recordings).

    python3 benches/hostile.py [--knobs target/release/knobs]

Each file is 1 MiB (the spec size cap) of one shape that has made YAML parsers slow or
greedy: deep flow nesting (`[`, `{a: `, mixed, spaced, one per line), deep block nesting by
indentation, nested `- ` and `? ` on one line, many anchors, an alias bomb, one long key, and
nesting hidden inside a quoted scalar. Recordings: a few rows far apart (a tiny file whose
resampled series would be millions of gaps), deep nesting in JSON lines and in a Prometheus
answer, one CSV row of 100,000 columns, 45,000 series of 10 rows, one
1 MiB value. Prints a markdown table (file, bytes, seconds, peak
RSS in MiB, the first problem reported). Needs only Python's standard library. The peak RSS
of a child includes the Python process it was forked from (about 31 MiB): read it as a ceiling.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time

M = 1 << 20


def fill(unit: str, tail: str = "") -> str:
    return unit * ((M - len(tail)) // len(unit)) + tail


def shapes():
    block, i = [], 0
    while sum(map(len, block)) + i + 3 < M:
        block.append(" " * i + "a:\n")
        i += 1
    bomb, prev = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n', "a"
    for k in range(1, 10):
        name = chr(97 + k)
        bomb += f"{name}: &{name} [" + ",".join(["*" + prev] * 10) + "]\n"
        prev = name
    return {
        "flow `[`": fill("["),
        "flow `{a: `": fill("{a: "),
        "flow `[{a: `": fill("[{a: "),
        "flow `[ `": fill("[ "),
        "flow `[` per line": fill("[\n"),
        "block indentation": "".join(block),
        "`- ` on one line": fill("- ", "x\n"),
        "`? ` on one line": fill("? ", "x\n"),
        "90,000 anchors": "x: [" + ",".join(f"&a{i} 1" for i in range(90000)) + "]\n",
        "alias bomb (10^10)": bomb,
        "one long key": fill("k", ": 1\n"),
        "nesting in a quote": "a: '" + fill("{a: ", "'\n")[4:],
    }


def telemetry_shapes():
    sparse = "timestamp,value\n" + "".join(f"{1700000000 + i},{i % 7}\n" for i in range(100))
    sparse += f"{1700000000 + 40_000_000},1\n"
    return {
        "CSV: 101 rows, the last 463 days later": ("sparse.csv", sparse),
        "CSV: one row of 100,000 columns": ("wide.csv", "timestamp," + ",".join(f"c{i}" for i in range(100000)) + "\n"
                                            + "1700000000," + ",".join("1" for _ in range(100000)) + "\n"),
        "CSV: 10 rows of 45,000 series": ("many.csv", "timestamp," + ",".join(f"c{i}" for i in range(45000)) + "\n"
                                          + "".join(f"{1700000000 + 60 * r}," + ",".join(str((i + r) % 5) for i in range(45000))
                                                    + "\n" for r in range(10))),
        "CSV: one 1 MiB value": ("long.csv", "timestamp,value\n1700000000," + fill("9", "\n")[27:]),
        "JSON lines: `[` nested 1 MiB deep": ("deep.jsonl", fill("[")),
        "Prometheus JSON: `{\"a\":` nested": ("deep.json", fill('{"a":')),
    }


def run(args, cmd, path):
    t0 = time.perf_counter()
    p = subprocess.Popen([args.knobs, *cmd, path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - t0
    try:
        j = json.loads(out)
        if isinstance(j, list):  # `knobs telemetry --json` read it: one report per file
            first = f"(read: {sum(len(r.get('series', [])) for r in j)} series)"
        else:
            first = j["problems"][0]["message"] if j.get("problems") else j.get("error", "")
    except (IndexError, KeyError, ValueError, TypeError, AttributeError):
        first = out[:80].decode(errors="replace")
    return secs, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status), first


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--knobs", default=os.path.join(root, "target", "release", "knobs"))
    args = ap.parse_args()
    print("| input | bytes | seconds | peak RSS MiB | exit | first problem |")
    print("|---|---:|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in shapes().items():
            path = os.path.join(tmp, "spec.yaml")
            with open(path, "w") as f:
                f.write(text)
            secs, rss, code, first = run(args, ["validate", "--json"], path)
            print(f"| {name} | {len(text.encode())} | {secs:.2f} | {rss:.0f} | {code} | {first[:70]} |")
        print()
        print("| recording | bytes | seconds | peak RSS MiB | exit | first problem |")
        print("|---|---:|---:|---:|---:|---|")
        for name, (file, text) in telemetry_shapes().items():
            path = os.path.join(tmp, file)
            with open(path, "w") as f:
                f.write(text)
            secs, rss, code, first = run(args, ["telemetry", "--json", "--plots", "none", "--out", tmp], path)
            print(f"| {name} | {len(text.encode())} | {secs:.2f} | {rss:.0f} | {code} | {first[:70]} |")


if __name__ == "__main__":
    main()
