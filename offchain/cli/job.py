"""The buyer's command line: ``mpc-market job post|show|wait``, a client of the HTTP API only.

    mpc-market job post --query SPEC --dataset NAME --key-file FILE [--pay AMOUNT]
                        [--committee N] [--threshold T] [--min-providers M] [--timeout-s S]
                        [--idempotency-key KEY] [--json]
    mpc-market job show ID [--json]
    mpc-market job wait ID [--timeout-s S] [--json]

The API is found with ``--api-url`` (or ``$MPC_MARKET_API_URL``), else from the manifest
``--deployment FILE`` (default ``.mpc-market/deployment.json``, written by ``mpc-market up``).

``post`` asks the API to prepare the unsigned ``postJob`` transaction, signs it here with the key
of ``--key-file`` (a key file of ``mpc-market keygen``, or a file holding one ``0x``-hex private
key; the key never leaves this process) and submits the signed bytes with an
``Idempotency-Key`` header (a fresh UUID unless ``--idempotency-key`` repeats the one a failed
attempt printed). Before signing it checks that the transaction is from the key's address, pays
what was asked and, when a manifest is known, goes to the manifest's MPCMarket on its chain.
The signed transaction is kept under its key in ``$XDG_CACHE_HOME/mpc-market/job-posts/``
(default ``~/.cache``), so a retry with ``--idempotency-key`` resends the very same bytes and
the API answers with the job of the first attempt; the same key with other options is refused.

Amounts: ``0.03ether``, ``30000000gwei``, ``30000000000000000`` (wei) or ``...wei``.

Errors print one line ``error: ...`` on stderr (API problems as ``error: <title>: <detail>``,
then one indented line per offending field): exit status 2 for bad input (a 4xx answer), 1 for
other failures; ``wait`` exits 1 when the job is refunded or expired, or not final in time.
"""


from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from offchain.cli.buyer import (
    DEFAULT_MANIFEST,
    CliError,
    check_tx,
    load_account,
    load_attempt,
    parse_amount,
    request,
    resolve_api,
    save_attempt,
)
from offchain.cli.common import err, fail, guard, tx_table

__all__ = ["CliError", "check_tx", "job_app", "load_account", "parse_amount", "post_command",
           "show_command", "wait_command"]

FINAL = ("finalized", "refunded", "expired")
MAX_WAIT_PER_REQUEST_S = 60  # the API accepts ?wait= up to 120 s

job_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Post jobs and follow them through the buyer API.")

ApiUrl = Annotated[str | None, typer.Option(
    "--api-url", envvar="MPC_MARKET_API_URL",
    help="the API's base URL (default: api_url of the deployment manifest)")]
Deployment = Annotated[Path | None, typer.Option(
    "--deployment", help=f"deployment manifest (default: {DEFAULT_MANIFEST})")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]


def _client(timeout_s: float) -> httpx.Client:
    return httpx.Client(timeout=timeout_s, headers={"Accept": "application/json"})


def _eth(wei: Any) -> str:
    return f"{Decimal(int(wei)).scaleb(-18).normalize():f} ETH"


