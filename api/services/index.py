"""The job index: jobs, nodes and beacon rounds as the market's events state them.

The chain is the source of truth and this is only a cache of it. At start-up the index reads
every market event from the deployment block on (``eth_getLogs`` in ranges of at most
LOG_RANGE blocks, decoded by :class:`~offchain.chain.events.EventDecoder`) and then follows new
blocks by polling (one ``eth_getBlockByNumber("latest")`` per interval, plus one
``eth_getLogs`` when blocks were added). A fresh API process therefore rebuilds everything from
the chain. Events are applied in chain order (block, log index). Reorgs are not handled (anvil
has none; on a live chain the index should trail the head by some confirmations).

Derived job status (``JobRecord.status``), at the time of the latest block:

* ``awaiting_committee``: posted, no CommitteeAssigned yet (its beacon round is running);
* ``computing``: committee drawn, no result yet;
* ``finalized`` / ``refunded``: JobFinalized / JobRefunded seen (final);
* ``expired``: neither final nor finalizable any more (latest block time > deadline); the buyer
  can reclaim the escrow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from api.services.chain import Chain
from offchain.chain.events import EventDecoder
from offchain.protocol.registry import RegistryEntry, RegistryState
from offchain.types import Address

LOG_RANGE = 5_000
_log = logging.getLogger("mpc.api.index")


@dataclass(frozen=True)
class TxRef:
    """A transaction that emitted an event: (name, hash, block, log index of the event)."""

    name: str
    hash: str
    block: int
    log_index: int


@dataclass
class JobRecord:
    job_id: int
    buyer: str
    dataset_id: bytes
    query: str
    committee_size: int
    threshold: int
    min_providers: int
    deadline: int
    escrow_wei: int
    seed_round: int
    posted: TxRef
    committee: list[str] | None = None
    committee_round: int | None = None
    assigned: TxRef | None = None
    finalized: dict[str, Any] | None = None  # the JobFinalized event
    finalized_tx: TxRef | None = None
    refund_wei: int | None = None
    refund_tx: TxRef | None = None

    @property
    def final(self) -> bool:
        return self.finalized is not None or self.refund_tx is not None

    def status(self, now: int) -> str:
        if self.finalized is not None:
            return "finalized"
        if self.refund_tx is not None:
            return "refunded"
        if now > self.deadline:
            return "expired"
        return "computing" if self.committee is not None else "awaiting_committee"


@dataclass
class RoundRecord:
    round_id: int
    txs: dict[str, TxRef] = field(default_factory=dict)  # by hash, first event names it
    successor: int | None = None  # set when the round failed before its commit


class JobIndex:
    """Applies decoded market events; pure state, no I/O (see :class:`IndexFollower`)."""

    def __init__(self) -> None:
        self.jobs: dict[int, JobRecord] = {}
        self.rounds: dict[int, RoundRecord] = {}
        # registered nodes (Active or Exiting), by the one replay rule of offchain.protocol
        self.registry = RegistryState()
        self.served: Counter[str] = Counter()  # finalized jobs whose result each node signed

    def _round(self, round_id: int) -> RoundRecord:
        return self.rounds.setdefault(round_id, RoundRecord(round_id))

    @property
    def nodes(self) -> dict[Address, RegistryEntry]:
        """Registered nodes (Active or Exiting) by address, as of the last applied event."""
        return self.registry.nodes

    def apply(self, ev: dict[str, Any]) -> None:
        if self.registry.apply(ev):
            return
        name = ev["event"]
        handler = getattr(self, "_on_" + name, None)
        if handler is not None:
            handler(ev)

    @staticmethod
    def _ref(name: str, ev: dict[str, Any]) -> TxRef:
        return TxRef(name, str(ev["tx_hash"]), int(ev["block_number"]), int(ev["log_index"]))

    # ------------------------------------------------------------------ jobs

    def _on_JobPosted(self, ev: dict[str, Any]) -> None:
        job_id = int(ev["job_id"])
        self.jobs[job_id] = JobRecord(
            job_id=job_id, buyer=to_checksum_address(ev["buyer"]),
            dataset_id=bytes(ev["dataset_id"]), query=str(ev["query"]),
            committee_size=int(ev["committee_size"]), threshold=int(ev["threshold"]),
            min_providers=int(ev["min_providers"]), deadline=int(ev["deadline"]),
            escrow_wei=int(ev["escrow_wei"]), seed_round=int(ev["seed_round"]),
            posted=self._ref("postJob", ev))

    def _on_CommitteeAssigned(self, ev: dict[str, Any]) -> None:
        job = self.jobs.get(int(ev["job_id"]))
        if job is not None:
            job.committee = [to_checksum_address(a) for a in ev["committee"]]
            job.committee_round = int(ev["round_id"])
            job.assigned = self._ref("assignCommittee", ev)

    def _on_JobFinalized(self, ev: dict[str, Any]) -> None:
        job = self.jobs.get(int(ev["job_id"]))
        if job is None:
            return
        job.finalized = ev
        job.finalized_tx = self._ref("finalizeJob", ev)
        for member in signers(job.committee or [], int(ev["signer_mask"])):
            self.served[member] += 1

    def _on_JobRefunded(self, ev: dict[str, Any]) -> None:
        job = self.jobs.get(int(ev["job_id"]))
        if job is not None:
            job.refund_wei = int(ev["amount_wei"])
            job.refund_tx = self._ref("reclaimEscrow", ev)

    # ------------------------------------------------------------------ beacon rounds

    def _add_round_tx(self, round_id: int, name: str, ev: dict[str, Any]) -> None:
        rnd = self._round(round_id)
        rnd.txs.setdefault(str(ev["tx_hash"]), self._ref(name, ev))

    def _on_RoundCommitted(self, ev: dict[str, Any]) -> None:
        self._add_round_tx(int(ev["round_id"]), "commitRound", ev)

    def _on_ContributionOpened(self, ev: dict[str, Any]) -> None:
        self._add_round_tx(int(ev["round_id"]), "recover" if ev["recovered"] else "reveal", ev)

    def _on_RoundFinalized(self, ev: dict[str, Any]) -> None:
        self._add_round_tx(int(ev["round_id"]), "reveal", ev)

    def _on_RoundFailed(self, ev: dict[str, Any]) -> None:
        round_id = int(ev["round_id"])
        self._add_round_tx(round_id, "failRound", ev)
        if int(ev["successor"]):
            self._round(round_id).successor = int(ev["successor"])

    def round_chain(self, seed_round: int, final_round: int | None) -> list[int]:
        """The rounds that served a job: its seed round and the successors it was passed on
        to (up to ``final_round`` if known)."""
        out = [seed_round]
        while out[-1] != final_round and len(out) < 64:
            nxt = self.rounds.get(out[-1], RoundRecord(0)).successor
            if nxt is None or nxt in out:
                break
            out.append(nxt)
        return out

    # ------------------------------------------------------------------ registry

    def active_nodes(self) -> set[str]:
        """Nodes Active as of the last applied event (registry events go to
        :meth:`offchain.protocol.registry.RegistryState.apply`, see :meth:`apply`)."""
        return set(self.registry.active())


def signers(committee: list[str], mask: int) -> list[str]:
    """Committee members whose bit is set in ``mask`` (bit i = committee[i])."""
    return [m for i, m in enumerate(committee) if mask >> i & 1]


class IndexFollower:
    """Keeps a :class:`JobIndex` current: :meth:`sync` reads new blocks' events; :meth:`start`
    runs it every ``poll_interval_s`` in a background task. Waiters use :meth:`wait_changed`."""

    def __init__(self, chain: Chain, poll_interval_s: float = 0.25) -> None:
        self.chain = chain
        self.index = JobIndex()
        self.poll_interval_s = poll_interval_s
        self.next_block = chain.deploy_block
        self.head_block = -1
        self.head_timestamp = 0
        self.healthy = False
        self._decoder = EventDecoder(chain.market.contract)
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._last_start = float("-inf")
        self.stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _read(self) -> tuple[int, int, list[dict[str, Any]]]:
        """Blocking: the head block and the decoded events of blocks [next_block, head]."""
        head = self.chain.w3.eth.get_block("latest")
        number, timestamp = int(head["number"]), int(head["timestamp"])
        events: list[dict[str, Any]] = []
        start = self.next_block
        while start <= number:
            end = min(number, start + LOG_RANGE - 1)
            events.extend(self._decoder.fetch(start, end))
            start = end + 1
        return number, timestamp, events

    async def sync(self, *, fresh_since: float | None = None) -> None:
        """Bring the index up to the latest block (raises ProblemError chain-unavailable).

        ``fresh_since`` (loop time): skip if a sync started after it has completed meanwhile
        (concurrent on-demand refreshes share one RPC round)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            if fresh_since is not None and self._last_start >= fresh_since and self.healthy:
                return
            self._last_start = loop.time()
            try:
                number, timestamp, events = await self.chain.run(self._read)
            except BaseException:
                self.healthy = False
                raise
            self.healthy = True
            for ev in events:
                self.index.apply(ev)
            changed = number != self.head_block or bool(events)
            self.next_block = max(self.next_block, number + 1)
            self.head_block, self.head_timestamp = number, timestamp
            if changed:
                self._changed.set()
                self._changed = asyncio.Event()

    async def wait_changed(self, timeout_s: float) -> None:
        """Return when the index next changes, after ``timeout_s``, or at once when the server
        is stopping (:meth:`release_waiters`)."""
        if self.stopping.is_set():
            return
        changed = asyncio.ensure_future(self._changed.wait())
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait([changed, stopping], timeout=timeout_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            changed.cancel()
            stopping.cancel()

    def release_waiters(self) -> None:
        """Let every ``?wait`` request answer now (the server is shutting down)."""
        self.stopping.set()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep following through RPC outages
                _log.warning("index sync failed: %s", exc)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
