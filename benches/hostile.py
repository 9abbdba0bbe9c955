#!/usr/bin/env python3
"""Hostile spec files: how long `knobs validate` takes to refuse each, and its peak memory.

    python3 benches/hostile.py [--knobs target/release/knobs]

Each file is 1 MiB (the spec size cap) of one shape that has made YAML parsers slow or
greedy: deep flow nesting (`[`, `{a: `, mixed, spaced, one per line), deep block nesting by
indentation, nested `- ` and `? ` on one line, many anchors, an alias bomb, one long key, and
nesting hidden inside a quoted scalar. Prints a markdown table (file, bytes, seconds, peak
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
            t0 = time.perf_counter()
            p = subprocess.Popen([args.knobs, "validate", "--json", path], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL)
            out = p.stdout.read()
            _, status, usage = os.wait4(p.pid, 0)
            secs = time.perf_counter() - t0
            try:
                first = json.loads(out.splitlines()[0])["problems"][0]["message"]
            except (IndexError, KeyError, ValueError):
                first = out[:80].decode(errors="replace")
            print(f"| {name} | {len(text.encode())} | {secs:.2f} | {usage.ru_maxrss / 1024:.0f} | "
                  f"{os.waitstatus_to_exitcode(status)} | {first[:70]} |")


if __name__ == "__main__":
    main()
