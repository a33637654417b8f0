"""Audit a job from chain data alone (issue 4): every claim the market makes about a job,
recomputed from its logs, its transactions' calldata and the contract's state at past blocks.

:func:`audit_job` rebuilds the job and runs these named checks (stable names; a check that does
not apply, e.g. the signatures of a refunded job, is *skipped*, which is not a failure):

``job.parameters``
    One ``JobPosted`` log; the stored job (``getJob``) agrees with it (buyer, spec hash =
    keccak(datasetId, keccak(query)), deadline, n, t, M, seed round); 3 <= n <= 32, t >= 1,
    2t+1 <= n, M >= 1; the stored status matches the settlement logs.
``job.escrow``
    The logged escrow equals the stored one and is at least ``minPaymentWei``; the post
    transaction succeeded and really paid escrow + callback fee (``JobCallbackRequested``, for a
    job posted with a callback): as its value when the buyer called the market directly, as the
    market's balance growth across the block when a buyer contract did. The stored callback
    settings (``jobCallback``) agree with the logs: a nonzero callback gas limit iff one
    ``JobCallbackRequested`` log with that limit, its fee held while the job is Open.
``committee.selection_rule``
    The committee logged in ``CommitteeAssigned`` hashes to the stored ``committeeHash`` and is
    the one passed to ``finalizeJob``; the drawing round is the job's seed round (or the
    successor of a round that failed before committing); the job was posted before that round's
    output was fixed (its ``RoundCommitted``); every opened contribution matches its Pedersen
    commitment (openings decoded from the ``reveal``/``recover`` calldata) and every committed
    participant was opened; the output equals keccak(chainid, market, round, sum of the opened
    secrets) and the stored one; and the committee equals :func:`draw_committee` over the nodes
    eligible at the commit block (recomputed from the registry's events) with seed
    keccak(TAG, output, jobId).
``signatures.valid``
    Each ``ResultCommitment`` signature in the ``finalizeJob`` calldata recovers (EIP-712 digest
    recomputed from the calldata's aggregates and inputs) to a committee member that was
    registered with a nonzero stake at the block before finalization (from the registry's state
    at that block, or replayed from its events on a node without history); signers strictly
    ascending; the logged and stored signer mask and the logged proof hash follow from them.
``signatures.threshold``
    At least t+1 distinct valid committee signatures (and t+1 bits in the stored mask).
``inputs.providers``
    Each provider input in the calldata carries a valid ``InputCommitment`` signature by a
    provider registered at the block before finalization; providers strictly ascending; at least
    M of them; the count and the inputs hash chain equal the logged (and stored) ones.
``result.hash``
    keccak256(abi.encodePacked(aggregates)) of the logged aggregates equals the logged and the
    stored ``resultHash``, and the logged aggregates are those of the calldata.
``result.statistic``
    The query parses, the aggregate vector has the length it needs, and the statistic follows
    from it (exact rational arithmetic, ``offchain.query.statistic``); the value is reported.
``payments``
    Finalized: the logged reward per signer is escrow // k for the k counted signatures, the
    shares (the first signer also gets the remainder) add up to the escrow, a requested callback
    was delivered (``JobCallback``) crediting its fee to the finalizer, and in the finalize
    block each signer's ``rewardsWei`` grew by exactly its share (the finalizer's also by the
    fee), all together by escrow + fee (not checked, and said so, on a node without historical
    state: the log-based checks still run). Refunded: the refund equals escrow + callback fee, went
    to the buyer and left the market's balance (an EOA buyer's balance grew by it, less gas). An
    Open job fails this check: its escrow is neither paid out nor refunded. Balances are
    compared across a block only when the transaction is alone in it.
``deadlines``
    The deadline lies 1..maxTimeoutS after the post block; the committee was assigned and the
    job finalized no later than the deadline, a refund only after it.
``transcripts``
    Where the signers publish their transcripts (``GET /v1/transcripts/{job}`` at the endpoint
    they registered), each one's Merkle root equals the ``transcriptRoot`` it signed, every
    envelope in it is for this chain, market and job, its digest is the recorded leaf, and its
    signature recovers to its sender; it holds a share from every counted provider and enough
    ``agree``/``open`` messages. Skipped when no signer's endpoint answers. Each fetch is cut
    off after :data:`FETCH_DEADLINE_S` and all of them after :data:`TRANSCRIPTS_BUDGET_S` (a
    transcript not fetched in time counts as unavailable, never as verified).

Data comes from a :class:`LogSource` (decoded logs and transactions, by default the real chain
through ``eth_getLogs``/``eth_getTransactionByHash``; injectable so tests can feed doctored
data) and from ``eth_call``/``eth_getBalance`` at historical blocks. On a node without that
state (e.g. anvil restarted without ``--preserve-history``) the current state is never used in
its place: registrations at a block are replayed from the registry's events, and comparisons of
balances or rewards across a block are left out, which the check's detail says.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.types import BlockIdentifier

from offchain import eip712, pedersen
from offchain.chain.compile import compile_contracts
from offchain.chain.events import EventDecoder
from offchain.envelope import EnvelopeError, envelope_digest
from offchain.keys import SECP256K1_N
from offchain.protocol.beacon import round_output
from offchain.protocol.committee import committee_seed, draw_committee, eligible_from_events
from offchain.query import QueryError, StatisticError, parse_query, statistic
from offchain.transcript import Transcript

__all__ = [
    "CHECK_NAMES",
    "FETCH_DEADLINE_S",
    "MAX_TRANSCRIPT_BYTES",
    "TRANSCRIPTS_BUDGET_S",
    "AuditError",
    "AuditReport",
    "ChainLogSource",
    "Check",
    "LogSource",
    "TranscriptFetcher",
    "audit_job",
    "http_transcript_fetcher",
    "registration_from_events",
    "verify_transcript",
]

CHECK_NAMES = (
    "job.parameters",
    "job.escrow",
    "committee.selection_rule",
    "signatures.valid",
    "signatures.threshold",
    "inputs.providers",
    "result.hash",
    "result.statistic",
    "payments",
    "deadlines",
    "transcripts",
)

_STATUS = {0: "None", 1: "Open", 2: "Finalized", 3: "Refunded"}
_MIN_COMMITTEE, _MAX_COMMITTEE, _MAX_AGGREGATES = 3, 32, 64

#: fetch(endpoint, job_id) -> the transcript JSON object, or None if it is not available.
TranscriptFetcher = Callable[[str, int], dict[str, Any] | None]


class AuditError(RuntimeError):
    """The audit cannot run: unreachable RPC, no contract at the address, unknown job."""


@dataclass(frozen=True)
class Check:
    """One named check: ``ok`` is False only for a failure; a skipped check is ok."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``SKIP``."""
        return "SKIP" if self.skipped else "PASS" if self.ok else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "ok": self.ok, "detail": self.detail}


