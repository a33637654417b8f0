"""``mpc-market randomness``: one randomness-beacon round on a local network
(offchain.devnet.randomness), with its output, participants and gas.

    mpc-market randomness [--participants P] [--withhold K] [--bad-share K] [--rpc-url URL]
                          [--json]

Exit status 2 for bad options, 1 for a failure, 130 when interrupted.
"""

from __future__ import annotations

import json
import signal
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from offchain.cli.common import fail, guard, progress_printer, terminate, tx_table
from offchain.devnet.network import DemoError, DemoOptions

if TYPE_CHECKING:
    from offchain.devnet.randomness import RandomnessResult

__all__ = ["randomness_command"]


def _print_round(r: RandomnessResult) -> None:
    out = Console()
    out.print(f"\n[bold]beacon round {r.round_id}[/] on chain {r.chain_id}, market {r.market}")
    out.print(f"[bold green]output[/]: {r.output}  (recomputed from the opened contributions: "
              f"{'matches' if r.output_recomputed else 'MISMATCH'})")
    out.print(f"request {r.request_id} value: {r.value}")
    out.print(f"threshold T={r.threshold}; participants ({len(r.participants)}):")
    for p in r.excluded:
        out.print(f"  {p}  [red]left out of Q[/] (its shares did not all verify)")
    for p in r.participants:
        how = ("revealed" if p in r.revealed else "recovered from shares" if p in r.recovered
               else "missing")
        mark = "  [red]slashed[/]" if p in r.slashed else ""
        out.print(f"  {p}  {how}{mark}")
    out.print(tx_table(r.txs))
    out.print(f"gas of the round (commit + reveal/recover): [bold]{r.gas_round:,}[/]")
    out.print(f"latency (request -> output on chain): [bold]{r.latency_s * 1000:.0f} ms[/]")


@guard
def randomness_command(
    participants: Annotated[int, typer.Option(help="node processes taking part (>= 3)")] = 5,
    withhold: Annotated[int, typer.Option(help="fault injection: this many nodes never reveal "
                                               "(their contributions are recovered from "
                                               "shares after the reveal phase, ~10 s, and "
                                               "they are slashed)")] = 0,
    bad_share: Annotated[int, typer.Option(help="fault injection: this many further nodes "
                                                "deal one peer a share that does not match "
                                                "their commitment (detected; left out of "
                                                "the round)")] = 0,
    rpc_url: Annotated[str | None, typer.Option(help="use this chain instead of starting "
                                                     "anvil (it must mine blocks)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run one randomness-beacon round on a local network and show its output, participants,
    who revealed, who was recovered, and the gas used."""
    from offchain.devnet.randomness import run_randomness

    opts = DemoOptions(providers=participants, committee=3, rpc_url=rpc_url,
                       beacon_withhold=withhold, beacon_bad_share=bad_share)
    signal.signal(signal.SIGTERM, terminate)
    try:
        result = run_randomness(opts, progress=progress_printer(as_json))
    except DemoError as exc:
        fail(str(exc), 2 if "must" in str(exc) else 1)
    except KeyboardInterrupt:
        fail("interrupted; the devnet and the nodes were stopped", 130)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        _print_round(result)
