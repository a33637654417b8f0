"""``mpc-market demo``: one MPC job end to end on a local devnet (offchain.devnet.network),
compared with the plaintext answer.

    mpc-market demo [--data CSV] [--query SPEC] [--providers P] [--committee N] [--threshold T]
                    [--min-providers M] [--rpc-url URL] [--json]

Exit status 2 for bad options (nothing started), 1 for a failure, 130 when interrupted (the
devnet and the nodes are stopped in every case).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from offchain.cli.common import fail, guard, progress_printer, terminate, tx_table
from offchain.devnet.compile import CompilerError
from offchain.devnet.network import DemoError, DemoOptions, DemoResult, run_demo, validate
from offchain.devnet.provision import DEFAULT_DATA

__all__ = ["demo_command"]


def _print_human(r: DemoResult) -> None:
    out = Console()
    out.print(f"\n[bold]job {r.job_id}[/]  [cyan]{r.query}[/]  on chain {r.chain_id}, "
              f"market {r.market}")
    out.print(f"committee (t={r.threshold}), drawn by beacon round {r.randomness_round}: "
              f"{', '.join(r.committee)}")
    out.print(f"providers contributing: {r.contributors} of {r.providers}")
    out.print(f"[bold green]MPC result[/]:       {r.result}")
    out.print(f"plaintext statistic: {r.plaintext}")
    if isinstance(r.result, float) and isinstance(r.plaintext, float):
        rel = abs(r.result - r.plaintext) / max(abs(r.plaintext), 1e-300)
        out.print(f"relative difference: {rel:.2e}")
    else:
        out.print(f"equal: {r.result == r.plaintext}")
    out.print(tx_table(r.txs))
    out.print(f"job latency (post -> finalized on chain): [bold]{r.latency_s * 1000:.0f} ms[/]")
    if r.node_peak_rss_mib:
        out.print(f"node peak RSS: {max(r.node_peak_rss_mib):.1f} MiB")


@guard
def demo_command(
    data: Annotated[Path, typer.Option(help="numeric CSV with a header row")] = DEFAULT_DATA,
    query: Annotated[str, typer.Option(help="count | sum:C | mean:C | var:C | std:C | "
                                            "pearson:A,B | histogram:C:E0,...,Ek")]
    = "mean:mean_radius",
    providers: Annotated[int, typer.Option(help="provider node processes P")] = 5,
    committee: Annotated[int, typer.Option(help="committee size N")] = 3,
    threshold: Annotated[int, typer.Option(help="threshold T: T+1 shares reconstruct")] = 1,
    min_providers: Annotated[int | None, typer.Option(help="minimum contributing providers "
                                                           "M (default: P)")] = None,
    rpc_url: Annotated[str | None, typer.Option(help="use this chain instead of starting "
                                                     "anvil")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    timeout_s: Annotated[int, typer.Option(help="job timeout in seconds")] = 120,
) -> None:
    """Run one MPC job end to end on a local devnet and compare it with the plaintext answer."""
    opts = DemoOptions(data=data, query=query, providers=providers, committee=committee,
                       threshold=threshold, min_providers=min_providers, rpc_url=rpc_url,
                       timeout_s=timeout_s)
    try:
        validate(opts)
    except DemoError as exc:
        fail(str(exc), 2)
    signal.signal(signal.SIGTERM, terminate)
    try:
        result = run_demo(opts, progress=progress_printer(as_json))
    except CompilerError as exc:
        fail(f"compiler: {exc}", 1)
    except KeyboardInterrupt:
        fail("interrupted; the devnet and the nodes were stopped", 130)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        _print_human(result)