@dataclass
class AuditReport:
    """The checks of one job, in :data:`CHECK_NAMES` order. ``ok`` iff no check failed."""

    job_id: int
    market: str
    chain_id: int
    status: str
    query: str = ""
    statistic: int | float | list[int] | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError if absent)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [c.name for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "market": self.market, "chain_id": self.chain_id,
                "status": self.status, "query": self.query, "statistic": self.statistic,
                "ok": self.ok, "checks": [c.to_json() for c in self.checks]}


def _cs(address: Any) -> str:
    """Checksummed address as a plain str."""
    return str(to_checksum_address(address))


# ----------------------------------------------------------------------------- data sources


class LogSource(Protocol):
    """Where the audit reads the market's logs and transactions."""

    def events(self, from_block: int) -> list[dict[str, Any]]:
        """Every decoded market log from ``from_block`` to the head, in chain order (as
        :meth:`offchain.chain.events.EventDecoder.fetch`: ``event``, snake_case arguments,
        ``block_number``, ``tx_hash``, ``log_index``)."""
        ...

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        """``{"hash", "from", "to", "value", "input" (bytes), "block_number"}``."""
        ...

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        """``{"status", "gas_used", "effective_gas_price", "block_number"}``."""
        ...


class ChainLogSource:
    """The real chain: ``eth_getLogs`` over the market, transactions and receipts by hash."""

    def __init__(self, w3: Web3, contract: Contract) -> None:
        self.w3 = w3
        self.decoder = EventDecoder(contract)

    def events(self, from_block: int) -> list[dict[str, Any]]:
        return self.decoder.fetch(from_block, "latest")

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        tx = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        return {"hash": tx_hash, "from": _cs(tx["from"]),
                "to": _cs(tx["to"]) if tx.get("to") else None,
                "value": int(tx["value"]), "input": bytes(tx["input"]),
                "block_number": int(tx["blockNumber"])}

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        r = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        return {"status": int(r["status"]), "gas_used": int(r["gasUsed"]),
                "effective_gas_price": int(r["effectiveGasPrice"]),
                "block_number": int(r["blockNumber"])}


MAX_TRANSCRIPT_BYTES = 16 << 20
"""Largest transcript document the default fetcher reads (endpoints are untrusted)."""
_MAX_JSON_DEPTH = 8  # a transcript is 4 levels deep


def _json_depth(data: bytes) -> int:
    """Deepest nesting of JSON arrays/objects in ``data`` (brackets inside strings ignored).
    Checked before parsing: eth-account's dependencies raise the recursion limit, and parsing a
    deeply nested document could then overflow the C stack."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in data:
        if in_string:
            if escaped:
                escaped = False
            elif ch == 0x5C:  # backslash
                escaped = True
            elif ch == 0x22:  # quote
                in_string = False
        elif ch == 0x22:
            in_string = True
        elif ch in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return deepest


FETCH_DEADLINE_S = 5.0
"""Wall-clock limit of one transcript fetch (connect, headers and body together)."""
TRANSCRIPTS_BUDGET_S = 15.0
"""Wall-clock budget of the whole ``transcripts`` check; a fetch past it counts as unavailable."""


async def _download(url: str, timeout_s: float, deadline_s: float) -> bytes | None:
    """The body of a 200 answer to GET ``url``, or None (other status, too large, too slow).
    ``timeout_s`` bounds each network operation, ``deadline_s`` the whole request: an endpoint
    dripping its headers or body a byte at a time is cut off at the deadline."""
    end = time.monotonic() + deadline_s
    async with asyncio.timeout(deadline_s):
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                return None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_TRANSCRIPT_BYTES or time.monotonic() > end:
                    return None
            return bytes(body)


def _run_coroutine(coro: Coroutine[Any, Any, bytes | None]) -> bytes | None:
    """Run ``coro`` to completion from synchronous code (on a fresh thread when this one
    already runs an event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def http_transcript_fetcher(timeout_s: float = 3.0,
                            deadline_s: float = FETCH_DEADLINE_S) -> TranscriptFetcher:
    """A fetcher that GETs ``{endpoint}/v1/transcripts/{job_id}``; None unless HTTP 200 with a
    JSON object of at most :data:`MAX_TRANSCRIPT_BYTES` (unreachable, 404, too large, not
    JSON), received within ``deadline_s`` seconds of wall-clock time in all (``timeout_s``
    bounds each connect/read; a slow-dripping endpoint is cut off at the deadline)."""

    def fetch(endpoint: str, job_id: int) -> dict[str, Any] | None:
        url = endpoint.rstrip("/") + f"/v1/transcripts/{job_id}"
        try:
            body = _run_coroutine(_download(url, timeout_s, deadline_s))
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError):
            return None
        if body is None or _json_depth(body) > _MAX_JSON_DEPTH:
            return None
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    return fetch


# ----------------------------------------------------------------------------- transcripts


