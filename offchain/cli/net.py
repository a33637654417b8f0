"""``mpc-market up`` and ``mpc-market down``: a persistent local network (devnet/localnet.py).

    mpc-market up [--providers P] [--data CSV] [--state-dir DIR] [--rpc-port N]
                  [--preserve-history] [--json]
    mpc-market down [--state-dir DIR]

The state directory defaults to ``.mpc-market/`` in the current directory. ``up`` returns once
anvil, every node and the API answer; its processes keep running (detached) until ``down``.
Errors print one line ``error: ...`` on stderr: exit status 2 for bad input (nothing was
started), 1 for a failure (everything that was started was stopped again).

Also runnable on its own: ``python -m offchain.cli.net up|down ...``.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from offchain.cli.common import fail, guard, progress_printer, terminate
from offchain.devnet.localnet import UpOptions, down, up
from offchain.devnet.state_dir import DEFAULT_STATE_DIR
from offchain.errors import MarketError

StateDir = Annotated[Path, typer.Option(
    "--state-dir", help="the network's state directory (chain state, node keys and data, "
                        "logs, deployment.json)")]


def _print_up(m: dict[str, Any], elapsed_s: float, state_dir: Path) -> None:
    out = Console()
    market = m["contracts"]["MPCMarket"]
    out.print(f"[bold green]network up[/] in {elapsed_s:.1f} s  (state: {m['state_dir']})")
    out.print(f"chain {m['chain_id']}  RPC [cyan]{m['rpc_url']}[/]")
    out.print(f"MPCMarket {market['address']} (deployed in block {market['block']})")
    out.print(f"API [cyan]{m['api_url'] or '(not started)'}[/]")
    for ds in m["datasets"]:
        out.print(f"dataset [bold]{ds['name']}[/]: {len(ds['columns'])} columns, "
                  f"{len(ds['providers'])} providers")
    table = Table(title="provider nodes")
    table.add_column("node address")
    table.add_column("endpoint")
    for n in m["nodes"]:
        table.add_row(n["address"], n["endpoint"])
    out.print(table)
    out.print(f"manifest: {Path(m['state_dir']) / 'deployment.json'}   logs: "
              f"{Path(m['state_dir']) / 'logs'}/")
    out.print(f"stop it with: mpc-market down --state-dir {state_dir}")


@guard
def up_command(
    providers: Annotated[int | None, typer.Option(
        help="provider node processes P (>= 3; default 5 for a new network; a resumed "
             "network keeps its own)")] = None,
    data: Annotated[Path | None, typer.Option(
        help="CSV with a header row, dealt to the providers in disjoint slices (default "
             "data/wdbc.csv for a new network; the dataset is named after the file)")] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
    rpc_port: Annotated[int, typer.Option(
        help="anvil's port (0: a free port, chosen at each up; deployment.json names it)")] = 0,
    preserve_history: Annotated[bool, typer.Option(
        help="keep every block's state across restarts (anvil --preserve-historical-states) "
             "so eth_call at old blocks works after a resume; costs ~140 kB of state file "
             "per block")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the manifest as JSON")] = False,
) -> None:
    """Start (or resume) a local network that stays up: an anvil devnet persisted under the
    state directory, the MPCMarket contract, P provider nodes and the buyer API. Writes
    DIR/deployment.json and returns once everything answers."""
    opts = UpOptions(state_dir=state_dir, providers=providers, data=data, rpc_port=rpc_port,
                     preserve_history=preserve_history)
    previous = signal.signal(signal.SIGTERM, terminate)
    t0 = time.monotonic()
    try:
        manifest = up(opts, progress_printer(as_json))
    except KeyboardInterrupt:
        fail("interrupted; what was started has been stopped", 130)
    except MarketError:
        raise  # LocalNetError and the like: one line with their code (guard)
    except Exception as exc:  # e.g. the chain went away mid-way; already cleaned up
        first = (str(exc).strip().splitlines() or [""])[0]
        fail(f"up failed ({type(exc).__name__}): {first} (logs: {state_dir / 'logs'})", 1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if as_json:
        print(json.dumps(manifest))
    else:
        _print_up(manifest, time.monotonic() - t0, state_dir)


@guard
def down_command(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Stop what `mpc-market up` started in the state directory (the API, the nodes, then
    anvil, which saves the chain). Running it when nothing runs is fine."""
    stopped = down(state_dir)
    if not stopped:
        print(f"nothing is running under {state_dir}")
        return
    for name, pid, how in stopped:
        print(f"{how} {name} (pid {pid})")
    print(f"network down; `mpc-market up --state-dir {state_dir}` resumes it")


net_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="A persistent local MPC market network.")
net_app.command("up")(up_command)
net_app.command("down")(down_command)

if __name__ == "__main__":
    net_app()
