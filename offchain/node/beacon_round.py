"""Running one randomness-beacon round on this node, phase by phase (``offchain.node.beacon``
feeds it chain events and peer messages).

For a round this node was Active at: deal Pedersen shares to every Active node, verify the
deals received and report them to the round's leader, agree on Q (the leader proposes, every
member of Q signs, the leader submits ``commitRound``; a leader that does not get Q on chain in
time is replaced by the next in rotation), reveal (the leader, or Q's first member, batches the
openings; a member whose opening is not on chain soon after submits it itself), recover withheld
contributions from shares after the reveal phase, and declare the round Failed when a deadline
passes without it completing.

Phase deadlines are block numbers (``phase_blocks`` per phase, from the contract), compared with
:attr:`BeaconChain.head`, the latest block the follower has seen. Leakage is that of
``offchain.protocol.beacon``: before the reveal, peers learn only commitments and their own
shares; the chain learns Q, the commitments and, after the reveal, every opened contribution.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Concatenate, ParamSpec

from eth_account.signers.local import LocalAccount

from offchain.chain.beacon import BeaconClient, Opening, RoundStatus
from offchain.chain.market import ContractRevert, TransactionFailed
from offchain.chain.tx import TxResult
from offchain.crypto.field import R
from offchain.encoding.eip712 import Sig
from offchain.encoding.eip712 import beacon as eip712_beacon
from offchain.errors import ProtocolError
from offchain.node.config import NodeConfig
from offchain.node.peers import Identity, Peers
from offchain.protocol.beacon import BeaconRound
from offchain.types import MessageKind
from offchain.wire.beacon_payloads import (
    BeaconDealPayload,
    BeaconOpenPayload,
    BeaconProposePayload,
    BeaconRecoverPayload,
    BeaconReportPayload,
    ComplaintModel,
)
from offchain.wire.job_payloads import SigModel, h32

log = logging.getLogger("mpc.beacon")

P = ParamSpec("P")


class BeaconChain:
    """The beacon contract as this node drives it: the client, the phase length, the latest
    block seen and this node's transactions, serialised by ``tx_lock`` (one nonce sequence,
    shared with the job service)."""

    def __init__(self, client: BeaconClient, account: LocalAccount,
                 tx_lock: asyncio.Lock) -> None:
        self.client = client
        self.account = account
        self.tx_lock = tx_lock
        self.phase_blocks = client.phase_blocks()  # blocks per phase (commit, reveal, recover)
        self.head = 0  # the latest block number the follower has reported

    async def transact(self, what: str, fn: Callable[Concatenate[LocalAccount, P], TxResult],
                       *args: P.args, **kwargs: P.kwargs) -> bool:
        """Send one transaction ``fn(account, *args, **kwargs)`` (a client method returning the
        mined :class:`TxResult`) under the lock, in a thread. True once mined; a revert
        (ContractRevert before sending, TransactionFailed once mined: e.g. a concurrent
        transaction got there first) is logged as ``what`` and gives False, never raised."""
        try:
            async with self.tx_lock:
                tx = await asyncio.to_thread(fn, self.account, *args, **kwargs)
            log.info("%s: tx %s, gas %d", what, tx.hash, tx.gas_used)
            return True
        except (ContractRevert, TransactionFailed) as exc:
            log.info("%s reverted: %s", what, exc)
            return False


@dataclass
class RoundRuntime:
    """One round as this node follows it: its opening (block, threshold T, the Active nodes
    ascending by address value), the leader rotation, the protocol state (None until this
    node's dealing is ready, and for good when it took no part), what the chain has recorded
    (commit block, contributions opened, status) and a condition notified on every change."""

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
        """The leader of the current attempt."""
        return self.leaders[self.attempt % len(self.leaders)]

    def may_lead(self, node: str) -> bool:
        """Leaders up to one attempt ahead of ours are accepted (clocks differ a little)."""
        return node in {self.leaders[i % len(self.leaders)] for i in range(self.attempt + 2)}

    def phase(self, what: str) -> None:
        """Log that the round reached ``what``, in ms since it opened on this node."""
        log.info("round %d: %s at +%.0f ms", self.round_id, what,
                 (time.perf_counter() - self.t0) * 1e3)


class RoundRunner:
    """Runs this node's part of beacon rounds (:meth:`run`), one coroutine per round.

    ``config``: timeouts in seconds (``round_timeout_s``, ``straggler_grace_s``,
    ``beacon_leader_timeout_s``, ``submit_backoff_s``) and ``beacon_fault`` (fault injection:
    ``"withhold"`` never reveals, ``"bad_share"`` deals one peer a share inconsistent with its
    commitment).
    """

    def __init__(self, identity: Identity, peers: Peers, chain: BeaconChain,
                 config: NodeConfig) -> None:
        self.identity = identity
        self.peers = peers
        self.chain = chain
        self.config = config

    async def run(self, rt: RoundRuntime) -> None:
        """Run round ``rt`` to its end on this node; errors are logged, never raised."""
        try:
            await self._run(rt)
        except ProtocolError as exc:
            log.warning("round %d: %s", rt.round_id, exc)
        except Exception:
            log.exception("round %d failed on this node", rt.round_id)

    async def until(self, rt: RoundRuntime, predicate: Callable[[], bool],
                    timeout_s: float) -> bool:
        """Wait on ``rt.changed`` for ``predicate`` (:meth:`Peers.until`)."""
        return await self.peers.until(rt.changed, predicate, timeout_s)

    async def gather(self, rt: RoundRuntime, count: Callable[[], int], need: int,
                     everyone: int) -> int:
        """Wait until ``count()`` reaches ``need`` (up to the round timeout), then at most
        4 x ``straggler_grace_s`` more for ``everyone``: a dead node costs one grace period,
        and a node that is merely slow (16 nodes on 2 cores) is not left out of the round."""
        return await self.peers.gather(rt.changed, count, need, everyone,
                                       grace_s=4 * self.config.straggler_grace_s)

    def _before(self, rt: RoundRuntime, status: RoundStatus, deadline: int) -> Callable[[], bool]:
        """Predicate: the round left ``status``, or the head passed ``deadline``."""
        return lambda: rt.status is not status or self.chain.head > deadline

    async def _run(self, rt: RoundRuntime) -> None:
        me, cfg, chain = self.identity.address, self.config, self.chain
        st = await asyncio.to_thread(BeaconRound.start, rt.round_id, rt.threshold, me, rt.active)
        rt.state = st
        async with rt.changed:
            rt.changed.notify_all()
        points = [(hex(x), hex(y)) for x, y in st.points()]
        for peer in rt.active:
            if peer == me:
                continue
            s, r = st.share_for(peer)
            if cfg.beacon_fault == "bad_share" and peer == next(p for p in rt.active if p != me):
                s = (s + 1) % R  # inconsistent with our commitment (fault injection)
            sig = eip712_beacon.sign_share(self.identity.account, self.identity.domain,
                                           rt.round_id, peer, st.commitment, s, r)
            await self.peers.send(rt.round_id, MessageKind.BEACON_DEAL, peer, BeaconDealPayload(
                points=points, share_s=hex(s), share_r=hex(r), sig=SigModel.of(sig)))
        n, quorum = len(rt.active), 2 * rt.threshold + 1
        await self.gather(rt, lambda: len(st.deals) + len(st.complaints), quorum, n)
        rt.phase(f"deals in ({len(st.deals)} verified, {len(st.complaints)} complaints)")
        report = BeaconReportPayload(
            verified=[(d, h32(c)) for d, c in st.verified().items()],
            complaints=[ComplaintModel(dealer=c.dealer,
                                       points=[(hex(x), hex(y)) for x, y in c.points],
                                       share_s=hex(c.share_s), share_r=hex(c.share_r),
                                       sig=SigModel.of(Sig.from_bytes(c.sig)))
                        for c in st.complaints.values()])
        commit_deadline = rt.open_block + chain.phase_blocks
        committed_or_late = self._before(rt, RoundStatus.OPEN, commit_deadline)
        # Leader rotation: if the leader does not get Q on chain in time, the next one tries.
        while rt.status is RoundStatus.OPEN and chain.head <= commit_deadline:
            await self.peers.send(rt.round_id, MessageKind.BEACON_REPORT, rt.leader, report)
            if me == rt.leader:
                await self.lead_commit(rt, st)
            await self.until(rt, committed_or_late, cfg.beacon_leader_timeout_s)
            if rt.status is RoundStatus.OPEN and chain.head <= commit_deadline:
                rt.attempt += 1
                log.warning("round %d: no commit yet; next leader %s", rt.round_id, rt.leader)
        await self.until(rt, committed_or_late, 3600)
        if rt.status is RoundStatus.OPEN:
            await self.fail(rt, [], [])
            return
        if rt.status is not RoundStatus.COMMITTED or me not in st.participants:
            return
        rt.phase(f"committed with {len(st.participants)} participants")
        await self.reveal_and_recover(rt, st)

    async def lead_commit(self, rt: RoundRuntime, st: BeaconRound) -> None:
        """As the leader: wait for 2T+1 reports, propose Q to its members and collect their
        BeaconCommit signatures (up to three proposals, dropping members that do not sign),
        then submit ``commitRound``. Gives up (logged) when no Q of 2T+1 exists."""
        cfg = self.config
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
                await self.peers.send(rt.round_id, MessageKind.BEACON_PROPOSE, p, payload)
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
        rt.phase("Q signed")
        await self.chain.transact(f"round {rt.round_id} commit", self.chain.client.commit_round,
                                  rt.round_id, participants, commitments, sigs)

    async def reveal_and_recover(self, rt: RoundRuntime, st: BeaconRound) -> None:
        """As a member of Q: send the own opening to Q, make sure it is on chain before the
        reveal deadline, then publish shares of the contributions still missing and, after a
        back-off ranked by address value among the members that revealed, submit the
        recovered ones; declare the round Failed if the recovery deadline passes."""
        me, cfg, chain = self.identity.address, self.config, self.chain
        q = st.participants
        withhold = cfg.beacon_fault == "withhold"
        if not withhold:
            secret, salt, rest = st.own_opening()
            st.openings[me] = (secret, salt, rest)
            for p in q:
                if p != me:
                    await self.peers.send(rt.round_id, MessageKind.BEACON_OPEN, p,
                                          BeaconOpenPayload(secret=hex(secret), salt=hex(salt),
                                                            rest_hash=h32(rest)))
        reveal_deadline = rt.commit_block + chain.phase_blocks
        # The leader batches the openings; a leader left out of Q is replaced by Q's first.
        batcher = rt.leader if rt.leader in q else q[0]
        if me == batcher:
            await self.until(rt, lambda: len(st.openings) >= len(q), cfg.straggler_grace_s * 4)
            await self.submit_openings(rt, st, recovered=False)
        # Everyone (the batcher too) makes sure its own opening is on chain before the deadline:
        # a batch that lost a race, or a batcher that is down, costs a few seconds, not a slash.
        while not withhold and me not in rt.opened_on_chain \
                and chain.head < reveal_deadline and rt.status is RoundStatus.COMMITTED:
            await self.until(rt, lambda: me in rt.opened_on_chain, cfg.submit_backoff_s)
            if me not in rt.opened_on_chain and chain.head < reveal_deadline:
                await self.submit_openings(rt, st, recovered=False, only=[me])
        await self.until(rt, self._before(rt, RoundStatus.COMMITTED, reveal_deadline), 3600)
        if rt.status is not RoundStatus.COMMITTED:
            return
        missing = [p for p in q if p not in rt.opened_on_chain]
        rt.phase(f"reveal phase over; recovering {missing}")
        for dealer in missing:
            if dealer == me:
                continue
            s, r = st.recovery_share(dealer)
            for p in q:
                if p != me:
                    await self.peers.send(rt.round_id, MessageKind.BEACON_RECOVER, p,
                                          BeaconRecoverPayload(dealer=dealer, share_s=hex(s),
                                                               share_r=hex(r)))
        revealed = sorted((p for p in q if p not in missing), key=lambda a: int(a, 16))
        rank = revealed.index(me) if me not in missing else 0
        await self.until(rt, lambda: all(st.try_recover(d) is not None for d in missing
                                         if d != me), cfg.round_timeout_s)
        await asyncio.sleep(rank * cfg.straggler_grace_s * 2)
        recovery_deadline = reveal_deadline + chain.phase_blocks
        if rt.status is RoundStatus.COMMITTED and chain.head <= recovery_deadline:
            await self.submit_openings(rt, st, recovered=True)
        await self.until(rt, self._before(rt, RoundStatus.COMMITTED, recovery_deadline), 3600)
        if rt.status is RoundStatus.COMMITTED:
            await self.fail(rt, st.participants, st.commitments)

    async def submit_openings(self, rt: RoundRuntime, st: BeaconRound, *, recovered: bool,
                              only: list[str] | None = None) -> None:
        """Submit ``reveal`` (own and received openings) or ``recover`` (reconstructed ones) for
        the members of Q not yet opened on chain (only those in ``only``, if given)."""
        openings = []
        for i, p in enumerate(st.participants):
            if p in rt.opened_on_chain or (only is not None and p not in only):
                continue
            got = st.try_recover(p) if recovered else st.openings.get(p)
            if got is not None:
                openings.append(Opening(i, got[0], got[1], got[2]))
        if not openings:
            return
        client = self.chain.client
        fn = client.recover if recovered else client.reveal
        await self.chain.transact(
            f"round {rt.round_id} {'recover' if recovered else 'reveal'} ({len(openings)})",
            fn, rt.round_id, st.participants, st.commitments, openings)

    async def fail(self, rt: RoundRuntime, participants: list[str],
                   commitments: list[bytes]) -> None:
        """Declare the round Failed (``failRound``; Q and its commitments once committed): the
        leader at once, the others after ``submit_backoff_s`` and only if still needed."""
        if self.identity.address != rt.leader:
            await asyncio.sleep(self.config.submit_backoff_s)
        client = self.chain.client
        info = await asyncio.to_thread(client.get_round, rt.round_id)
        if info.status in (RoundStatus.OPEN, RoundStatus.COMMITTED):
            await self.chain.transact(f"round {rt.round_id} failRound", client.fail_round,
                                      rt.round_id, participants, commitments)