def _when(ts: Any) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _print_job(job: dict[str, Any]) -> None:
    out = Console()
    status = str(job.get("status"))
    colour = {"finalized": "green", "refunded": "yellow", "expired": "red"}.get(status, "cyan")
    table = Table(title=f"job {job.get('job_id')}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("status", f"[{colour}]{status}[/]")
    for key, label in (("dataset", "dataset"), ("query", "query"), ("buyer", "buyer")):
        table.add_row(label, str(job.get(key)))
    table.add_row("committee", f"N={job.get('committee_size')}, T={job.get('threshold')}, "
                               f"at least {job.get('min_providers')} providers")
    if job.get("escrow_wei") is not None:
        table.add_row("escrow", _eth(job["escrow_wei"]))
    if job.get("deadline") is not None:
        table.add_row("deadline", _when(job["deadline"]))
    if job.get("committee"):
        table.add_row("members", "\n".join(job["committee"]))
    result = job.get("result")
    if isinstance(result, dict):
        stat = result.get("statistic")
        table.add_row("[bold green]result[/]", str(stat) if stat is not None
                      else f"undefined ({result.get('statistic_error')})")
        table.add_row("aggregates", ", ".join(str(a) for a in result.get("aggregates", [])))
        table.add_row("providers", str(result.get("provider_count")))
        table.add_row("signers", "\n".join(result.get("signers", [])))
        table.add_row("proof hash", str(result.get("proof_hash")))
    if job.get("refund_wei") is not None:
        table.add_row("refunded", _eth(job["refund_wei"]))
    out.print(table)
    txs = job.get("transactions") or []
    if txs:
        out.print(tx_table(txs, block=True))


# ----------------------------------------------------------------------------- commands


@job_app.command("post")
@guard
def post_command(
    query: Annotated[str, typer.Option(help="count | sum:C | mean:C | var:C | std:C | "
                                            "pearson:A,B | histogram:C:E0,...,Ek")],
    dataset: Annotated[str, typer.Option(help="dataset name (see the manifest or GET "
                                              "/v1/datasets)")],
    key_file: Annotated[Path, typer.Option(help="the buyer's key: a `mpc-market keygen` file "
                                                "or a file with a 0x-hex private key")],
    pay: Annotated[str, typer.Option(help="escrow: 0.03ether, 30000000gwei or wei (at least "
                                          "the job price; the signed transaction must pay "
                                          "exactly this)")],
    committee: Annotated[int | None, typer.Option(help="committee size N (API default 3)")]
    = None,
    threshold: Annotated[int | None, typer.Option(help="threshold T (API default 1)")] = None,
    min_providers: Annotated[int | None, typer.Option(
        help="minimum contributing providers (API default: every active provider)")] = None,
    timeout_s: Annotated[int | None, typer.Option(help="job timeout in seconds (API default "
                                                       "600)")] = None,
    idempotency_key: Annotated[str | None, typer.Option(
        help="repeat the key a failed attempt printed, so a retry cannot post twice")] = None,
    api_url: ApiUrl = None,
    deployment: Deployment = None,
    market: Annotated[str | None, typer.Option(
        help="MPCMarket address the transaction must go to (default: from the manifest; "
             "required with --api-url alone)")] = None,
    chain_id: Annotated[int | None, typer.Option(
        help="chain id the transaction must be for (default: from the manifest)")] = None,
    as_json: AsJson = False,
) -> None:
    """Post a job: the API prepares the transaction, this command checks it is exactly the job
    asked for, signs it locally and submits it. Prints the job id."""
    account = load_account(key_file)
    try:
        payment = parse_amount(pay)
    except ValueError as exc:
        raise CliError(f"--pay: {exc}", 2) from None
    base, manifest = resolve_api(api_url, deployment)
    if manifest is not None:
        market = market or str(manifest["contracts"]["MPCMarket"]["address"])
        chain_id = chain_id if chain_id is not None else int(manifest["chain_id"])
    if market is None or chain_id is None:
        raise CliError("with --api-url and no manifest, pass --market and --chain-id: the "
                       "transaction is checked against them before signing", 2)
    body: dict[str, Any] = {"dataset": dataset, "query": query, "buyer": account.address}
    for name, value in (("committee_size", committee), ("threshold", threshold),
                        ("min_providers", min_providers), ("timeout_s", timeout_s),
                        ("payment_wei", payment)):
        if value is not None:
            body[name] = value
    key = idempotency_key or str(uuid.uuid4())
    with _client(90.0) as client:
        attempt = load_attempt(key, base, body) if idempotency_key else None
        if attempt is None:
            prepared = request(client, "POST", f"{base}/v1/jobs/prepare", json=body)
            tx = prepared.get("tx") if isinstance(prepared, dict) else None
            if not isinstance(tx, dict):
                raise CliError("the API's prepare answer has no transaction")
            check_tx(tx, account, body, payment, market, chain_id)
            try:
                signed = account.sign_transaction(tx)
            except (TypeError, ValueError) as exc:
                raise CliError(f"cannot sign the prepared transaction: {exc}") from None
            attempt = {"api_url": base, "request": body, "job": prepared.get("job"),
                       "signed_tx": "0x" + bytes(signed.raw_transaction).hex()}
            save_attempt(key, attempt)
        if not as_json:
            err.print(f"[dim]· idempotency key {key} (on a failure, retry with "
                      f"--idempotency-key {key})[/]", highlight=False)
        try:
            posted = request(client, "POST", f"{base}/v1/jobs",
                             json={"signed_tx": attempt["signed_tx"]},
                             headers={"Idempotency-Key": key})
        except CliError as exc:
            if exc.code == 1:  # the job may or may not be posted: say how to retry
                exc.lines.append(f"retry with --idempotency-key {key} (the same signed "
                                 "transaction is sent again; it cannot post twice)")
            raise
    if as_json:
        print(json.dumps({**posted, "idempotency_key": key, "job": attempt.get("job")}))
        return
    job_id = posted.get("job_id")
    print(job_id)
    err.print(f"job {job_id} posted in tx {posted.get('tx_hash')}; follow it with "
              f"`mpc-market job wait {job_id}`", highlight=False, soft_wrap=True)


@job_app.command("show")
@guard
def show_command(
    job_id: Annotated[int, typer.Argument(help="job id")],
    api_url: ApiUrl = None,
    deployment: Deployment = None,
    as_json: AsJson = False,
) -> None:
    """Show a job: status, parameters, committee, result and transactions."""
    base, _ = resolve_api(api_url, deployment)
    with _client(30.0) as client:
        job = request(client, "GET", f"{base}/v1/jobs/{job_id}")
    if as_json:
        print(json.dumps(job))
    else:
        _print_job(job)


@job_app.command("wait")
@guard
def wait_command(
    job_id: Annotated[int, typer.Argument(help="job id")],
    timeout_s: Annotated[float, typer.Option(help="give up after this many seconds")] = 600.0,
    api_url: ApiUrl = None,
    deployment: Deployment = None,
    as_json: AsJson = False,
) -> None:
    """Wait until a job is final and print its result. Exit status 0 when it was finalized,
    1 when it was refunded or expired, or is still open after --timeout-s."""
    deadline = time.monotonic() + max(0.0, timeout_s)
    base, _ = resolve_api(api_url, deployment)
    with _client(MAX_WAIT_PER_REQUEST_S + 30.0) as client:
        while True:
            left = deadline - time.monotonic()
            wait = max(0, min(MAX_WAIT_PER_REQUEST_S, int(left)))
            job = request(client, "GET", f"{base}/v1/jobs/{job_id}", params={"wait": wait})
            status = str(job.get("status"))
            if status in FINAL or time.monotonic() >= deadline:
                break
            if wait == 0:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if as_json:
        print(json.dumps(job))
    if status == "finalized":
        if not as_json:
            result = job.get("result") or {}
            stat = result.get("statistic")
            shown = stat if stat is not None else f"undefined ({result.get('statistic_error')})"
            print(f"job {job_id} finalized: {job.get('query')} = {shown}")
            err.print(f"aggregates {result.get('aggregates')}, {result.get('provider_count')} "
                      f"providers, signed by {len(result.get('signers', []))} members",
                      highlight=False, soft_wrap=True)
        return
    if status in FINAL:
        fail(f"job {job_id} was {status}" + (
            f" ({_eth(job['refund_wei'])} returned to the buyer)"
            if job.get("refund_wei") else ""), 1)
    fail(f"job {job_id} is not final after {timeout_s:g} s (status: {status})", 1)


if __name__ == "__main__":
    job_app()
