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
import os
import re
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from offchain.wire.keys import SECP256K1_N, KeyFileError, NodeKeys

DEFAULT_MANIFEST = Path(".mpc-market") / "deployment.json"
FINAL = ("finalized", "refunded", "expired")
MAX_WAIT_PER_REQUEST_S = 60  # the API accepts ?wait= up to 120 s
_UNITS = {"wei": 0, "gwei": 9, "ether": 18, "eth": 18}
_AMOUNT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")
_HEX_KEY = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")

err = Console(stderr=True)
job_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="Post jobs and follow them through the buyer API.")

ApiUrl = Annotated[str | None, typer.Option(
    "--api-url", envvar="MPC_MARKET_API_URL",
    help="the API's base URL (default: api_url of the deployment manifest)")]
Deployment = Annotated[Path | None, typer.Option(
    "--deployment", help=f"deployment manifest (default: {DEFAULT_MANIFEST})")]
AsJson = Annotated[bool, typer.Option("--json", help="print the API's JSON answer")]


class CliError(Exception):
    def __init__(self, message: str, code: int = 1, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.lines = lines or []


def _fail(exc: CliError) -> NoReturn:
    err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    for line in exc.lines:
        err.print(f"  {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(exc.code)


# ----------------------------------------------------------------------------- helpers


def parse_amount(text: str) -> int:
    """``"0.03ether"`` / ``"0.03 eth"`` / ``"30000000gwei"`` / ``"30000000000000000"`` (wei)
    -> wei. Raises ValueError for anything else, or for a fraction of a wei."""
    m = _AMOUNT.fullmatch(text.strip())
    unit = m.group(2).lower() if m else ""
    if m is None or unit not in ("", *_UNITS):
        raise ValueError(f"{text!r} is not an amount (e.g. 0.03ether, 30000000gwei, or wei)")
    try:
        wei = Decimal(m.group(1)).scaleb(_UNITS.get(unit, 0))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{text!r} is not an amount") from exc
    if wei != wei.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of wei")
    return int(wei)


def load_account(path: Path) -> LocalAccount:
    """The Ethereum key of ``path``: a NodeKeys JSON file (``mpc-market keygen``) or a file
    holding one hex private key. Raises CliError (code 2); never shows the key."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"--key-file {path}: cannot read: {exc}", 2) from None
    if text.startswith("{"):
        try:
            return NodeKeys.load(path).eth
        except KeyFileError as exc:
            raise CliError(f"--key-file: {exc}", 2) from None
    m = _HEX_KEY.fullmatch(text)
    if m is None:
        raise CliError(f"--key-file {path}: neither a key file of `mpc-market keygen` nor a "
                       "0x-hex private key (64 hex digits)", 2)
    raw = bytes.fromhex(m.group(1))
    if not 0 < int.from_bytes(raw, "big") < SECP256K1_N:
        raise CliError(f"--key-file {path}: the private key is out of range", 2)
    account: LocalAccount = Account.from_key(raw)
    return account


def resolve_api(api_url: str | None, deployment: Path | None) -> tuple[str, dict[str, Any] | None]:
    """The API base URL and, if one was used, the manifest (for the transaction checks)."""
    manifest: dict[str, Any] | None = None
    path = deployment or DEFAULT_MANIFEST
    if deployment is not None or api_url is None:
        if not path.is_file():
            if deployment is not None:
                raise CliError(f"--deployment {path}: no such file", 2)
            raise CliError(f"no API URL: pass --api-url or --deployment, or start a network "
                           f"with `mpc-market up` (there is no {DEFAULT_MANIFEST} here)", 2)
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read the deployment manifest {path}: {exc}", 2) from None
        if not isinstance(manifest, dict):
            raise CliError(f"{path} is not a deployment manifest", 2)
    if api_url is None:
        assert manifest is not None
        api_url = manifest.get("api_url")
        if not isinstance(api_url, str) or not api_url:
            raise CliError(f"{path} names no running API (api_url is null): start the network "
                           "with `mpc-market up`")
    return api_url.rstrip("/"), manifest


def _problem(r: httpx.Response) -> CliError:
    """An error answer as one line (RFC 9457 problem details if it is one)."""
    code = 2 if 400 <= r.status_code < 500 else 1
    try:
        body = r.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "title" in body:
        detail = body.get("detail")
        lines = []
        for e in body.get("errors") or []:
            if isinstance(e, dict):
                field, message = e.get("field", "?"), e.get("message", "")
                lines.append(f"field {field}" if message == detail else f"{field}: {message}")
        return CliError(f"{body['title']}: {detail}" if detail else str(body["title"]), code,
                        lines)
    text = r.text.strip().splitlines()[0][:200] if r.text.strip() else r.reason_phrase
    return CliError(f"HTTP {r.status_code} from {r.request.url}: {text}", code)


def _request(client: httpx.Client, method: str, url: str, **kw: Any) -> Any:
    try:
        r = client.request(method, url, **kw)
    except httpx.TimeoutException:
        raise CliError(f"the API at {url} did not answer in time") from None
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the API at {url}: {exc} (is the network up? "
                       "`mpc-market up`)") from None
    if r.status_code >= 400:
        raise _problem(r)
    try:
        return r.json()
    except ValueError:
        raise CliError(f"{method} {url}: the answer is not JSON") from None


def _client(timeout_s: float) -> httpx.Client:
    return httpx.Client(timeout=timeout_s, headers={"Accept": "application/json"})


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    raise ValueError(f"not a quantity: {value!r}")


MAX_GAS = 2_000_000
MAX_FEE_PER_GAS_WEI = 1_000 * 10**9  # 1000 gwei: a sanity cap, far above any devnet price


def check_tx(tx: dict[str, Any], account: LocalAccount, request: dict[str, Any],
             payment_wei: int, market: str, chain_id: int) -> None:
    """Refuse to sign a prepared transaction that is not exactly the job we asked for: from our
    address, to ``market`` on ``chain_id``, paying ``payment_wei``, calling postJob with our
    dataset, query and (where we set them) N, T, M and timeout, with bounded gas and fees.
    A malicious or compromised API can therefore not make the buyer sign anything else."""
    from offchain.chain.market import decode_post_job
    from offchain.encoding.eip712 import dataset_id
    from offchain.encoding.query import QueryError, parse_query

    try:
        sender = str(tx.get("from", account.address))
        if sender.lower() != account.address.lower():
            raise CliError(f"the API prepared a transaction from {sender}, not from the key's "
                           f"address {account.address}; not signing it")
        if _int(tx["value"]) != payment_wei:
            raise CliError(f"the API prepared a transaction paying {_int(tx['value'])} wei, "
                           f"not {payment_wei}; not signing it")
        if str(tx["to"]).lower() != market.lower():
            raise CliError(f"the API prepared a transaction to {tx['to']}, not to "
                           f"MPCMarket {market}; not signing it")
        if _int(tx["chainId"]) != chain_id:
            raise CliError(f"the API prepared a transaction for chain "
                           f"{_int(tx['chainId'])}, not {chain_id}; not signing it")
        if _int(tx["gas"]) > MAX_GAS or _int(tx["maxFeePerGas"]) > MAX_FEE_PER_GAS_WEI or \
                _int(tx["maxPriorityFeePerGas"]) > _int(tx["maxFeePerGas"]):
            raise CliError("the API prepared a transaction with excessive gas or fees; not "
                           "signing it")
        data = tx["data"]
        try:
            d, raw_q, n, t, m, timeout = decode_post_job(
                bytes.fromhex(data[2:] if data.startswith("0x") else data))
        except LookupError:
            raise CliError("the API prepared a transaction that does not call postJob; not "
                           "signing it") from None
        q = raw_q.decode("utf-8")
        want = {"committee_size": n, "threshold": t, "min_providers": m, "timeout_s": timeout}
        if d != dataset_id(str(request["dataset"])) or \
                parse_query(q) != parse_query(str(request["query"])) or \
                any(request.get(k) is not None and request[k] != v for k, v in want.items()):
            raise CliError("the API prepared a postJob with other parameters than the ones "
                           "asked for; not signing it")
    except (KeyError, TypeError, ValueError, AttributeError, QueryError) as exc:
        raise CliError(f"the API's prepared transaction is malformed ({exc}); not signing "
                       "it") from None


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
        tt = Table(title="transactions")
        tt.add_column("name")
        tt.add_column("hash", overflow="fold", min_width=20)
        tt.add_column("block", justify="right")
        tt.add_column("gas used", justify="right")
        for tx in txs:
            tt.add_row(str(tx.get("name")), str(tx.get("hash")), str(tx.get("block")),
                       f"{int(tx.get('gas_used', 0)):,}")
        out.print(tt)


def _attempts_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mpc-market" / "job-posts"


def _save_attempt(key: str, attempt: dict[str, Any]) -> None:
    """Keep the signed transaction of a post under its idempotency key, so that a retry with
    ``--idempotency-key`` sends the very same bytes (a re-prepared transaction could carry
    another nonce, which the API would reject as another body for the key). A signed
    transaction is public once broadcast; it does not reveal the key."""
    d = _attempts_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{_safe(key)}.json").write_text(json.dumps(attempt))
    except OSError as exc:  # a retry then re-prepares; warn, do not fail the post
        err.print(f"[yellow]warning:[/] cannot keep the signed transaction in {d}: {exc}",
                  highlight=False)


def _load_attempt(key: str, api_url: str, body: dict[str, Any]) -> dict[str, Any] | None:
    path = _attempts_dir() / f"{_safe(key)}.json"
    try:
        attempt = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unknown here (another machine?): prepare and sign afresh
    if not isinstance(attempt, dict) or attempt.get("api_url") != api_url or \
            attempt.get("request") != body or not isinstance(attempt.get("signed_tx"), str):
        raise CliError(f"--idempotency-key {key} was used for another job (other options or "
                       "another API); use a new key for a new job", 2)
    return attempt


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:200]


# ----------------------------------------------------------------------------- commands


@job_app.command("post")
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
    try:
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
            attempt = _load_attempt(key, base, body) if idempotency_key else None
            if attempt is None:
                prepared = _request(client, "POST", f"{base}/v1/jobs/prepare", json=body)
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
                _save_attempt(key, attempt)
            if not as_json:
                err.print(f"[dim]· idempotency key {key} (on a failure, retry with "
                          f"--idempotency-key {key})[/]", highlight=False)
            try:
                posted = _request(client, "POST", f"{base}/v1/jobs",
                                  json={"signed_tx": attempt["signed_tx"]},
                                  headers={"Idempotency-Key": key})
            except CliError as exc:
                if exc.code == 1:  # the job may or may not be posted: say how to retry
                    exc.lines.append(f"retry with --idempotency-key {key} (the same signed "
                                     "transaction is sent again; it cannot post twice)")
                raise
    except CliError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps({**posted, "idempotency_key": key, "job": attempt.get("job")}))
        return
    job_id = posted.get("job_id")
    print(job_id)
    err.print(f"job {job_id} posted in tx {posted.get('tx_hash')}; follow it with "
              f"`mpc-market job wait {job_id}`", highlight=False, soft_wrap=True)


@job_app.command("show")
def show_command(
    job_id: Annotated[int, typer.Argument(help="job id")],
    api_url: ApiUrl = None,
    deployment: Deployment = None,
    as_json: AsJson = False,
) -> None:
    """Show a job: status, parameters, committee, result and transactions."""
    try:
        base, _ = resolve_api(api_url, deployment)
        with _client(30.0) as client:
            job = _request(client, "GET", f"{base}/v1/jobs/{job_id}")
    except CliError as exc:
        _fail(exc)
    if as_json:
        print(json.dumps(job))
    else:
        _print_job(job)


@job_app.command("wait")
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
    try:
        base, _ = resolve_api(api_url, deployment)
        with _client(MAX_WAIT_PER_REQUEST_S + 30.0) as client:
            while True:
                left = deadline - time.monotonic()
                wait = max(0, min(MAX_WAIT_PER_REQUEST_S, int(left)))
                job = _request(client, "GET", f"{base}/v1/jobs/{job_id}",
                               params={"wait": wait})
                status = str(job.get("status"))
                if status in FINAL or time.monotonic() >= deadline:
                    break
                if wait == 0:
                    time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    except CliError as exc:
        _fail(exc)
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
        _fail(CliError(f"job {job_id} was {status}" + (
            f" ({_eth(job['refund_wei'])} returned to the buyer)"
            if job.get("refund_wei") else "")))
    _fail(CliError(f"job {job_id} is not final after {timeout_s:g} s (status: {status})"))


if __name__ == "__main__":
    job_app()
