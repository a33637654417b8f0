"""The ``mpc-market`` command line.

    mpc-market demo [--data CSV] [--query SPEC] [--providers P] [--committee N] [--threshold T]
                    [--min-providers M] [--rpc-url URL] [--json]
    mpc-market randomness [--participants P] [--withhold K] [--bad-share K] [--rpc-url URL]
                          [--json]
    mpc-market up [--providers P] [--data CSV] [--state-dir DIR] [--json]
    mpc-market down [--state-dir DIR]
    mpc-market job post|show|wait ...      (the buyer CLI, over the HTTP API)
    mpc-market audit JOB_ID [--rpc-url URL] [--deployment FILE] [--json]
    mpc-market node --config FILE
    mpc-market keygen --out FILE

Errors print one line ``error: ...`` on stderr and exit with status 2 (bad input) or 1 (failure).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from offchain.devnet.compile import CompilerError
from offchain.devnet.network import (
    DEFAULT_DATA,
    DemoError,
    DemoOptions,
    DemoResult,
    run_demo,
    validate,
)
from offchain.node.config import ConfigError, NodeConfig, load_config

if TYPE_CHECKING:
    from offchain.devnet.randomness import RandomnessResult

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Blockchain-anchored secure multi-party computation market.")
err = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # run the same clean-up as Ctrl-C


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
    table = Table(title="transactions", show_lines=False)
    table.add_column("name")
    table.add_column("hash", overflow="fold", min_width=20)  # full hash, for cast
    table.add_column("gas used", justify="right")
    for tx in r.txs:
        table.add_row(tx["name"], tx["hash"], f"{tx['gas_used']:,}")
    out.print(table)
    out.print(f"job latency (post -> finalized on chain): [bold]{r.latency_s * 1000:.0f} ms[/]")
    if r.node_peak_rss_mib:
        out.print(f"node peak RSS: {max(r.node_peak_rss_mib):.1f} MiB")


@app.command()
def demo(
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
        _fail(str(exc))
    signal.signal(signal.SIGTERM, _terminate)
    progress = None if as_json else (lambda msg: err.print(f"[dim]· {msg}[/]", highlight=False))
    try:
        result = run_demo(opts, progress=progress)
    except DemoError as exc:
        _fail(str(exc), 1)
    except CompilerError as exc:
        _fail(f"compiler: {exc}", 1)
    except KeyboardInterrupt:
        _fail("interrupted; the devnet and the nodes were stopped", 130)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        _print_human(result)


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
    table = Table(title="transactions")
    table.add_column("name")
    table.add_column("hash", overflow="fold", min_width=20)
    table.add_column("gas used", justify="right")
    for tx in r.txs:
        table.add_row(tx["name"], tx["hash"], f"{tx['gas_used']:,}")
    out.print(table)
    out.print(f"gas of the round (commit + reveal/recover): [bold]{r.gas_round:,}[/]")
    out.print(f"latency (request -> output on chain): [bold]{r.latency_s * 1000:.0f} ms[/]")


@app.command()
def randomness(
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
    signal.signal(signal.SIGTERM, _terminate)
    progress = None if as_json else (lambda msg: err.print(f"[dim]· {msg}[/]", highlight=False))
    try:
        result = run_randomness(opts, progress=progress)
    except DemoError as exc:
        _fail(str(exc), 2 if "must" in str(exc) else 1)
    except KeyboardInterrupt:
        _fail("interrupted; the devnet and the nodes were stopped", 130)
    if as_json:
        print(json.dumps(result.to_json()))
    else:
        _print_round(result)


@app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="where to write the node's key file (mode 0600)")],
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Create a node key file: an Ethereum key (identity, signatures) and an X25519 key
    (peer-message encryption), both from the OS CSPRNG. Prints the node's address."""
    from offchain.wire.keys import NodeKeys

    if out.exists() and not force:
        _fail(f"{out} exists; use --force to overwrite it")
    keys = NodeKeys.generate()
    keys.save(out)
    print(keys.address)


def _check_node_config(cfg: NodeConfig) -> None:
    """Fail with one clear line before starting: keys unreadable, chain unreachable, or no
    contract at the market address."""
    from web3 import Web3

    from offchain.devnet.anvil import wait_for_rpc
    from offchain.wire.keys import KeyFileError, NodeKeys

    try:
        NodeKeys.load(cfg.keys_file)
    except KeyFileError as exc:
        _fail(f"keys_file: {exc} (create one with `mpc-market keygen --out FILE`)")
    try:
        wait_for_rpc(cfg.rpc_url, timeout_s=3.0)
    except Exception as exc:
        _fail(f"rpc_url {cfg.rpc_url} is unreachable: {exc}")
    w3 = Web3(Web3.HTTPProvider(cfg.rpc_url))
    if not Web3.is_address(cfg.market) or not w3.eth.get_code(
            Web3.to_checksum_address(cfg.market)):
        _fail(f"market {cfg.market}: no contract at this address on {cfg.rpc_url}")


@app.command()
def node(
    config: Annotated[Path, typer.Option(help="node config file (JSON)")],
    exit_with_parent: Annotated[bool, typer.Option(help="exit when stdin closes")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a provider node from a config file until SIGTERM/SIGINT."""
    from offchain.node.main import NodeStartError, run_node

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("web3").setLevel(logging.WARNING)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        _fail(str(exc))
    _check_node_config(cfg)
    try:
        asyncio.run(run_node(cfg, exit_with_parent=exit_with_parent))
    except KeyboardInterrupt:
        pass
    except NodeStartError as exc:
        _fail(str(exc), 1)
    except Exception as exc:
        logging.getLogger("mpc.node").exception("node stopped")
        _fail(f"node stopped: {exc}", 1)


def _register_subcommands() -> None:
    """Commands that live in their own modules (persistent network, buyer CLI, audit)."""
    from offchain.cli.audit import audit_command
    from offchain.cli.job import job_app
    from offchain.cli.net import down_command, up_command

    app.command("up")(up_command)
    app.command("down")(down_command)
    app.command("audit")(audit_command)
    app.add_typer(job_app, name="job", help="Buy computations through the HTTP API.")


_register_subcommands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