def _envelope_signer(env: dict[str, Any]) -> tuple[bytes, str]:
    """(digest, recovered signer) of an envelope; EnvelopeError/ValueError if malformed or the
    signature is not canonical (low s, v in {27, 28})."""
    digest = envelope_digest(env)
    raw = str(env["signature"])
    sig = bytes.fromhex(raw[2:]) if raw.startswith("0x") else b""
    if len(sig) != 65:
        raise ValueError("signature is not 65 bytes")
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if not (0 < r < SECP256K1_N and 0 < s <= SECP256K1_N // 2 and v in (27, 28)):
        raise ValueError("signature is not canonical")
    try:
        signer = Account.recover_message(encode_defunct(primitive=digest), signature=sig)
    except Exception as exc:  # eth-keys BadSignature / ValidationError on a bad point
        raise ValueError(f"signature does not recover: {exc}") from exc
    return digest, _cs(signer)


def verify_transcript(doc: dict[str, Any], *, chain_id: int, market: str, job_id: int,
                      node: str, signed_root: bytes, committee: Sequence[str],
                      providers: Sequence[str], threshold: int) -> tuple[list[str], int]:
    """Check one member's published transcript against the root it signed.

    Returns (problems, number of envelopes verified); no problems means: the document is for
    this job and node, every message's envelope is for this chain, market and job, with the
    recorded kind, sender and recipient, its digest is the recorded leaf and its signature
    recovers to its sender; the node is a party to every message; the Merkle root over the
    leaves (``offchain.transcript`` order) equals ``signed_root``; and it holds a ``share``
    from every provider in ``providers``, ``agree`` messages from at least
    floor((n+t)/2)+1 members and ``open`` messages from at least min(n, 2t+1) members.
    """
    problems: list[str] = []
    node = _cs(node)
    market = _cs(market)
    members = {_cs(m) for m in committee}
    if doc.get("job_id") != job_id:
        problems.append(f"transcript is for job {doc.get('job_id')!r}")
    if str(doc.get("node", "")).lower() != node.lower():
        problems.append(f"transcript is of node {doc.get('node')!r}")
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "no messages"], 0
    transcript = Transcript(job_id, node)
    verified = 0
    for i, msg in enumerate(messages):
        try:
            kind, env = str(msg["kind"]), dict(msg["envelope"])
            sender, recipient = _cs(msg["sender"]), _cs(
                msg["recipient"])
            digest, signer = _envelope_signer(env)
        except (KeyError, TypeError, ValueError, EnvelopeError) as exc:
            problems.append(f"message {i}: malformed ({exc})")
            continue
        where = f"message {i} ({kind} {sender[:8]}…→{recipient[:8]}…)"
        header = (env.get("chain_id"), env.get("contract"), env.get("job_id"), env.get("kind"),
                  env.get("sender"), env.get("recipient"))
        if header != (chain_id, market, job_id, kind, sender, recipient):
            problems.append(f"{where}: envelope header does not match")
        if "0x" + digest.hex() != str(msg.get("digest", "")).lower():
            problems.append(f"{where}: recorded digest is not the envelope's")
        if signer != sender:
            problems.append(f"{where}: signed by {signer}, not by its sender")
        if node not in (sender, recipient):
            problems.append(f"{where}: the node is neither sender nor recipient")
        if kind not in ("share", "decline") and not {sender, recipient} <= members:
            problems.append(f"{where}: {kind} messages are between committee members only")
        if recipient not in members:
            problems.append(f"{where}: recipient is not a committee member")
        try:
            transcript.record(kind, sender, recipient, digest, env)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        verified += 1
    if transcript.entries:
        root = transcript.root()
        if root != signed_root:
            problems.append(f"Merkle root 0x{root.hex()[:16]}… is not the signed transcriptRoot "
                            f"0x{signed_root.hex()[:16]}…")
    keys = set(transcript.entries)
    missing = [p for p in providers if ("share", _cs(p), node) not in keys]
    if missing:
        problems.append(f"no share from counted provider(s) {', '.join(missing)}")
    n = len(members)
    quorum, openings = (n + threshold) // 2 + 1, min(n, 2 * threshold + 1)
    for kind, need in (("agree", quorum), ("open", openings)):
        have = len({s for k, s, r in keys if k == kind and r == node and s in members})
        if have < need:
            problems.append(f"{have} {kind} messages received; a member signs only after {need}")
    return problems, verified


# ----------------------------------------------------------------------------- the audit


