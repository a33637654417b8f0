"""The node's side of the randomness beacon: follows rounds, and settles what waits on them.

Driven by chain events from the follower (RoundOpened, RoundCommitted, ContributionOpened,
RoundFinalized, RoundFailed, RandomnessRequested; JobPosted and CommitteeAssigned through
:meth:`BeaconService.on_job_posted` / :meth:`~BeaconService.on_committee_assigned`) and by peer
messages (``offchain.wire.beacon_payloads``). For every round this node was Active at, a
:class:`~offchain.node.beacon_round.RoundRunner` runs ``offchain.protocol.beacon.BeaconRound``
(deal, report, agree on Q, reveal, recover, fail); this module feeds it, and when a round is
Finalized it gives the waiting jobs their committee (``assignCommittee``) and the waiting
requests their value (``fulfill``): the leader at once, the others after a back-off if still
needed.

Phase deadlines are block numbers, compared with the latest block the follower has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from offchain.chain.beacon import BeaconClient, RoundStatus
from offchain.chain.tx import TxResult
from offchain.crypto import pedersen
from offchain.encoding.eip712 import Sig
from offchain.encoding.eip712 import beacon as eip712_beacon
from offchain.errors import ProtocolError
from offchain.node.beacon_round import BeaconChain, RoundRunner, RoundRuntime
from offchain.node.config import NodeConfig
from offchain.node.peers import Identity, Peers
from offchain.protocol.beacon import BeaconRound, Complaint, leader_of
from offchain.types import JobStatus, MessageKind, RequestStatus
from offchain.wire.beacon_payloads import (
    BeaconDealPayload,
    BeaconOpenPayload,
    BeaconProposePayload,
    BeaconRecoverPayload,
    BeaconReportPayload,
    BeaconSignPayload,
    decode_beacon_payload,
)
from offchain.wire.envelope import Header
from offchain.wire.job_payloads import PayloadError, SigModel, h32

__all__ = ["BeaconChain", "BeaconService", "RoundRuntime"]

log = logging.getLogger("mpc.beacon")
ROUND_RETENTION_S = 60.0  # how long a settled round's state is kept (late messages, settling)


def _b32(h: str) -> bytes:
    return bytes.fromhex(h[2:])


def _assign_committee(account: LocalAccount, client: BeaconClient, job_id: int) -> TxResult:
    """``assignCommittee`` keeping only the transaction (the committee arrives as an event)."""
    return client.assign_committee(account, job_id)[1]


class BeaconService:
    """One per node: the rounds it follows, the jobs and requests waiting on them.

    ``identity``: this node; ``peers``: messaging, the Active set, waiting; ``chain``: the
    beacon contract (and through it the market's job reads), the latest block and serialised
    transactions; ``config``: timeouts (seconds) and fault injection.
    Round ids share the envelope header's ``job_id`` field.
    """

    def __init__(self, identity: Identity, peers: Peers, chain: BeaconChain,
                 config: NodeConfig) -> None:
        self.identity = identity
        self.peers = peers
        self.chain = chain
        self.config = config
        self.runner = RoundRunner(identity, peers, chain, config)
        self.rounds: dict[int, RoundRuntime] = {}
        self.round_seen: dict[int, asyncio.Event] = {}
        self.successor: dict[int, int] = {}
        self.waiting_jobs: dict[int, int] = {}  # job id -> seed round
        self.waiting_requests: dict[int, int] = {}  # request id -> round
        self.max_round = 0  # highest round id opened so far
        self.tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ plumbing
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in a task kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def notify_all(self) -> None:
        """Wake every round's waiters (a new block or chain event may pass a deadline)."""
        for rt in list(self.rounds.values()):
            async with rt.changed:
                rt.changed.notify_all()

    def on_block(self, number: int) -> None:
        """The follower synced up to block ``number``."""
        if number > self.chain.head:
            self.chain.head = number
            self.spawn(self.notify_all())

    # ------------------------------------------------------------------ chain events
    def on_event(self, ev: dict[str, Any]) -> None:
        """Apply one beacon event (decoded log with ``event`` and ``block_number``)."""
        name = ev["event"]
        # the follower reports the synced head after the batch; notify once, below
        self.chain.head = max(self.chain.head, int(ev["block_number"]))
        if name == "RoundOpened":
            self.on_round_opened(ev)
        elif name == "RoundCommitted":
            rt = self.rounds.get(int(ev["round_id"]))
            if rt is not None:
                rt.commit_block = int(ev["block_number"])
                rt.status = RoundStatus.COMMITTED
                if rt.state is not None:
                    rt.state.set_committed(
                        [Web3.to_checksum_address(a) for a in ev["participants"]],
                        [bytes(c) for c in ev["commitments"]])
        elif name == "ContributionOpened":
            rt = self.rounds.get(int(ev["round_id"]))
            if rt is not None:
                rt.opened_on_chain.add(Web3.to_checksum_address(ev["participant"]))
        elif name == "RoundFinalized":
            round_id = int(ev["round_id"])
            rt = self.rounds.get(round_id)
            if rt is not None:
                rt.status = RoundStatus.FINALIZED
                log.info("round %d finalized at +%.0f ms: output %s", round_id,
                         (time.perf_counter() - rt.t0) * 1e3, h32(bytes(ev["output"])))
            self.spawn(self.settle(round_id))
            self.forget_later(round_id)
        elif name == "RoundFailed":
            self.on_round_failed(int(ev["round_id"]), int(ev["successor"]))
        elif name == "RandomnessRequested":
            self.waiting_requests[int(ev["request_id"])] = int(ev["round_id"])
        self.spawn(self.notify_all())

    def on_round_failed(self, round_id: int, successor: int) -> None:
        """A RoundFailed event: its waiters move to ``successor`` (0 when the round failed after
        its commit: then they get no value and are dropped)."""
        self.successor[round_id] = successor
        rt = self.rounds.get(round_id)
        if rt is not None:
            rt.status = RoundStatus.FAILED
        if successor:
            log.warning("round %d failed before its commit; successor round %d", round_id,
                        successor)
        else:  # failed after its commit: it yields nothing, and is never re-drawn
            log.warning("round %d failed after its commit; its jobs and requests get no "
                        "value", round_id)
            for waiting in (self.waiting_jobs, self.waiting_requests):
                for key in [k for k, r in waiting.items() if self.resolve(r) == round_id]:
                    del waiting[key]
        self.forget_later(round_id)

    def forget_later(self, round_id: int) -> None:
        """Drop a settled round's state (secrets and shares included) after
        ``ROUND_RETENTION_S``, so a long-running node does not grow without bound."""
        def forget() -> None:
            self.rounds.pop(round_id, None)
            self.round_seen.pop(round_id, None)
        asyncio.get_running_loop().call_later(ROUND_RETENTION_S, forget)

    def on_job_posted(self, job_id: int, seed_round: int) -> None:
        """Job ``job_id`` waits for ``seed_round`` (or its successors) to draw its committee."""
        self.waiting_jobs[job_id] = seed_round

    def on_committee_assigned(self, job_id: int) -> None:
        """Job ``job_id`` has its committee: nothing left to settle for it."""
        self.waiting_jobs.pop(job_id, None)

    def resolve(self, round_id: int) -> int:
        """The round that finally serves ``round_id`` (following failed rounds' successors)."""
        while round_id in self.successor:
            round_id = self.successor[round_id]
        return round_id

    def on_round_opened(self, ev: dict[str, Any]) -> None:
        """Follow a new round: its Active set (ascending by address value) and leader rotation;
        run it if this node is Active."""
        round_id = int(ev["round_id"])
        self.max_round = max(self.max_round, round_id)
        if round_id in self.rounds:
            return
        active = tuple(sorted(self.peers.active_nodes(), key=lambda a: int(a, 16)))
        if not active:
            return
        first = active.index(leader_of(round_id, active))
        rt = RoundRuntime(round_id, int(ev["open_block"]), int(ev["threshold"]), active,
                          list(active[first:] + active[:first]))
        self.rounds[round_id] = rt
        self.round_seen.setdefault(round_id, asyncio.Event()).set()
        if self.identity.address in active:
            self.spawn(self.runner.run(rt))

    # ------------------------------------------------------------------ peer messages
    async def receive(self, header: Header, plaintext: bytes) -> tuple[int, str]:
        """Apply one authenticated beacon message (``header.job_id`` is the round id) from a
        registered sender. Returns (HTTP status, reason): 404 for a round unknown or forgotten,
        409 when this node takes no part, 403 for a sender not Active at the round's opening,
        400 for a bad payload or one the round's state rejects, 202 when applied. Not checked
        against the replay guard (the state machine rejects a second deal or report)."""
        rt = self.rounds.get(header.job_id)
        if rt is None and header.job_id <= self.max_round:
            return 404, "round settled and forgotten, or this node took no part"
        if rt is None:
            seen = self.round_seen.setdefault(header.job_id, asyncio.Event())
            self.peers.request_sync()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(seen.wait(), 5.0)
            rt = self.rounds.get(header.job_id)
            if rt is None:
                self.round_seen.pop(header.job_id, None)
                return 404, "unknown round"
        # the round's state exists a moment after RoundOpened (the dealing runs in a thread)
        await self.peers.until(rt.changed, lambda: rt.state is not None, 2.0)
        st = rt.state
        if st is None:
            return 409, "this node takes no part in the round"
        if header.sender not in rt.active:
            return 403, "sender not Active at the round's opening"
        if header.kind in (MessageKind.BEACON_OPEN, MessageKind.BEACON_RECOVER) \
                and not st.participants:
            # Sent after the commit, which this node may not have processed yet.
            self.peers.request_sync()
            await self.peers.until(rt.changed, lambda: bool(st.participants)
                                   or rt.status in (RoundStatus.FINALIZED, RoundStatus.FAILED),
                                   5.0)
        try:
            payload = decode_beacon_payload(header.kind, plaintext)
            self.apply(rt, st, header.sender, payload)
        except PayloadError as exc:
            return 400, str(exc)
        except ProtocolError as exc:
            log.warning("round %d: dropped %s from %s: %s", rt.round_id, header.kind,
                        header.sender, exc)
            return 400, str(exc)
        async with rt.changed:
            rt.changed.notify_all()
        return 202, "accepted"

    def _check_share_sig(self, rt: RoundRuntime, dealer: str, recipient: str, share_s: int,
                         share_r: int, sig: Sig, commitment: bytes) -> None:
        """The dealer's BeaconShare signature, checked before the share is used."""
        signer = eip712_beacon.recover_share_signer(self.identity.domain, rt.round_id,
                                                    recipient, commitment, share_s, share_r, sig)
        if signer != dealer:
            raise ProtocolError("share not signed by its dealer")

    def apply(self, rt: RoundRuntime, st: BeaconRound, sender: str, payload: Any) -> None:
        """Feed one decoded beacon payload from ``sender`` to the round's state. A deal whose
        share does not match its points is kept as a provable complaint (logged); a proposal
        that matches our view is signed and the signature sent back to its leader. Raises
        ProtocolError for a bad signature, a report to a non-leader, a proposal from a
        non-leader or one that contradicts our view, and for malformed content (a point off the
        curve, an unrecoverable signature: the ValueError is re-raised as ProtocolError)."""
        try:
            self._apply(rt, st, sender, payload)
        except ValueError as exc:
            raise ProtocolError(str(exc)) from exc

    def _apply(self, rt: RoundRuntime, st: BeaconRound, sender: str, payload: Any) -> None:
        me, domain = self.identity.address, self.identity.domain
        if isinstance(payload, BeaconDealPayload):
            points = [(int(x, 16), int(y, 16)) for x, y in payload.points]
            s, r = int(payload.share_s, 16), int(payload.share_r, 16)
            sig = payload.sig.to_sig()
            try:
                commitment = pedersen.commitment_hash([pedersen.decode_point(*p) for p in points])
            except ValueError as exc:
                raise ProtocolError(f"deal with malformed points: {exc}") from exc
            self._check_share_sig(rt, sender, me, s, r, sig, commitment)
            if not st.add_deal(sender, points, s, r, sig.to_bytes()):
                log.warning("round %d: INCONSISTENT SHARE from dealer %s (provable complaint "
                            "kept; the dealer is excluded from Q)", rt.round_id, sender)
        elif isinstance(payload, BeaconReportPayload):
            if not rt.may_lead(me):
                raise ProtocolError("this node does not lead the round")
            complaints = []
            for c in payload.complaints:
                pts = [(int(x, 16), int(y, 16)) for x, y in c.points]
                s, r, sig = int(c.share_s, 16), int(c.share_r, 16), c.sig.to_sig()
                commitment = pedersen.commitment_hash([pedersen.decode_point(*p) for p in pts])
                self._check_share_sig(rt, c.dealer, sender, s, r, sig, commitment)
                complaints.append(Complaint(c.dealer, sender, tuple(pts), s, r, sig.to_bytes()))
            st.add_report(sender, {d: _b32(h) for d, h in payload.verified}, complaints)
        elif isinstance(payload, BeaconProposePayload):
            if not rt.may_lead(sender):
                raise ProtocolError("proposal not from the round's leader")
            commitments = [_b32(c) for c in payload.commitments]
            st.check_proposal(payload.participants, commitments)
            p_hash = eip712_beacon.participants_hash(payload.participants, commitments)
            sig = eip712_beacon.sign_beacon_commit(self.identity.account, domain, rt.round_id,
                                                   p_hash)
            self.spawn(self.peers.send(rt.round_id, MessageKind.BEACON_SIGN, sender,
                                       BeaconSignPayload(participants_hash=h32(p_hash),
                                                         sig=SigModel.of(sig))))
        elif isinstance(payload, BeaconSignPayload):
            if st.proposal is None:
                raise ProtocolError("no proposal to sign")
            p_hash = eip712_beacon.participants_hash(*st.proposal)
            if _b32(payload.participants_hash) != p_hash:
                raise ProtocolError("signature over another proposal")
            sig = payload.sig.to_sig()
            signer = eip712_beacon.recover_beacon_commit_signer(domain, rt.round_id, p_hash, sig)
            if signer != sender:
                raise ProtocolError("commit signature not by the sender")
            st.commit_sigs[sender] = sig.to_bytes()
        elif isinstance(payload, BeaconOpenPayload):
            st.add_opening(sender, int(payload.secret, 16), int(payload.salt, 16),
                           _b32(payload.rest_hash))
        elif isinstance(payload, BeaconRecoverPayload):
            st.add_recovery_share(sender, payload.dealer, int(payload.share_s, 16),
                                  int(payload.share_r, 16))

    # ------------------------------------------------------------------ settling
    async def settle(self, round_id: int) -> None:
        """Assign committees of the jobs and fulfil the requests waiting on ``round_id``: the
        round's leader at once, the others after ``submit_backoff_s``, each only if still
        needed (a revert because another node was first is logged)."""
        jobs = [j for j, r in self.waiting_jobs.items() if self.resolve(r) == round_id]
        requests = [q for q, r in self.waiting_requests.items() if self.resolve(r) == round_id]
        rt = self.rounds.get(round_id)
        leads = rt is not None and rt.leader == self.identity.address
        if not leads:
            await asyncio.sleep(self.config.submit_backoff_s)
        client = self.chain.client
        for job_id in jobs:
            if job_id not in self.waiting_jobs:
                continue
            info = await asyncio.to_thread(client.market.get_job, job_id)
            if info.committee_hash == bytes(32) and info.status is JobStatus.OPEN:
                await self.chain.transact(f"job {job_id} assignCommittee", _assign_committee,
                                          client, job_id)
            self.waiting_jobs.pop(job_id, None)
        for request_id in requests:
            req = await asyncio.to_thread(client.get_request, request_id)
            if req.status is RequestStatus.PENDING:
                await self.chain.transact(f"request {request_id} fulfill", client.fulfill,
                                          request_id)
            self.waiting_requests.pop(request_id, None)
