"""The node's side of the randomness beacon: runs rounds, and settles what waits on them.

Driven by chain events from the follower (RoundOpened, RoundCommitted, ContributionOpened,
RoundFinalized, RoundFailed, RandomnessRequested, JobPosted) and by peer messages
(``offchain.wire.beacon_payloads``), it runs ``offchain.protocol.beacon.BeaconRound`` for
every round this node was Active at: deal, verify and report, agree on Q (the round's leader
proposes and submits the commit), reveal (the leader batches; a member whose contribution is not
on chain soon after submits it itself), recover withheld contributions after the reveal phase,
and declare the round Failed when a deadline passes without it completing. When a round is
Finalized, waiting jobs get their committee (``assignCommittee``) and waiting requests their
value (``fulfill``): the leader at once, the others after a back-off if still needed.

Phase deadlines are block numbers, compared with the latest block the follower has seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from web3 import Web3

from offchain.chain.beacon import BeaconClient, Opening, RoundStatus
from offchain.chain.market import ContractRevert, TransactionFailed
from offchain.crypto import pedersen
from offchain.crypto.field import R
from offchain.encoding import eip712_beacon
from offchain.encoding.eip712 import Sig
from offchain.node.transport import DeliveryError
from offchain.protocol.beacon import BeaconRound, Complaint, leader_of
from offchain.protocol.job import ProtocolError
from offchain.wire.beacon_payloads import (
    BeaconDealPayload,
    BeaconOpenPayload,
    BeaconProposePayload,
    BeaconRecoverPayload,
    BeaconReportPayload,
    BeaconSignPayload,
    ComplaintModel,
    decode_beacon_payload,
)
from offchain.wire.envelope import Header, seal
from offchain.wire.job_payloads import PayloadError, SigModel, _Payload, encode_payload, h32


class BeaconHost(Protocol):
    """What the beacon service needs from the node hosting it (implemented by
    :class:`offchain.node.main.Node`), stated here so this module never imports the node.

    ``account`` signs transactions and EIP-712 messages; ``domain`` is the market's EIP-712
    domain; ``follower`` is the registry directory; ``client`` delivers sealed envelopes;
    ``tx_lock`` serialises this node's transactions (one nonce sequence)."""

    account: Any
    address: str
    chain_id: int
    config: Any
    domain: Any
    follower: Any
    client: Any
    market: Any
    tx_lock: asyncio.Lock

    async def receive(self, raw: bytes | dict[str, Any]) -> tuple[int, str]: ...

log = logging.getLogger("mpc.beacon")
ROUND_RETENTION_S = 60.0  # how long a settled round's state is kept (late messages, settling)


def _b32(h: str) -> bytes:
    return bytes.fromhex(h[2:])


@dataclass
class RoundRuntime:
    round_id: int
    open_block: int
    threshold: int
    active: tuple[str, ...]
    leaders: list[str]  # rotation: leaders[0], then the next if no commit in time
    attempt: int = 0
    state: BeaconRound | None = None
    commit_block: int = 0
    opened_on_chain: set[str] = field(default_factory=set)
    status: RoundStatus = RoundStatus.OPEN
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    t0: float = field(default_factory=time.perf_counter)

    @property
    def leader(self) -> str:
        return self.leaders[self.attempt % len(self.leaders)]

    def may_lead(self, node: str) -> bool:
        """Leaders up to one attempt ahead of ours are accepted (clocks differ a little)."""
        return node in {self.leaders[i % len(self.leaders)] for i in range(self.attempt + 2)}


