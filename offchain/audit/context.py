"""The auditor's view of one job: what it reads once from the chain (the stored job, its
logs, the ``finalizeJob`` calldata, the committee, callback settings) and access to state at
past blocks (registrations, rewards, balances), never the current state in its place. The
check families (:mod:`.job`, :mod:`.committee`, :mod:`.signatures`, :mod:`.payments`,
:mod:`.transcripts`) are mixins over :class:`AuditContext`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.types import BlockIdentifier

from offchain.audit.fetch import TRANSCRIPTS_BUDGET_S, TranscriptFetcher
from offchain.audit.report import STATUS_NAMES, AuditError, CheckFailed, CheckSkipped
from offchain.audit.sources import ChainLogSource, LogSource, registration_from_events
from offchain.audit.util import checksum, hex_bytes
from offchain.chain.artifacts import market_abi
from offchain.chain.jobs import decode_stored_job
from offchain.encoding import eip712
from offchain.types import JobStatus, NodeStatus


class AuditContext:
    """The job under audit and the chain reads the checks share."""

    def __init__(self, w3: Web3, market: str, job_id: int, from_block: int,
                 source: LogSource | None, fetch: TranscriptFetcher,
                 transcript_budget_s: float = TRANSCRIPTS_BUDGET_S) -> None:
        self.w3 = w3
        self.transcript_budget_s = transcript_budget_s
        self.market = checksum(market)
        self.job_id = job_id
        self.from_block = from_block
        self.fetch = fetch
        self.notes: list[str] = []  # remarks of the running check (e.g. no history)
        self._blocks: dict[int, Any] = {}
        self._no_state: set[int] = set()  # blocks the node has no state of
        abi = market_abi()
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
        self.status = STATUS_NAMES[self.stored["status"]]
        mine = [e for e in self.events if e.get("job_id") == job_id]
        self.posted = [e for e in mine if e["event"] == "JobPosted"]
        self.assigned = [e for e in mine if e["event"] == "CommitteeAssigned"]
        self.finalized = [e for e in mine if e["event"] == "JobFinalized"]
        self.refunded = [e for e in mine if e["event"] == "JobRefunded"]
        if not self.posted and self.stored["status"] is JobStatus.NONE:
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
        """``getJob`` decoded by :func:`offchain.chain.jobs.decode_stored_job`, as a dict of
        its fields (the checks index it by field name). Raises AuditError if it does not
        decode (not an MPCMarket)."""
        raw = self.contract.functions.getJob(self.job_id).call()
        try:
            stored = decode_stored_job(self.job_id, raw)
        except ValueError as exc:
            raise AuditError(f"job {self.job_id}: the stored job does not decode: {exc} "
                             "(not an MPCMarket?)") from exc
        out = {f.name: getattr(stored, f.name) for f in dataclasses.fields(stored)}
        del out["job_id"]
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
        logged = ([checksum(a) for a in self.assigned[0]["committee"]]
                  if self.assigned else [])
        if self.call_data is not None and eip712.committee_hash(logged) != \
                self.stored["committee_hash"]:
            passed = [checksum(a) for a in self.call_data["committee"]]
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

    def registration_at(self, address: str, block: int) -> tuple[int, NodeStatus]:
        """(stake, status) of ``address`` at the end of ``block``: from the registry's state at
        that block, or, on a node without that state, replayed from the registry's events
        (:func:`registration_from_events`)."""
        node = self.historical(
            lambda b: self.contract.functions.getNode(checksum(address)).call(block_identifier=b),
            block)
        if node is not None:
            return int(node[0]), NodeStatus(node[3])
        self.note(f"registrations at block {block} replayed from the registry's events: the "
                  "node has no historical state")
        return registration_from_events(self.events, address, block)

    def rewards_at(self, address: str, block: int) -> int | None:
        """``rewardsWei`` of ``address`` at the end of ``block``; None without that state."""
        node = self.historical(
            lambda b: self.contract.functions.getNode(checksum(address)).call(block_identifier=b),
            block)
        return None if node is None else int(node[1])

    def only_tx(self, number: int, tx_hash: str) -> bool:
        """Whether ``tx_hash`` is the only transaction of block ``number`` (then balance and
        reward differences across the block are due to it alone)."""
        txs = self.block(number)["transactions"]
        return len(txs) == 1 and hex_bytes(bytes(txs[0])) == tx_hash.lower()

    def round_events(self, name: str, round_id: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name and e.get("round_id") == round_id]


    def _require_posted(self) -> dict[str, Any]:
        if self.post is None:
            raise CheckFailed(f"no JobPosted log for job {self.job_id}, yet the job is stored")
        return self.post

    def _require_final(self) -> dict[str, Any]:
        if self.final is None:
            raise CheckSkipped(f"job is {self.status}: no result was recorded")
        if self.call_data is None:
            raise CheckFailed(self.call_error)
        return self.final

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