def _h(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _short(b: bytes | str) -> str:
    text = b if isinstance(b, str) else _h(b)
    return text[:10] + "…"


def _sorted_strictly(addresses: Sequence[str]) -> bool:
    ints = [int(a, 16) for a in addresses]
    return all(a < b for a, b in itertools.pairwise(ints))


_NONE, _ACTIVE, _EXITING = 0, 1, 2  # NodeRegistry.NodeStatus


def registration_from_events(events: Sequence[dict[str, Any]], node: str,
                             block: int) -> tuple[int, int]:
    """(stake, status) of ``node`` at the end of ``block`` (status 0 None, 1 Active, 2
    Exiting), replayed from the registry's decoded events of blocks <= ``block`` in chain order,
    as the registry changes them (see :func:`offchain.protocol.committee.eligible_from_events`):
    ``NodeRegistered`` sets the stake and makes it Active (a later one is a re-registration),
    ``NodeExitRequested`` makes it Exiting, ``NodeSlashed`` takes its amount from the stake and
    makes it Exiting, ``NodeExited`` removes it (stake 0, None)."""
    node = _cs(node)
    stake, status = 0, _NONE
    for ev in events:
        name = ev.get("event")
        if name not in ("NodeRegistered", "NodeExitRequested", "NodeSlashed", "NodeExited") \
                or int(ev["block_number"]) > block or _cs(ev["node"]) != node:
            continue
        if name == "NodeRegistered":
            stake, status = int(ev["stake_wei"]), _ACTIVE
        elif name == "NodeExited":
            stake, status = 0, _NONE
        elif status != _NONE:
            if name == "NodeSlashed":
                stake = max(0, stake - int(ev["amount_wei"]))
            status = _EXITING
    return stake, status


class _CheckFailed(Exception):
    """Raised inside a check to fail it with a message."""


class _Skip(Exception):
    """Raised inside a check to skip it with a message."""


class _Auditor:
    def __init__(self, w3: Web3, market: str, job_id: int, from_block: int,
                 source: LogSource | None, fetch: TranscriptFetcher,
                 transcript_budget_s: float = TRANSCRIPTS_BUDGET_S) -> None:
        self.w3 = w3
        self.transcript_budget_s = transcript_budget_s
        self.market = _cs(market)
        self.job_id = job_id
        self.from_block = from_block
        self.fetch = fetch
        self.notes: list[str] = []  # remarks of the running check (e.g. no history)
        self._blocks: dict[int, Any] = {}
        self._no_state: set[int] = set()  # blocks the node has no state of
        self.value: int | float | list[int] | None = None
        self.valid_signers: list[tuple[str, bytes]] = []  # (signer, transcript root)
        self.signer_index: dict[str, int] = {}  # valid signer -> its position in the calldata
        abi = compile_contracts()["MPCMarket"].abi
        address = to_checksum_address(market)
        self.contract = w3.eth.contract(address=address, abi=abi)
        try:
            self.chain_id = int(w3.eth.chain_id)
            code = w3.eth.get_code(address)
        except Exception as exc:  # connection refused, timeout, bad URL
            raise AuditError(f"RPC unreachable: {exc}") from exc
        if not code:
            raise AuditError(f"no contract at {self.market} on chain {self.chain_id}")
        self.source: LogSource = source if source is not None else ChainLogSource(
            w3, self.contract)
        self.domain = eip712.market_domain(self.chain_id, self.market)
        self.events = self.source.events(from_block)
        self.stored = self._stored_job()
        self.status = _STATUS.get(self.stored["status"], str(self.stored["status"]))
        mine = [e for e in self.events if e.get("job_id") == job_id]
        self.posted = [e for e in mine if e["event"] == "JobPosted"]
        self.assigned = [e for e in mine if e["event"] == "CommitteeAssigned"]
        self.finalized = [e for e in mine if e["event"] == "JobFinalized"]
        self.refunded = [e for e in mine if e["event"] == "JobRefunded"]
        if not self.posted and self.stored["status"] == 0:
            raise AuditError(f"job {job_id} does not exist on market {self.market}")
        self.post = self.posted[0] if self.posted else None
        self.final = self.finalized[0] if self.finalized else None
        self.call_data: dict[str, Any] | None = None
        self.call_error = ""
        if self.final is not None:
            self._decode_finalize()
        self.committee = self._committee()
        self.callback_requests = [e for e in mine if e["event"] == "JobCallbackRequested"]
        self.callback_requested = bool(self.callback_requests)
        self.callback_fee = (int(self.callback_requests[0]["fee_wei"])
                             if self.callback_requests else 0)
        gas_limit, held_fee = self.contract.functions.jobCallback(job_id).call()
        self.stored_callback = (int(gas_limit), int(held_fee))  # (gas limit, fee still held)

    # -- reading -----------------------------------------------------------------------------
    def _stored_job(self) -> dict[str, Any]:
        j = self.contract.functions.getJob(self.job_id).call()
        keys = ("buyer", "escrow_wei", "spec_hash", "committee_hash", "deadline",
                "committee_size", "threshold", "min_providers", "status", "provider_count",
                "signer_mask", "seed_round", "result_hash")
        out = dict(zip(keys, j, strict=True))
        out["buyer"] = _cs(out["buyer"])
        for k in ("spec_hash", "committee_hash", "result_hash"):
            out[k] = bytes(out[k])
        return out

    def _decode_finalize(self) -> None:
        assert self.final is not None
        tx = self.source.transaction(self.final["tx_hash"])
        try:
            fn, args = self.contract.decode_function_input(tx["input"])
        except Exception as exc:  # not a call of a function of the ABI
            self.call_error = f"the JobFinalized tx's calldata does not decode: {exc}"
            return
        if fn.fn_name != "finalizeJob":
            self.call_error = (f"the JobFinalized tx calls {fn.fn_name}, not finalizeJob "
                               "directly (a relayed call cannot be decoded here)")
            return
        if tx["to"] != self.market:
            self.call_error = f"the JobFinalized tx was sent to {tx['to']}, not the market"
            return
        self.call_data = dict(args)

    def _committee(self) -> list[str]:
        """The committee: the logged one if it matches the stored hash, else the calldata's if
        that does (so one doctored source does not spoil the signature checks)."""
        logged = ([_cs(a) for a in self.assigned[0]["committee"]]
                  if self.assigned else [])
        if self.call_data is not None and eip712.committee_hash(logged) != \
                self.stored["committee_hash"]:
            passed = [_cs(a) for a in self.call_data["committee"]]
            if eip712.committee_hash(passed) == self.stored["committee_hash"]:
                return passed
        return logged

    def block(self, number: int) -> Any:
        if number not in self._blocks:
            self._blocks[number] = self.w3.eth.get_block(number)
        return self._blocks[number]

    def timestamp(self, number: int) -> int:
        return int(self.block(number)["timestamp"])

    def note(self, text: str) -> None:
        """A remark on the running check, appended to its detail (once)."""
        if text not in self.notes:
            self.notes.append(text)

    def historical(self, read: Callable[[BlockIdentifier], Any], block: int) -> Any | None:
        """``read(block)``, or None if the node has no state at ``block`` while it answers for
        the current one (e.g. anvil restarted without ``--preserve-history``). Never the
        current state in its place: comparing it with itself proves nothing."""
        if block in self._no_state:
            return None
        try:
            return read(block)
        except Exception:
            read("latest")  # if the node does not answer at all, that error is raised
            self._no_state.add(block)
            return None

    def registration_at(self, address: str, block: int) -> tuple[int, int]:
        """(stake, status) of ``address`` at the end of ``block``: from the registry's state at
        that block, or, on a node without that state, replayed from the registry's events
        (:func:`registration_from_events`)."""
        node = self.historical(
            lambda b: self.contract.functions.getNode(_cs(address)).call(block_identifier=b),
            block)
        if node is not None:
            return int(node[0]), int(node[3])
        self.note(f"registrations at block {block} replayed from the registry's events: the "
                  "node has no historical state")
        return registration_from_events(self.events, address, block)

    def rewards_at(self, address: str, block: int) -> int | None:
        """``rewardsWei`` of ``address`` at the end of ``block``; None without that state."""
        node = self.historical(
            lambda b: self.contract.functions.getNode(_cs(address)).call(block_identifier=b),
            block)
        return None if node is None else int(node[1])

    def only_tx(self, number: int, tx_hash: str) -> bool:
        """Whether ``tx_hash`` is the only transaction of block ``number`` (then balance and
        reward differences across the block are due to it alone)."""
        txs = self.block(number)["transactions"]
        return len(txs) == 1 and _h(bytes(txs[0])) == tx_hash.lower()

    def round_events(self, name: str, round_id: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name and e.get("round_id") == round_id]

    # -- checks ------------------------------------------------------------------------------
    def run(self) -> AuditReport:
        report = AuditReport(self.job_id, self.market, self.chain_id, self.status,
                             query=str(self.post["query"]) if self.post else "")
        for name in CHECK_NAMES:
            method = getattr(self, "check_" + name.replace(".", "_"))
            self.notes = []
            try:
                detail = method()
                if self.notes:
                    detail += " (" + "; ".join(self.notes) + ")"
                check = Check(name, True, detail)
            except _Skip as exc:
                check = Check(name, True, str(exc), skipped=True)
            except _CheckFailed as exc:
                check = Check(name, False, str(exc))
            except Exception as exc:  # doctored data can break decoding anywhere
                check = Check(name, False, f"{type(exc).__name__}: {exc}")
            report.checks.append(check)
            if name == "result.statistic" and check.ok and not check.skipped:
                report.statistic = self.value
        return report

    def _require_posted(self) -> dict[str, Any]:
        if self.post is None:
            raise _CheckFailed(f"no JobPosted log for job {self.job_id}, yet the job is stored")
        return self.post

    def _require_final(self) -> dict[str, Any]:
        if self.final is None:
            raise _Skip(f"job is {self.status}: no result was recorded")
        if self.call_data is None:
            raise _CheckFailed(self.call_error)
        return self.final

    def check_job_parameters(self) -> str:
        p, s = self._require_posted(), self.stored
        problems = []
        if len(self.posted) != 1:
            problems.append(f"{len(self.posted)} JobPosted logs")
        for key in ("buyer", "deadline", "committee_size", "threshold", "min_providers"):
            logged = _cs(p[key]) if key == "buyer" else int(p[key])
            if logged != s[key]:
                problems.append(f"{key}: logged {logged}, stored {s[key]}")
        if int(p["seed_round"]) != s["seed_round"]:
            problems.append(f"seed round: logged {p['seed_round']}, stored {s['seed_round']}")
        if eip712.spec_hash(bytes(p["dataset_id"]), str(p["query"])) != s["spec_hash"]:
            problems.append("keccak(datasetId, keccak(query)) of the log is not the stored "
                            "specHash")
        n, t, m = int(p["committee_size"]), int(p["threshold"]), int(p["min_providers"])
        if not (_MIN_COMMITTEE <= n <= _MAX_COMMITTEE and t >= 1 and 2 * t + 1 <= n and m >= 1):
            problems.append(f"n={n}, t={t}, M={m} break the rules (3 <= n <= 32, 1 <= t, "
                            "2t+1 <= n, M >= 1)")
        expected_status = 2 if self.finalized else 3 if self.refunded else 1
        if len(self.finalized) + len(self.refunded) > 1:
            problems.append(f"{len(self.finalized)} JobFinalized and {len(self.refunded)} "
                            "JobRefunded logs")
        if s["status"] != expected_status:
            problems.append(f"stored status {self.status} but the logs say "
                            f"{_STATUS[expected_status]}")
        if problems:
            raise _CheckFailed("; ".join(problems))
        return (f"{p['query']!s} on dataset {_short(bytes(p['dataset_id']))}, n={n} t={t} M={m}, "
                f"seed round {p['seed_round']}, buyer {s['buyer']}, status {self.status}; "
                "log and storage agree")

    def check_job_escrow(self) -> str:
        p, s = self._require_posted(), self.stored
        escrow = int(p["escrow_wei"])
        fee = self.callback_fee
        problems = []
        if escrow != s["escrow_wei"]:
            problems.append(f"logged escrow {escrow} wei, stored {s['escrow_wei']} wei")
        tx = self.source.transaction(p["tx_hash"])
        receipt = self.source.receipt(p["tx_hash"])
        if receipt["status"] != 1:
            problems.append(f"the post tx {p['tx_hash']} did not succeed")
        block = int(p["block_number"])
        how = ""
        if tx["to"] == self.market:  # posted directly by the buyer
            if tx["from"] != s["buyer"]:
                problems.append(f"postJob tx {p['tx_hash']} was sent by {tx['from']}, not the "
                                "buyer")
            if tx["value"] != escrow + fee:
                problems.append(f"postJob tx {p['tx_hash']} carried {tx['value']} wei, not "
                                f"escrow {escrow} + callback fee {fee}")
            how = f"paid by the buyer in tx {_short(p['tx_hash'])}"
        elif self.only_tx(block, p["tx_hash"]):  # through the buyer contract
            delta = self.balance_delta(self.market, block)
            if delta is not None and delta != escrow + fee:
                problems.append(f"the market's balance grew by {delta} wei in the post block, "
                                f"not by escrow {escrow} + callback fee {fee}")
            how = (f"received by the market from the buyer contract in tx {_short(p['tx_hash'])}"
                   if delta is not None else "posted through the buyer contract in tx "
                   f"{_short(p['tx_hash'])}")
        else:
            how = "posted through a contract; the payment was not compared (block shared)"
        min_payment = int(self.contract.functions.minPaymentWei().call())  # immutable
        if escrow < min_payment:
            problems.append(f"escrow {escrow} wei is below minPaymentWei {min_payment}")
        problems += self._callback_problems()
        if problems:
            raise _CheckFailed("; ".join(problems))
        extra = f" + callback fee {fee} wei" if fee else ""
        return f"{escrow} wei escrowed{extra}, {how} (min {min_payment})"

    def _callback_problems(self) -> list[str]:
        """The logged callback request against the stored one (``jobCallback``): a stored gas
        limit iff one JobCallbackRequested log with that limit, and the stored fee held while
        the job is Open (the logged one), none once it is settled."""
        gas_limit, held = self.stored_callback
        requests, problems = self.callback_requests, []
        if len(requests) > 1:
            problems.append(f"{len(requests)} JobCallbackRequested logs")
        if gas_limit and not requests:
            problems.append(f"the stored job has a callback (gas limit {gas_limit}) but no "
                            "JobCallbackRequested log")
        elif requests and not gas_limit:
            problems.append("JobCallbackRequested logged, but the stored job has no callback "
                            "(gas limit 0)")
        elif requests and int(requests[0]["callback_gas_limit"]) != gas_limit:
            problems.append(f"logged callback gas limit {requests[0]['callback_gas_limit']}, "
                            f"stored {gas_limit}")
        expected = self.callback_fee if self.stored["status"] == 1 and gas_limit else 0
        if held != expected:
            problems.append(f"the market holds a callback fee of {held} wei for the job, not "
                            f"{expected}")
        return problems

    def check_committee_selection_rule(self) -> str:
        p = self._require_posted()
        if not self.assigned:
            if self.status == "Finalized":
                raise _CheckFailed("job is Finalized but no CommitteeAssigned log exists")
            raise _Skip(f"no committee was drawn (job {self.status})")
        if len(self.assigned) != 1:
            raise _CheckFailed(f"{len(self.assigned)} CommitteeAssigned logs")
        a = self.assigned[0]
        logged = [_cs(x) for x in a["committee"]]
        n = int(p["committee_size"])
        problems = []
        if len(logged) != n or not _sorted_strictly(logged):
            problems.append(f"logged committee has {len(logged)} members or is not strictly "
                            f"ascending (n={n})")
        if eip712.committee_hash(logged) != self.stored["committee_hash"]:
            problems.append("logged committee does not hash to the stored committeeHash")
        if self.call_data is not None and [_cs(x) for x in
                                           self.call_data["committee"]] != logged:
            problems.append("finalizeJob was given another committee than the logged one")
        # the round that drew it: the seed round, or the successor of one that never committed
        round_id, seen = int(p["seed_round"]), set()
        while round_id not in seen:
            seen.add(round_id)
            failed = self.round_events("RoundFailed", round_id)
            if not failed or int(failed[0]["successor"]) == 0:
                break
            round_id = int(failed[0]["successor"])
        if int(a["round_id"]) != round_id:
            problems.append(f"drawn by round {a['round_id']}, but the job's seed round "
                            f"{p['seed_round']} leads to round {round_id}")
            round_id = int(a["round_id"])
        committed = self.round_events("RoundCommitted", round_id)
        final = self.round_events("RoundFinalized", round_id)
        if len(committed) != 1 or len(final) != 1:
            raise _CheckFailed("; ".join([*problems, f"round {round_id} has {len(committed)} "
                                          f"RoundCommitted and {len(final)} RoundFinalized logs"]))
        c, f = committed[0], final[0]
        commit_block = int(c["block_number"])
        if (int(p["block_number"]), int(p["log_index"])) >= (commit_block, int(c["log_index"])):
            problems.append(f"job posted in block {p['block_number']}, after round {round_id}'s "
                            f"output was fixed (commit block {commit_block})")
        if (int(a["block_number"]), int(a["log_index"])) < (int(f["block_number"]),
                                                              int(f["log_index"])):
            problems.append("committee assigned before the round was finalized")
        participants = [_cs(x) for x in c["participants"]]
        commitments = [bytes(x) for x in c["commitments"]]
        opened = self.round_events("ContributionOpened", round_id)
        secrets = {_cs(e["participant"]): int(e["secret"]) for e in opened}
        if len(opened) != len(participants) or set(secrets) != set(participants):
            problems.append(f"{len(opened)} contributions opened for {len(participants)} "
                            "committed participants")
        problems += self._check_openings(round_id, participants, commitments, opened)
        output = bytes(f["output"])
        recomputed = round_output(self.chain_id, self.market, round_id, list(secrets.values()))
        if recomputed != output:
            problems.append(f"round output {_short(output)} is not keccak(chainid, market, "
                            f"round, sum of the opened secrets) = {_short(recomputed)}")
        stored_round = self.contract.functions.getRound(round_id).call()
        if bytes(stored_round[10]) != output or int(stored_round[1]) != commit_block:
            problems.append("logged round output or commit block differ from getRound")
        candidates = eligible_from_events(self.events, commit_block)
        try:
            drawn = draw_committee(candidates, n, committee_seed(output, self.job_id))
        except ValueError as exc:
            raise _CheckFailed("; ".join([*problems, str(exc)])) from None
        if drawn != logged:
            problems.append(f"the selection rule gives {', '.join(drawn)} (from "
                            f"{len(candidates)} nodes eligible at block {commit_block}), not the "
                            f"recorded {', '.join(logged)}")
        if problems:
            raise _CheckFailed("; ".join(problems))
        return (f"round {round_id} (committed in block {commit_block}, after the post; "
                f"{len(opened)} openings match their commitments; output {_short(output)}) "
                f"draws {', '.join(drawn)} from {len(candidates)} eligible nodes, as recorded")

    def _check_openings(self, round_id: int, participants: list[str], commitments: list[bytes],
                        opened: list[dict[str, Any]]) -> list[str]:
        """Each ContributionOpened against its opening in the reveal/recover calldata."""
        problems = []
        decoded: dict[str, dict[str, Any] | None] = {}
        for ev in opened:
            who, secret = _cs(ev["participant"]), int(ev["secret"])
            txh = ev["tx_hash"]
            if txh not in decoded:
                tx = self.source.transaction(txh)
                try:
                    fn, args = self.contract.decode_function_input(tx["input"])
                    ok = fn.fn_name in ("reveal", "recover") and tx["to"] == self.market
                    decoded[txh] = dict(args) if ok else None
                except Exception:
                    decoded[txh] = None
            args = decoded[txh]
            if args is None or int(args["roundId"]) != round_id:
                problems.append(f"opening of {who}: not a direct reveal/recover call of round "
                                f"{round_id}")
                continue
            match = [o for o in args["openings"] if int(o["index"]) < len(participants)
                     and participants[int(o["index"])] == who and int(o["secret"]) == secret]
            if not match or not pedersen.check_opening(
                    commitments[participants.index(who)], secret, int(match[0]["salt"]),
                    bytes(match[0]["restHash"])):
                problems.append(f"opening of {who} does not match its commitment")
        return problems

    def check_signatures_valid(self) -> str:
        final = self._require_final()
        args = self.call_data
        assert args is not None
        committee = self.committee
        if int(args["jobId"]) != self.job_id:
            raise _CheckFailed(f"finalizeJob calldata is for job {args['jobId']}")
        rh = eip712.result_hash([int(x) for x in args["aggregates"]])
        ih = eip712.inputs_hash([(i["provider"], bytes(i["commitment"])) for i in args["inputs"]])
        before = int(final["block_number"]) - 1
        problems, mask, pairs = [], 0, []
        prev = -1
        for k, ms in enumerate(args["signatures"]):
            root, sig = bytes(ms["transcriptRoot"]), ms["sig"]
            try:
                signer = eip712.recover_result_signer(
                    self.domain, self.job_id, rh, ih, root,
                    eip712.Sig(bytes(sig["r"]), bytes(sig["s"]), int(sig["v"])))
            except ValueError as exc:
                problems.append(f"signature {k} does not recover: {exc}")
                continue
            if signer not in committee:
                problems.append(f"signature {k} recovers to {signer}, not a committee member")
                continue
            if int(signer, 16) <= prev:
                problems.append(f"signature {k}: signers not strictly ascending (duplicate?)")
                continue
            prev = int(signer, 16)
            stake, status = self.registration_at(signer, before)
            if status == 0 or stake == 0:
                problems.append(f"signer {signer} was not registered with stake at block "
                                f"{before}")
                continue
            mask |= 1 << committee.index(signer)
            pairs.append((signer, root))
            self.signer_index[signer] = k
        self.valid_signers = pairs
        if mask != int(final["signer_mask"]) or mask != self.stored["signer_mask"]:
            problems.append(f"signer mask {mask:#x} from the signatures; logged "
                            f"{int(final['signer_mask']):#x}, stored "
                            f"{self.stored['signer_mask']:#x}")
        if not problems and eip712.proof_hash(pairs) != bytes(final["proof_hash"]):
            problems.append("logged proofHash is not the hash chain of (signer, transcriptRoot)")
        if problems:
            raise _CheckFailed("; ".join(problems))
        return (f"{len(pairs)} signature(s) over resultHash {_short(rh)} recover to committee "
                f"members registered and staked at block {before}: "
                + ", ".join(s for s, _ in pairs))

    def check_signatures_threshold(self) -> str:
        self._require_final()
        t = self.stored["threshold"]
        k = len({s for s, _ in self.valid_signers})
        bits = bin(self.stored["signer_mask"]).count("1")
        if k < t + 1 or bits < t + 1:
            raise _CheckFailed(f"{k} distinct valid committee signatures ({bits} bits in the "
                               f"stored mask); t+1 = {t + 1} needed")
        return f"{k} distinct valid committee signatures >= t+1 = {t + 1}"

    def check_inputs_providers(self) -> str:
        final = self._require_final()
        args = self.call_data
        assert args is not None
        before = int(final["block_number"]) - 1
        inputs = args["inputs"]
        providers = [_cs(i["provider"]) for i in inputs]
        problems = []
        if not _sorted_strictly(providers):
            problems.append("providers are not strictly ascending")
        for i in inputs:
            provider, commitment = _cs(i["provider"]), bytes(i["commitment"])
            sig = i["sig"]
            try:
                signer = eip712.recover_input_signer(
                    self.domain, self.job_id, commitment,
                    eip712.Sig(bytes(sig["r"]), bytes(sig["s"]), int(sig["v"])))
            except ValueError as exc:
                problems.append(f"input of {provider}: signature does not recover: {exc}")
                continue
            if signer != provider:
                problems.append(f"input of {provider} is signed by {signer}")
            if self.registration_at(provider, before)[1] == 0:
                problems.append(f"provider {provider} was not registered at block {before}")
        m = self.stored["min_providers"]
        if len(inputs) < m:
            problems.append(f"{len(inputs)} providers < M = {m}")
        if not (len(inputs) == int(final["provider_count"]) == self.stored["provider_count"]):
            problems.append(f"{len(inputs)} inputs; logged providerCount "
                            f"{final['provider_count']}, stored {self.stored['provider_count']}")
        if not problems:
            ih = eip712.inputs_hash([(p, bytes(i["commitment"]))
                                     for p, i in zip(providers, inputs, strict=True)])
            if ih != bytes(final["inputs_hash"]):
                problems.append("logged inputsHash is not the hash chain of the inputs")
        if problems:
            raise _CheckFailed("; ".join(problems))
        return (f"{len(inputs)} providers (M = {m}) with valid InputCommitment signatures, "
                "registered; inputsHash matches")

    def check_result_hash(self) -> str:
        final = self._require_final()
        args = self.call_data
        assert args is not None
        logged = [int(x) for x in final["aggregates"]]
        problems = []
        if not 1 <= len(logged) <= _MAX_AGGREGATES:
            problems.append(f"{len(logged)} aggregates (1..64 allowed)")
        rh = eip712.result_hash(logged)
        if rh != bytes(final["result_hash"]):
            problems.append(f"keccak(aggregates) = {_short(rh)} is not the logged resultHash "
                            f"{_short(bytes(final['result_hash']))}")
        if rh != self.stored["result_hash"]:
            problems.append(f"keccak(aggregates) is not the stored resultHash "
                            f"{_short(self.stored['result_hash'])}")
        if [int(x) for x in args["aggregates"]] != logged:
            problems.append("logged aggregates differ from the finalizeJob calldata")
        if problems:
            raise _CheckFailed("; ".join(problems))
        return f"resultHash {_short(rh)} = keccak256(abi.encodePacked({logged}))"

    def check_result_statistic(self) -> str:
        final = self._require_final()
        p = self._require_posted()
        try:
            spec = parse_query(str(p["query"]))
            self.value = statistic(spec, [int(x) for x in final["aggregates"]])
        except (QueryError, StatisticError) as exc:
            raise _CheckFailed(f"{p['query']!s}: {exc}") from None
        return f"{spec} = {self.value} (from the {spec.n_aggregates} recorded aggregates)"

    def check_payments(self) -> str:
        self._require_posted()
        escrow = self.stored["escrow_wei"]
        if self.final is not None:
            return self._check_rewards(escrow)
        if self.refunded:
            return self._check_refund(escrow)
        raise _CheckFailed(f"job is {self.status}: its escrow of {escrow} wei is neither paid "
                           "out nor refunded")

    def _check_rewards(self, escrow: int) -> str:
        final = self._require_final()
        args = self.call_data
        assert args is not None
        k = len(args["signatures"])
        if k == 0:
            raise _CheckFailed("no signatures were paid")
        share, remainder = escrow // k, escrow % k
        problems = []
        if int(final["reward_per_signer_wei"]) != share:
            problems.append(f"logged reward per signer {final['reward_per_signer_wei']} wei, "
                            f"but escrow {escrow} / {k} signers = {share}")
        credits = [share + remainder] + [share] * (k - 1)
        if sum(credits) != escrow:
            problems.append(f"credits add up to {sum(credits)}, not the escrow {escrow}")
        # a job posted with a callback: its fee is credited to the finalizer (msg.sender)
        finalizer = self.source.transaction(final["tx_hash"])["from"]
        fee, callback = self.callback_fee, ""
        delivered = [e for e in self.events if e["event"] == "JobCallback"
                     and e.get("job_id") == self.job_id]
        if self.callback_requested or self.stored_callback[0]:
            if len(delivered) != 1:
                problems.append(f"a callback was requested but {len(delivered)} JobCallback logs")
            elif int(delivered[0]["fee_wei"]) != fee or _cs(delivered[0]["finalizer"]) != \
                    finalizer:
                problems.append(f"JobCallback credits {delivered[0]['fee_wei']} wei to "
                                f"{delivered[0]['finalizer']}, not the fee {fee} to the "
                                f"finalizer {finalizer}")
            else:
                callback = (f"; callback fee {fee} wei to the finalizer (callback "
                            f"{'succeeded' if delivered[0]['ok'] else 'failed'})")
        elif delivered:
            problems.append("JobCallback logged for a job posted without a callback")
        block = int(final["block_number"])
        compared = self.only_tx(block, final["tx_hash"])
        if compared:
            # The k-th signature's signer is credited credits[k], the finalizer the callback
            # fee: every committee member's (and the finalizer's) rewardsWei must have grown by
            # exactly that, and all together by escrow + fee.
            expected = {m: 0 for m in self.committee}
            for signer, k_index in self.signer_index.items():
                expected[signer] = expected.get(signer, 0) + credits[k_index]
            if fee:
                expected[finalizer] = expected.get(finalizer, 0) + fee
            known = len(self.signer_index) == k  # else some credit went to an unknown signer
            grown: dict[str, int] = {}
            for member in expected:
                after, before = self.rewards_at(member, block), self.rewards_at(member, block - 1)
                if after is None or before is None:
                    compared = False  # no state to compare: the logs above are all we check
                    break
                grown[member] = after - before
            if not compared:
                self.note(f"per-account rewardsWei deltas in block {block} not checked: the "
                          "node has no historical state")
            else:
                for member, credit in expected.items():
                    if grown[member] != credit and known:
                        problems.append(f"{member}'s rewards grew by {grown[member]} wei in "
                                        f"block {block}, not {credit}")
                if sum(grown.values()) != escrow + fee:
                    problems.append(f"rewards grew by {sum(grown.values())} wei in block "
                                    f"{block}, not by the escrow {escrow} + callback fee {fee}")
        if problems:
            raise _CheckFailed("; ".join(problems))
        how = ("rewards not compared across the block (other transactions in it)"
               if not self.only_tx(block, final["tx_hash"])
               else "rewardsWei not compared across the block" if not compared
               else "each signer's rewardsWei grew by exactly its share"
               if len(self.signer_index) == k else "the committee's rewards grew by the escrow")
        return (f"escrow {escrow} wei = {k} x {share} + remainder {remainder} (to the first "
                f"signer); {how}{callback}")

    def _check_refund(self, escrow: int) -> str:
        ev = self.refunded[0]
        problems = []
        amount = int(ev["amount_wei"])
        fee = self.callback_fee
        buyer = self.stored["buyer"]
        if amount != escrow + fee:
            problems.append(f"refunded {amount} wei, but escrow {escrow} + callback fee {fee} "
                            f"were paid")
        if _cs(ev["buyer"]) != buyer:
            problems.append(f"refund went to {ev['buyer']}, not the buyer {buyer}")
        tx, receipt = self.source.transaction(ev["tx_hash"]), self.source.receipt(ev["tx_hash"])
        if receipt["status"] != 1:
            problems.append("the refund tx did not succeed")
        if tx["to"] == self.market and tx["from"] != buyer:
            problems.append(f"reclaimEscrow was sent by {tx['from']}, not the buyer")
        block = int(ev["block_number"])
        compared = self.only_tx(block, ev["tx_hash"])
        if compared:
            delta = self.balance_delta(self.market, block)
            compared = delta is not None
            if delta is not None and delta != -amount:
                problems.append(f"the market's balance changed by {delta} wei in block {block}, "
                                f"not by -{amount}")
            if compared and tx["from"] == buyer:  # an EOA buyer: it received the refund, less gas
                gas = receipt["gas_used"] * receipt["effective_gas_price"]
                delta = self.balance_delta(buyer, block)
                if delta is not None and delta != amount - gas - tx["value"]:
                    problems.append(f"buyer's balance changed by {delta} wei in block {block}, "
                                    f"not by the refund {amount} less gas {gas}")
        if problems:
            raise _CheckFailed("; ".join(problems))
        how = "; it left the market's balance" if compared else ""
        extra = f" and callback fee {fee} wei" if fee else ""
        return (f"escrow {escrow} wei{extra} refunded to the buyer in tx "
                f"{_short(ev['tx_hash'])}{how}")

    def balance_at(self, address: str, block: int) -> int | None:
        """ETH balance (wei) of ``address`` at the end of ``block``; None without that state."""
        addr = to_checksum_address(address)
        got = self.historical(lambda b: self.w3.eth.get_balance(addr, block_identifier=b), block)
        return None if got is None else int(got)

    def balance_delta(self, address: str, block: int) -> int | None:
        """How much the balance of ``address`` changed in ``block``; None (noted) if the node
        has no state at ``block`` or the one before."""
        after, before = self.balance_at(address, block), self.balance_at(address, block - 1)
        if after is None or before is None:
            self.note(f"balances across block {block} not compared: the node has no historical "
                      "state")
            return None
        return after - before

    def check_deadlines(self) -> str:
        p = self._require_posted()
        deadline = self.stored["deadline"]
        posted_at = self.timestamp(int(p["block_number"]))
        max_timeout = int(self.contract.functions.maxTimeoutS().call())  # immutable
        problems, said = [], [f"deadline {deadline} = post time + {deadline - posted_at} s"]
        if not 1 <= deadline - posted_at <= max_timeout:
            problems.append(f"deadline is {deadline - posted_at} s after the post block, not "
                            f"1..{max_timeout}")
        if self.assigned:
            at = self.timestamp(int(self.assigned[0]["block_number"]))
            if at > deadline:
                problems.append(f"committee assigned at {at}, after the deadline {deadline}")
            said.append(f"committee assigned {deadline - at} s before it")
        if self.final is not None:
            at = self.timestamp(int(self.final["block_number"]))
            if at > deadline:
                problems.append(f"finalized at {at}, after the deadline {deadline}")
            said.append(f"finalized {deadline - at} s before it")
        if self.refunded:
            at = self.timestamp(int(self.refunded[0]["block_number"]))
            if at <= deadline:
                problems.append(f"refunded at {at}, not after the deadline {deadline}")
            said.append(f"refunded {at - deadline} s after it")
        if problems:
            raise _CheckFailed("; ".join(problems))
        return "; ".join(said)

    def check_transcripts(self) -> str:
        self._require_final()
        if not self.valid_signers:
            raise _Skip("no valid signature whose transcript could be checked")
        providers = [_cs(i["provider"]) for i in (self.call_data or {})["inputs"]]
        problems, verified, unavailable, late, envelopes = [], 0, [], [], 0
        end = time.monotonic() + self.transcript_budget_s
        for signer, root in self.valid_signers:
            if time.monotonic() >= end:  # the budget is spent: not fetched, not a pass
                late.append(signer)
                continue
            endpoint = str(self.contract.functions.getNode(signer).call()[5])
            doc = self.fetch(endpoint, self.job_id) if endpoint else None
            if time.monotonic() > end:  # answered after the budget: discarded
                late.append(signer)
                continue
            if doc is None:
                unavailable.append(signer)
                continue
            found, count = verify_transcript(
                doc, chain_id=self.chain_id, market=self.market, job_id=self.job_id,
                node=signer, signed_root=root, committee=self.committee, providers=providers,
                threshold=self.stored["threshold"])
            envelopes += count
            if found:
                problems.append(f"{signer}: " + "; ".join(found[:5]))
            else:
                verified += 1
        if problems:
            raise _CheckFailed(" | ".join(problems))
        over = (f"; {len(late)} unavailable within the {self.transcript_budget_s:g} s budget "
                "of the check" if late else "")
        if verified == 0:
            raise _Skip(f"no signer published its transcript ({len(unavailable)} endpoint(s) "
                        f"did not answer{over})")
        rest = (f"; {len(unavailable)} not published" if unavailable else "") + over
        return (f"{verified} signer transcript(s) match their signed roots; {envelopes} "
                f"envelope signatures valid{rest}")


def audit_job(w3: Web3, market_address: str, job_id: int, *, from_block: int = 0,
              log_source: LogSource | None = None,
              fetch_transcript: TranscriptFetcher | None = None,
              transcript_budget_s: float = TRANSCRIPTS_BUDGET_S) -> AuditReport:
    """Audit job ``job_id`` of the market at ``market_address`` from chain data alone.

    ``from_block``: the first block to read logs from (the market's deployment block; the
    registry's events before it would be missed). ``log_source``: where logs and transactions
    come from (default: :class:`ChainLogSource` over ``w3``). ``fetch_transcript``: how
    signers' transcripts are fetched from their registered endpoints (default:
    :func:`http_transcript_fetcher`, at most :data:`FETCH_DEADLINE_S` per fetch).
    ``transcript_budget_s``: wall-clock budget of all the fetches together; a transcript not
    fetched within it counts as unavailable.

    Returns the report (each check of :data:`CHECK_NAMES`, in order). Raises AuditError if the
    RPC is unreachable, no contract is at the address or the job does not exist.
    """
    if job_id < 0 or job_id >= 2**256:
        raise AuditError(f"job id {job_id} is not a uint256")
    try:
        auditor = _Auditor(w3, market_address, job_id, from_block, log_source,
                           fetch_transcript or http_transcript_fetcher(),
                           transcript_budget_s)
    except AuditError:
        raise
    except (OSError, httpx.HTTPError) as exc:
        raise AuditError(f"RPC unreachable: {exc}") from exc
    except Exception as exc:  # e.g. not an MPCMarket at that address: calls revert
        raise AuditError(f"cannot read job {job_id} from {market_address}: {exc}") from exc
    return auditor.run()

