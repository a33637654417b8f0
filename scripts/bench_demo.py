"""Benchmark the default demo: job latency, gas per transaction, node peak memory.

Runs ``mpc-market demo --json`` RUNS times (each a fresh anvil, fresh deployment, fresh node
processes), and prints the median, min and max of each figure plus the machine it ran on.

    python scripts/bench_demo.py [--runs 5] [--query mean:mean_radius] [-- extra demo args]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {cpu}, {mem_gib:.0f} GiB, Python {platform.python_version()}"


def run_once(extra: list[str]) -> dict[str, object]:
    exe = Path(sys.executable).parent / "mpc-market"
    out = subprocess.run([str(exe), "demo", "--json", *extra], cwd=ROOT, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def summary(values: list[float], fmt: str = ".4g") -> str:
    return (f"median {statistics.median(values):{fmt}}  (min {min(values):{fmt}}, "
            f"max {max(values):{fmt}}, n={len(values)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("extra", nargs="*", help="extra arguments for `mpc-market demo`")
    args = ap.parse_args()
    results = []
    wall = []
    for i in range(args.runs):
        t0 = time.perf_counter()
        r = run_once(args.extra)
        wall.append(time.perf_counter() - t0)
        print(f"run {i + 1}: latency {float(r['latency_s']) * 1000:.0f} ms, result {r['result']}",
              file=sys.stderr)
        results.append(r)
    print(f"machine: {machine()}")
    print(f"query: {results[0]['query']}, providers {results[0]['providers']}, "
          f"committee {len(results[0]['committee'])}, threshold {results[0]['threshold']}")
    print(f"job latency (post -> finalized), ms: "
          f"{summary([float(r['latency_s']) * 1000 for r in results])}")
    gas: dict[str, list[float]] = {}
    for r in results:
        for tx in r["txs"]:  # type: ignore[attr-defined]
            name = str(tx["name"])
            key = name.split(" node-")[0] if " node-" in name else name
            gas.setdefault(key, []).append(float(tx["gas_used"]))
    for name, values in gas.items():
        print(f"gas {name}: {summary(values, ',.0f')}")
    print(f"whole demo (install excluded: start anvil .. stop nodes), s: {summary(wall)}")
    rss = [max(r["node_peak_rss_mib"]) for r in results]  # type: ignore[call-overload]
    print(f"node peak RSS (largest node per run), MiB: {summary(rss)}")


if __name__ == "__main__":
    main()