class BeaconService:
    """One per node; see the module docstring."""

    def __init__(self, node: BeaconHost) -> None:
        self.node = node
        self.client = BeaconClient(node.market)
        self.phase_blocks = self.client.phase_blocks()
        self.rounds: dict[int, RoundRuntime] = {}
        self.round_seen: dict[int, asyncio.Event] = {}
        self.successor: dict[int, int] = {}
        self.waiting_jobs: dict[int, int] = {}  # job id -> seed round
        self.waiting_requests: dict[int, int] = {}  # request id -> round
        self.latest_block = 0
        self.max_round = 0  # highest round id opened so far
        self.tasks: set[asyncio.Task[Any]] = set()
        # Fault injection (NodeConfig.beacon_fault), to exercise detection, recovery, slashing.
        self.fault: str | None = None

    # ------------------------------------------------------------------ plumbing
    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def notify_all(self) -> None:
        for rt in list(self.rounds.values()):
            async with rt.changed:
                rt.changed.notify_all()

    def on_block(self, number: int) -> None:
        if number > self.latest_block:
            self.latest_block = number
            self.spawn(self.notify_all())

    async def until(self, rt: RoundRuntime, predicate: Callable[[], bool],
                    timeout_s: float) -> bool:
        async with rt.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rt.changed.wait_for(predicate), timeout_s)
        return predicate()

    async def send(self, round_id: int, kind: str, recipient: str, payload: _Payload) -> None:
        node = self.node
        peer = await node.follower.peer(recipient)
        if peer is None:
            log.warning("round %d: %s not registered; %s not sent", round_id, recipient, kind)
            return
        header = Header(chain_id=node.chain_id, contract=node.market.address, job_id=round_id,
                        kind=kind, sender=node.address, recipient=recipient)
        envelope = seal(header, encode_payload(payload), node.account, peer.enc_key)
        if recipient == node.address:
            status, reason = await node.receive(envelope)
            if status != 202:
                log.error("round %d: self-delivery of %s failed: %s", round_id, kind, reason)
            return

        async def deliver() -> None:
            try:
                await node.client.send(peer.endpoint, envelope,
                                       deadline_s=node.config.round_timeout_s)
            except DeliveryError as exc:
                log.warning("round %d: %s to %s not delivered: %s", round_id, kind, recipient,
                            exc)
        self.spawn(deliver())

    async def transact(self, what: str, fn: Callable[..., Any], *args: Any) -> bool:
        """Send one transaction (serialised per node); a revert — before sending, or once mined
        (e.g. a concurrent transaction got there first) — is logged, not raised."""
        try:
            async with self.node.tx_lock:
                out = await asyncio.to_thread(fn, self.node.account, *args)
            tx = out[-1] if isinstance(out, tuple) else out
            log.info("%s: tx %s, gas %d", what, tx.hash, tx.gas_used)
            return True
        except (ContractRevert, TransactionFailed) as exc:
            log.info("%s reverted: %s", what, exc)
            return False

    # ------------------------------------------------------------------ chain events
    def on_event(self, ev: dict[str, Any]) -> None:
        name = ev["event"]
        # the follower reports the synced head after the batch; notify once, below
        self.latest_block = max(self.latest_block, int(ev["block_number"]))
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
            round_id, succ = int(ev["round_id"]), int(ev["successor"])
            self.successor[round_id] = succ
            rt = self.rounds.get(round_id)
            if rt is not None:
                rt.status = RoundStatus.FAILED
            if succ:
                log.warning("round %d failed before its commit; successor round %d", round_id,
                            succ)
            else:  # failed after its commit: it yields nothing, and is never re-drawn
                log.warning("round %d failed after its commit; its jobs and requests get no "
                            "value", round_id)
                for waiting in (self.waiting_jobs, self.waiting_requests):
                    for key in [k for k, r in waiting.items() if self.resolve(r) == round_id]:
                        del waiting[key]
            self.forget_later(round_id)
        elif name == "RandomnessRequested":
            self.waiting_requests[int(ev["request_id"])] = int(ev["round_id"])
        self.spawn(self.notify_all())

    def forget_later(self, round_id: int) -> None:
        """Drop a settled round's state (secrets and shares included) and replay records after
        a while, so a long-running node does not grow without bound."""
        def forget() -> None:
            self.rounds.pop(round_id, None)
            self.round_seen.pop(round_id, None)
        asyncio.get_running_loop().call_later(ROUND_RETENTION_S, forget)

    def on_job_posted(self, job_id: int, seed_round: int) -> None:
        self.waiting_jobs[job_id] = seed_round

    def on_committee_assigned(self, job_id: int) -> None:
        self.waiting_jobs.pop(job_id, None)

    def resolve(self, round_id: int) -> int:
        while round_id in self.successor:
            round_id = self.successor[round_id]
        return round_id

    def on_round_opened(self, ev: dict[str, Any]) -> None:
        round_id = int(ev["round_id"])
        self.max_round = max(self.max_round, round_id)
        if round_id in self.rounds:
            return
        active = tuple(sorted(self.node.follower.active_nodes(), key=lambda a: int(a, 16)))
        if not active:
            return
        first = active.index(leader_of(round_id, active))
        rt = RoundRuntime(round_id, int(ev["open_block"]), int(ev["threshold"]), active,
                          list(active[first:] + active[:first]))
        self.rounds[round_id] = rt
        self.round_seen.setdefault(round_id, asyncio.Event()).set()
        if self.node.address in active:
            self.spawn(self.run_round(rt))

    # ------------------------------------------------------------------ peer messages
    async def receive(self, header: Header, plaintext: bytes) -> tuple[int, str]:
        """Apply one authenticated beacon message; returns (HTTP status, reason)."""
        rt = self.rounds.get(header.job_id)
        if rt is None and header.job_id <= self.max_round:
            return 404, "round settled and forgotten, or this node took no part"
        if rt is None:
            seen = self.round_seen.setdefault(header.job_id, asyncio.Event())
            self.node.follower.poke.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(seen.wait(), 5.0)
            rt = self.rounds.get(header.job_id)
            if rt is None:
                self.round_seen.pop(header.job_id, None)
                return 404, "unknown round"
        # the round's state exists a moment after RoundOpened (the dealing runs in a thread)
        await self.until(rt, lambda: rt.state is not None, 2.0)
        st = rt.state
        if st is None:
            return 409, "this node takes no part in the round"
        if header.sender not in rt.active:
            return 403, "sender not Active at the round's opening"
        if header.kind in ("beacon_open", "beacon_recover") and not st.participants:
            # Sent after the commit, which this node may not have processed yet.
            self.node.follower.poke.set()
            await self.until(rt, lambda: bool(st.participants)
                             or rt.status in (RoundStatus.FINALIZED, RoundStatus.FAILED), 5.0)
        try:
            payload = decode_beacon_payload(header.kind, plaintext)
            self.apply(rt, st, header.sender, payload)
        except PayloadError as exc:
            return 400, str(exc)
        except (ProtocolError, ValueError) as exc:
            log.warning("round %d: dropped %s from %s: %s", rt.round_id, header.kind,
                        header.sender, exc)
            return 400, str(exc)
        async with rt.changed:
            rt.changed.notify_all()
        return 202, "accepted"

    def _check_share_sig(self, rt: RoundRuntime, dealer: str, recipient: str, share_s: int,
                         share_r: int, sig: Sig, commitment: bytes) -> None:
        """The dealer's BeaconShare signature, checked before the share is used."""
        signer = eip712_beacon.recover_share_signer(self.node.domain, rt.round_id, recipient,
                                                    commitment, share_s, share_r, sig)
        if signer != dealer:
            raise ProtocolError("share not signed by its dealer")

    def apply(self, rt: RoundRuntime, st: BeaconRound, sender: str, payload: Any) -> None:
        if isinstance(payload, BeaconDealPayload):
            points = [(int(x, 16), int(y, 16)) for x, y in payload.points]
            s, r = int(payload.share_s, 16), int(payload.share_r, 16)
            sig = payload.sig.to_sig()
            try:
                commitment = pedersen.commitment_hash([pedersen.decode_point(*p) for p in points])
            except ValueError as exc:
                raise ProtocolError(f"deal with malformed points: {exc}") from exc
            self._check_share_sig(rt, sender, self.node.address, s, r, sig, commitment)
            if not st.add_deal(sender, points, s, r, sig.to_bytes()):
                log.warning("round %d: INCONSISTENT SHARE from dealer %s (provable complaint "
                            "kept; the dealer is excluded from Q)", rt.round_id, sender)
        elif isinstance(payload, BeaconReportPayload):
            if not rt.may_lead(self.node.address):
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
            sig = eip712_beacon.sign_beacon_commit(self.node.account, self.node.domain,
                                                   rt.round_id, p_hash)
            self.spawn(self.send(rt.round_id, "beacon_sign", sender,
                                 BeaconSignPayload(participants_hash=h32(p_hash),
                                                   sig=SigModel.of(sig))))
        elif isinstance(payload, BeaconSignPayload):
            if st.proposal is None:
                raise ProtocolError("no proposal to sign")
            p_hash = eip712_beacon.participants_hash(*st.proposal)
            if _b32(payload.participants_hash) != p_hash:
                raise ProtocolError("signature over another proposal")
            sig = payload.sig.to_sig()
            signer = eip712_beacon.recover_beacon_commit_signer(self.node.domain, rt.round_id,
                                                                p_hash, sig)
            if signer != sender:
                raise ProtocolError("commit signature not by the sender")
            st.commit_sigs[sender] = sig.to_bytes()
        elif isinstance(payload, BeaconOpenPayload):
            st.add_opening(sender, int(payload.secret, 16), int(payload.salt, 16),
                           _b32(payload.rest_hash))
        elif isinstance(payload, BeaconRecoverPayload):
            st.add_recovery_share(sender, payload.dealer, int(payload.share_s, 16),
                                  int(payload.share_r, 16))

    # ------------------------------------------------------------------ the round
    def phase(self, rt: RoundRuntime, what: str) -> None:
        log.info("round %d: %s at +%.0f ms", rt.round_id, what,
                 (time.perf_counter() - rt.t0) * 1e3)

    async def run_round(self, rt: RoundRuntime) -> None:
        try:
            await self._run_round(rt)
        except ProtocolError as exc:
            log.warning("round %d: %s", rt.round_id, exc)
        except Exception:
            log.exception("round %d failed on this node", rt.round_id)

    async def _run_round(self, rt: RoundRuntime) -> None:
        node, me = self.node, self.node.address
        cfg = node.config
        st = await asyncio.to_thread(BeaconRound.start, rt.round_id, rt.threshold, me, rt.active)
        rt.state = st
        async with rt.changed:
            rt.changed.notify_all()
        points = [(hex(x), hex(y)) for x, y in st.points()]
        for peer in rt.active:
            if peer == me:
                continue
            s, r = st.share_for(peer)
            if self.fault == "bad_share" and peer == next(p for p in rt.active if p != me):
                s = (s + 1) % R  # inconsistent with our commitment (fault injection)
            sig = eip712_beacon.sign_share(node.account, node.domain, rt.round_id, peer,
                                           st.commitment, s, r)
            await self.send(rt.round_id, "beacon_deal", peer, BeaconDealPayload(
                points=points, share_s=hex(s), share_r=hex(r), sig=SigModel.of(sig)))
        n, quorum = len(rt.active), 2 * rt.threshold + 1
        await self.gather(rt, lambda: len(st.deals) + len(st.complaints), quorum, n)
        self.phase(rt, f"deals in ({len(st.deals)} verified, {len(st.complaints)} complaints)")
        report = BeaconReportPayload(
            verified=[(d, h32(c)) for d, c in st.verified().items()],
            complaints=[ComplaintModel(dealer=c.dealer,
                                       points=[(hex(x), hex(y)) for x, y in c.points],
                                       share_s=hex(c.share_s), share_r=hex(c.share_r),
                                       sig=SigModel.of(Sig.from_bytes(c.sig)))
                        for c in st.complaints.values()])
        commit_deadline = rt.open_block + self.phase_blocks
        # Leader rotation: if the leader does not get Q on chain in time, the next one tries.
        while rt.status == RoundStatus.OPEN and self.latest_block <= commit_deadline:
            await self.send(rt.round_id, "beacon_report", rt.leader, report)
            if me == rt.leader:
                await self.lead_commit(rt, st)
            await self.until(rt, lambda: rt.status != RoundStatus.OPEN
                             or self.latest_block > commit_deadline,
                             cfg.beacon_leader_timeout_s)
            if rt.status == RoundStatus.OPEN and self.latest_block <= commit_deadline:
                rt.attempt += 1
                log.warning("round %d: no commit yet; next leader %s", rt.round_id, rt.leader)
        await self.until(rt, lambda: rt.status != RoundStatus.OPEN
                         or self.latest_block > commit_deadline, 3600)
        if rt.status == RoundStatus.OPEN:
            await self.fail(rt, [], [])
            return
        if rt.status != RoundStatus.COMMITTED or me not in st.participants:
            return
        self.phase(rt, f"committed with {len(st.participants)} participants")
        await self.reveal_and_recover(rt, st)

    async def gather(self, rt: RoundRuntime, count: Callable[[], int], need: int,
                     everyone: int) -> int:
        """Wait until ``count()`` reaches ``need`` (up to the round timeout), then at most
        4 x ``straggler_grace_s`` more for ``everyone``: a dead node costs one grace period,
        and a node that is merely slow (16 nodes on 2 cores) is not left out of the round."""
        cfg = self.node.config
        await self.until(rt, lambda: count() >= need, cfg.round_timeout_s)
        if count() >= need:
            await self.until(rt, lambda: count() >= everyone, 4 * cfg.straggler_grace_s)
        return count()

    async def lead_commit(self, rt: RoundRuntime, st: BeaconRound) -> None:
        cfg = self.node.config
        await self.gather(rt, lambda: len(st.reports), 2 * rt.threshold + 1, len(rt.active))
        for _attempt in range(3):
            proposal = st.build_q()
            if proposal is None:
                log.warning("round %d: fewer than 2T+1 nodes verified each other; no commit",
                            rt.round_id)
                return
            participants, commitments = proposal
            st.commit_sigs.clear()
            payload = BeaconProposePayload(participants=participants,
                                           commitments=[h32(c) for c in commitments])
            for p in participants:
                await self.send(rt.round_id, "beacon_propose", p, payload)
            need = len(participants)
            await self.until(rt, lambda: len(st.commit_sigs) >= need,  # noqa: B023
                             cfg.beacon_leader_timeout_s / 2)
            silent = [p for p in participants if p not in st.commit_sigs]
            if not silent:
                break
            log.warning("round %d: %s did not sign Q; proposing without them", rt.round_id,
                        silent)
            for p in silent:
                st.reports.pop(p, None)
        else:
            return
        sigs = [Sig.from_bytes(st.commit_sigs[p]) for p in participants]
        self.phase(rt, "Q signed")
        await self.transact(f"round {rt.round_id} commit", self.client.commit_round,
                            rt.round_id, participants, commitments, sigs)

    async def reveal_and_recover(self, rt: RoundRuntime, st: BeaconRound) -> None:
        cfg, me = self.node.config, self.node.address
        q = st.participants
        withhold = self.fault == "withhold"
        if not withhold:
            secret, salt, rest = st.own_opening()
            st.openings[me] = (secret, salt, rest)
            for p in q:
                if p != me:
                    await self.send(rt.round_id, "beacon_open", p, BeaconOpenPayload(
                        secret=hex(secret), salt=hex(salt), rest_hash=h32(rest)))
        reveal_deadline = rt.commit_block + self.phase_blocks
        # The leader batches the openings; a leader left out of Q is replaced by Q's first.
        batcher = rt.leader if rt.leader in q else q[0]
        if me == batcher:
            await self.until(rt, lambda: len(st.openings) >= len(q), cfg.straggler_grace_s * 4)
            await self.submit_openings(rt, st, recovered=False)
        # Everyone (the batcher too) makes sure its own opening is on chain before the deadline:
        # a batch that lost a race, or a batcher that is down, costs a few seconds, not a slash.
        while not withhold and me not in rt.opened_on_chain \
                and self.latest_block < reveal_deadline and rt.status == RoundStatus.COMMITTED:
            await self.until(rt, lambda: me in rt.opened_on_chain, cfg.submit_backoff_s)
            if me not in rt.opened_on_chain and self.latest_block < reveal_deadline:
                await self.submit_openings(rt, st, recovered=False, only=[me])
        await self.until(rt, lambda: rt.status != RoundStatus.COMMITTED
                         or self.latest_block > reveal_deadline, 3600)
        if rt.status != RoundStatus.COMMITTED:
            return
        missing = [p for p in q if p not in rt.opened_on_chain]
        self.phase(rt, f"reveal phase over; recovering {missing}")
        for dealer in missing:
            if dealer == me:
                continue
            s, r = st.recovery_share(dealer)
            for p in q:
                if p != me:
                    await self.send(rt.round_id, "beacon_recover", p, BeaconRecoverPayload(
                        dealer=dealer, share_s=hex(s), share_r=hex(r)))
        rank = sorted(p for p in q if p not in missing).index(me) if me not in missing else 0
        await self.until(rt, lambda: all(st.try_recover(d) is not None for d in missing
                                         if d != me), cfg.round_timeout_s)
        await asyncio.sleep(rank * cfg.straggler_grace_s * 2)
        recovery_deadline = reveal_deadline + self.phase_blocks
        if rt.status == RoundStatus.COMMITTED and self.latest_block <= recovery_deadline:
            await self.submit_openings(rt, st, recovered=True)
        await self.until(rt, lambda: rt.status != RoundStatus.COMMITTED
                         or self.latest_block > recovery_deadline, 3600)
        if rt.status == RoundStatus.COMMITTED:
            await self.fail(rt, st.participants, st.commitments)

    async def submit_openings(self, rt: RoundRuntime, st: BeaconRound, *, recovered: bool,
                              only: list[str] | None = None) -> None:
        openings = []
        for i, p in enumerate(st.participants):
            if p in rt.opened_on_chain or (only is not None and p not in only):
                continue
            got = st.try_recover(p) if recovered else st.openings.get(p)
            if got is not None:
                openings.append(Opening(i, got[0], got[1], got[2]))
        if not openings:
            return
        fn = self.client.recover if recovered else self.client.reveal
        await self.transact(f"round {rt.round_id} {'recover' if recovered else 'reveal'} "
                            f"({len(openings)})", fn, rt.round_id, st.participants,
                            st.commitments, openings)

    async def fail(self, rt: RoundRuntime, participants: list[str],
                   commitments: list[bytes]) -> None:
        if self.node.address != rt.leader:
            await asyncio.sleep(self.node.config.submit_backoff_s)
        info = await asyncio.to_thread(self.client.get_round, rt.round_id)
        if info.status in (RoundStatus.OPEN, RoundStatus.COMMITTED):
            await self.transact(f"round {rt.round_id} failRound", self.client.fail_round,
                                rt.round_id, participants, commitments)

    # ------------------------------------------------------------------ settling
    async def settle(self, round_id: int) -> None:
        """Assign committees of the jobs and fulfil the requests waiting on ``round_id``."""
        jobs = [j for j, r in self.waiting_jobs.items() if self.resolve(r) == round_id]
        requests = [q for q, r in self.waiting_requests.items() if self.resolve(r) == round_id]
        rt = self.rounds.get(round_id)
        leads = rt is not None and rt.leader == self.node.address
        if not leads:
            await asyncio.sleep(self.node.config.submit_backoff_s)
        for job_id in jobs:
            if job_id not in self.waiting_jobs:
                continue
            info = await asyncio.to_thread(self.node.market.get_job, job_id)
            if info.committee_hash == bytes(32) and info.status == 1:
                await self.transact(f"job {job_id} assignCommittee",
                                    self.client.assign_committee, job_id)
            self.waiting_jobs.pop(job_id, None)
        for request_id in requests:
            req = await asyncio.to_thread(self.client.get_request, request_id)
            if req.status == 1:
                await self.transact(f"request {request_id} fulfill", self.client.fulfill,
                                    request_id)
            self.waiting_requests.pop(request_id, None)
