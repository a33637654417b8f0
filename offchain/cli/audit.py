"""``mpc-market audit JOB_ID [--rpc-url URL] [--deployment FILE] [--json]``: check a finished job
from chain data alone (``offchain.audit``), one named line per check with its verdict.

Exit status: 0 if no check failed (a skipped check, e.g. the transcripts when no node publishes
them, is not a failure), 1 if a check failed, 2 on an error (no deployment file, unreachable
RPC, no contract at the address, unknown job), which prints one ``error: ...`` line on stderr.

The deployment file (JSON) says where the market is. Accepted keys (first match wins):

* the market address: ``market`` (a string), or ``contracts.MPCMarket.address``, or
  ``market.address``;
* the block to read logs from: ``contracts.MPCMarket.block``, ``market.block``,
  ``deploy_block`` or ``from_block`` (default 0: the whole chain);
* the chain: ``rpc_url`` (``--rpc-url`` overrides it).

``mpc-market up`` writes such a file (``chain_id``, ``rpc_url``, ``api_url``,
``contracts: {"MPCMarket": {"address", "block"}}``, ``nodes``; other keys are ignored), e.g.::

    {"rpc_url": "http://127.0.0.1:8545",
     "contracts": {"MPCMarket": {"address": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                                 "block": 1}}}

Without ``--deployment``, ``./deployment.json`` is read if it exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from web3 import Web3

from offchain.cli.common import fail, guard, safe
from offchain.errors import MarketError

__all__ = ["DEFAULT_DEPLOYMENT", "Deployment", "DeploymentError", "audit_command",
           "load_deployment"]

DEFAULT_DEPLOYMENT = Path("deployment.json")
RPC_TIMEOUT_S = 10


class DeploymentError(MarketError, ValueError):
    """The deployment file is missing, unreadable or names no market."""


@dataclass(frozen=True)
class Deployment:
    """Where the market is: its address, the first block to read logs from, and the chain's RPC
    URL (None if the file gives none)."""

    market: str
    from_block: int = 0
    rpc_url: str | None = None


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return None
        doc = doc[key]
    return doc


def load_deployment(path: Path) -> Deployment:
    """Read a deployment file (see the module docstring). Raises DeploymentError."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeploymentError(f"cannot read deployment file {path}: {exc.strerror or exc}") \
            from None
    except ValueError as exc:
        raise DeploymentError(f"deployment file {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DeploymentError(f"deployment file {path} is not a JSON object")
    market = next((m for m in (_get(doc, "market"), _get(doc, "contracts", "MPCMarket",
                                                            "address"),
                               _get(doc, "market", "address")) if isinstance(m, str)), None)
    if market is None or not Web3.is_address(market):
        raise DeploymentError(f"deployment file {path} names no market address (expected "
                              "\"market\" or \"contracts\": {\"MPCMarket\": {\"address\"}})")
    block = next((b for b in (_get(doc, "contracts", "MPCMarket", "block"),
                              _get(doc, "market", "block"), _get(doc, "deploy_block"),
                              _get(doc, "from_block")) if b is not None), 0)
    if isinstance(block, bool) or not isinstance(block, int) or block < 0:
        raise DeploymentError(f"deployment file {path}: the market's block must be a "
                              f"non-negative integer, got {block!r}")
    rpc = doc.get("rpc_url")
    if rpc is not None and not isinstance(rpc, str):
        raise DeploymentError(f"deployment file {path}: rpc_url must be a string")
    return Deployment(market=str(Web3.to_checksum_address(market)), from_block=block,
                      rpc_url=rpc)


_STYLE = {"PASS": "bold green", "FAIL": "bold red", "SKIP": "yellow"}


@guard
def audit_command(
    job_id: Annotated[int, typer.Argument(help="the job to audit", min=0)],
    rpc_url: Annotated[str | None, typer.Option(help="the chain's JSON-RPC URL (default: the "
                                                     "deployment file's rpc_url)")] = None,
    deployment: Annotated[Path | None, typer.Option(help="deployment file naming the market "
                                                         "(default: ./deployment.json)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Audit a job from on-chain data alone: parameters and escrow, the committee against the
    selection rule, every counted signature, the t+1 threshold, the result hash and statistic,
    payments or refund, deadlines, and (where nodes publish them) the signers' transcripts.
    Exit status 0 only if no check fails."""
    from offchain.audit import AuditError, audit_job

    path = deployment if deployment is not None else DEFAULT_DEPLOYMENT
    if deployment is None and not path.exists():
        fail(f"no deployment file: pass --deployment FILE (none at ./{DEFAULT_DEPLOYMENT})")
    try:
        dep = load_deployment(path)
    except DeploymentError as exc:
        fail(str(exc))
    url = rpc_url or dep.rpc_url
    if not url:
        fail(f"no RPC URL: pass --rpc-url URL ({path} has no rpc_url)")
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": RPC_TIMEOUT_S}))
    try:
        report = audit_job(w3, dep.market, job_id, from_block=dep.from_block)
    except AuditError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"[bold]job {report.job_id}[/] on chain {report.chain_id}, market "
                  f"{report.market}: {safe(report.query)} ({report.status})")
        width = max(len(c.name) for c in report.checks)
        for c in report.checks:
            out.print(f"[{_STYLE[c.verdict]}]{c.verdict}[/]  {c.name:<{width}}  "
                      f"{safe(c.detail)}")
        failed = report.failed()
        out.print(f"[bold]{'all checks passed' if not failed else 'FAILED: ' + ', '.join(failed)}"
                  "[/]")
    raise typer.Exit(0 if report.ok else 1)


def main() -> None:
    """``python -m offchain.cli.audit JOB_ID ...`` (until the command is registered in cli)."""
    typer.run(audit_command)


if __name__ == "__main__":
    main()
