"""The buyer's side of ``mpc-market job``, without the commands: amounts, key files, finding
the API, requests and their problem answers, the check of a prepared transaction before it is
signed, and the cache of signed attempts (kept under their idempotency key).

Every failure raises :class:`CliError` (a MarketError) with the exit status in ``code`` (2 for bad
input or a 4xx answer, 1 otherwise) and extra lines in ``lines``; the commands in
:mod:`offchain.cli.job` let it through to :func:`offchain.cli.common.guard`.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from offchain.cli.common import err
from offchain.encoding.eip712 import SECP256K1_N
from offchain.errors import MarketError
from offchain.wire.keys import KeyFileError, NodeKeys

__all__ = ["DEFAULT_MANIFEST", "MAX_FEE_PER_GAS_WEI", "MAX_GAS", "CliError", "check_tx",
           "load_account", "load_attempt", "parse_amount", "request", "resolve_api",
           "save_attempt"]

DEFAULT_MANIFEST = Path(".mpc-market") / "deployment.json"
_UNITS = {"wei": 0, "gwei": 9, "ether": 18, "eth": 18}
_AMOUNT = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)")
_HEX_KEY = re.compile(r"(?:0x)?([0-9a-fA-F]{64})")


class CliError(MarketError):
    """A buyer-CLI failure: one-line message, exit status ``code`` (2 bad input, 1 failure)
    and extra ``lines`` printed indented below it."""

    def __init__(self, message: str, code: int = 1, lines: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.lines = lines or []


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


def request(client: httpx.Client, method: str, url: str, **kw: Any) -> Any:
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


def _attempts_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mpc-market" / "job-posts"


def save_attempt(key: str, attempt: dict[str, Any]) -> None:
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


def load_attempt(key: str, api_url: str, body: dict[str, Any]) -> dict[str, Any] | None:
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
