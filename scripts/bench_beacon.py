"""Benchmark the randomness beacon: round latency and gas per round, for P participants.

For each P (default 5 and 16) it starts one local network (anvil with one-second blocks plus
automine, the market, P node processes), runs one warm-up round, then RUNS measured rounds, each
bought with ``requestRandomness`` and waited for until its output is on chain. It prints the
median, min and max of the latency (request sent -> RoundFinalized mined) and of the gas of the
round's own transactions (commitRound + reveal; the request's ~141k and the opening of the round
inside it are the buyer's), plus the machine.

    python scripts/bench_beacon.py [--runs 5] [--participants 5 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_demo import machine, summary

from offchain.devnet.network import DemoNetwork, DemoOptions, validate
from offchain.devnet.randomness import run_round


def bench(participants: int, runs: int) -> None:
    opts = DemoOptions(providers=participants, committee=3)
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows) as net:
        run_round(net)  # warm-up
        latency, gas, commit, reveal = [], [], [], []
        for _ in range(runs):
            r = run_round(net)
            assert r.output_recomputed and not r.recovered, r
            latency.append(r.latency_s * 1000)
            gas.append(float(r.gas_round))
            commit.append(float(sum(t["gas_used"] for t in r.txs if t["name"] == "commitRound")))
            reveal.append(float(sum(t["gas_used"] for t in r.txs if t["name"] == "reveal")))
            print(f"  P={participants} round {r.round_id}: {r.latency_s * 1000:.0f} ms, "
                  f"gas {r.gas_round:,} (T={r.threshold}, |Q|={len(r.participants)})",
                  flush=True)
    print(f"P={participants}: latency ms {summary(latency, '.0f')}")
    print(f"P={participants}: gas/round {summary(gas, '.0f')}  "
          f"(commitRound {statistics.median(commit):.0f}, reveal {statistics.median(reveal):.0f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--participants", type=int, nargs="+", default=[5, 16])
    args = ap.parse_args()
    print(f"machine: {machine()}")
    for p in args.participants:
        bench(p, args.runs)


if __name__ == "__main__":
    main()
