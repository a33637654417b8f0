"""Running one job on this node: the provider side and, when drawn, the committee member's
five rounds (``offchain.node.jobs`` starts a :class:`JobRunner` task per job and feeds the
member state machine the messages it receives).

Provider: read the held dataset's columns, compute the local aggregates, deal Shamir shares of
them (``offchain.protocol.job.deal``) to every member with a signed EIP-712 InputCommitment, or
send a decline (dataset not held, query does not fit the data). Member: wait for the inputs
(round 1, up to ``collect_timeout_s``), then exchange the received lists (2), agree on the input
set S (3), open the summed shares (4) and sign the result (5), each round waiting for what it
needs within the round timeout plus ``straggler_grace_s`` for the rest; then submit
``finalizeJob`` in signer order (``submit_backoff_s`` apart).

Leakage: a member learns one share per provider (nothing below the threshold) and, once a
quorum agrees, the aggregates; nothing is opened when too few providers contributed, no quorum
agrees or the deadline is within ``deadline_margin_s``. Every round message sent is recorded,
sealed, in the job's transcript, saved under ``state_dir/transcripts``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from offchain.chain.market import ContractRevert, MarketClient
from offchain.encoding import eip712
from offchain.encoding.fixedpoint import FixedPointError
from offchain.encoding.query import local_aggregates
from offchain.errors import ProtocolError
from offchain.node.config import NodeConfig
from offchain.node.datasource import DataSource, DataSourceError
from offchain.node.peers import Identity, Peers
from offchain.protocol.job import CommitteeJob, JobSpec, deal
from offchain.types import JobStatus, MessageKind
from offchain.wire.envelope import envelope_digest
from offchain.wire.job_payloads import (
    AgreePayload,
    DeclinePayload,
    OpenPayload,
    Payload,
    ReceivedPayload,
    SharePayload,
    SigModel,
    SignaturePayload,
    h32,
)
from offchain.wire.transcript import ROUND_ORDER, Transcript

log = logging.getLogger("mpc.node")


@dataclass
class JobRuntime:
    """One job as this node runs it: the committee's view of the job (``info``), the member
    state machine (None unless this node is in the committee), the transcript of the messages
    sent and received, the expected providers (checksummed addresses Active when the job was
    posted) and a condition notified after every accepted message."""

    info: JobSpec
    member: CommitteeJob | None
    transcript: Transcript
    expected: frozenset[str] = frozenset()  # providers: Active nodes when the job was posted
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class JobRunner:
    """Runs jobs for one node: the provider side and the member side (:meth:`run`).

    ``identity``: this node; ``peers``: messaging and waiting; ``market``: the market contract
    (job status, ``finalizeJob``, chain time); ``config``: data sources, timeouts (seconds) and
    ``state_dir``; ``tx_lock``: serialises this account's transactions (shared with the beacon
    service: one nonce sequence).
    """

    def __init__(self, identity: Identity, peers: Peers, market: MarketClient,
                 config: NodeConfig, *, tx_lock: asyncio.Lock) -> None:
        self.identity = identity
        self.peers = peers
        self.market = market
        self.config = config
        self.tx_lock = tx_lock
        self.sources: dict[bytes, tuple[str, DataSource]] = {
            eip712.dataset_id(name): (name, src) for name, src in config.sources().items()
        }

    # -- sending -------------------------------------------------------------------------------
    async def send(self, job: JobRuntime, kind: str, recipient: str, payload: Payload) -> None:
        """Send one job message (see :meth:`Peers.send`); a round message is recorded in the
        job's transcript first (every node keeps what it sent and received)."""
        def record(envelope: dict[str, Any]) -> None:
            job.transcript.record(kind, self.identity.address, recipient,
                                  envelope_digest(envelope), envelope)
        await self.peers.send(job.info.job_id, kind, recipient, payload,
                              record=record if kind in ROUND_ORDER else None)

    async def broadcast(self, job: JobRuntime, kind: str, payload: Payload) -> None:
        """Send the same payload to every committee member (this node included, if one)."""
        await asyncio.gather(*(self.send(job, kind, m, payload) for m in job.info.committee))

    async def gather(self, job: JobRuntime, count: Callable[[], int], need: int) -> int:
        """Wait for a round's messages of ``job``: ``need`` within the round timeout, then
        ``straggler_grace_s`` for the rest of the committee (:meth:`Peers.gather`)."""
        return await self.peers.gather(job.changed, count, need, len(job.info.committee),
                                       grace_s=self.config.straggler_grace_s)


    # -- the protocol --------------------------------------------------------------------------
    async def run(self, job: JobRuntime) -> None:
        """Provide and (if a member) serve the committee; a ProtocolError aborts the job (logged,
        nothing opened), and the transcript is saved in any case."""
        try:
            tasks = [self.provide(job)]
            if job.member is not None:
                tasks.append(self.serve_committee(job))
            await asyncio.gather(*tasks)
        except ProtocolError as exc:
            log.warning("job %d aborted: %s", job.info.job_id, exc)
        except Exception:
            log.exception("job %d failed", job.info.job_id)
        finally:
            # Kept also for aborted jobs (what was sent/received). A sealed transcript was saved
            # when it was signed and cannot change: not rewritten while auditors may read it.
            if job.transcript.entries and not job.transcript.sealed:
                job.transcript.save(self.config.state_dir / "transcripts")

    async def provide(self, job: JobRuntime) -> None:
        """The provider side: deal Shamir shares of this node's local aggregates to the
        committee with a signed input commitment, or decline (dataset not held, query does not
        fit the data). A node that was not Active when the job was posted stays silent."""
        info, me = job.info, self.identity
        t0 = time.perf_counter()
        if me.address not in job.expected:  # e.g. Exiting, or registered after the job
            log.info("job %d: not an expected provider (not Active when it was posted)",
                     info.job_id)
            return
        held = self.sources.get(info.dataset_id)
        if held is None:
            await self.broadcast(job, MessageKind.DECLINE,
                                 DeclinePayload(reason="dataset not held"))
            return
        try:
            rows = await asyncio.to_thread(held[1].read_columns, info.query.columns)
            aggregates = local_aggregates(info.query, rows)
        except (DataSourceError, FixedPointError) as exc:
            log.warning("job %d: cannot contribute: %s", info.job_id, exc)
            await self.broadcast(job, MessageKind.DECLINE,
                                 DeclinePayload(reason="query does not fit data"))
            return
        log.info("job %d: local aggregates computed at +%.0f ms", info.job_id,
                 (time.perf_counter() - t0) * 1e3)
        contribution = deal(info, me.address, aggregates)
        sig = eip712.sign_input_commitment(me.account, me.domain, info.job_id,
                                           contribution.commitment)
        await asyncio.gather(*(
            self.send(job, MessageKind.SHARE, member, SharePayload(
                shares=[hex(s) for s in contribution.shares[i]],
                commitment=h32(contribution.commitment),
                commitment_sig=SigModel.of(sig)))
            for i, member in enumerate(info.committee)))
        log.info("job %d: shares of %d local rows dealt in %.0f ms", info.job_id, len(rows),
                 (time.perf_counter() - t0) * 1e3)

    async def serve_committee(self, job: JobRuntime) -> None:
        """The member side, rounds 1-5, then :meth:`submit`. Raises ProtocolError (nothing is
        opened) when too few providers contributed, no quorum agrees on the input set, or the
        job's deadline is within ``deadline_margin_s`` of the chain's time."""
        member = job.member
        assert member is not None
        info, cfg = job.info, self.config
        t0 = time.perf_counter()

        def phase(name: str) -> None:
            log.info("job %d: %s at +%.0f ms", info.job_id, name, (time.perf_counter() - t0) * 1e3)

        if not await self.peers.until(job.changed, member.round1_complete,
                                      cfg.collect_timeout_s):
            log.warning("job %d: collection timed out; %d of %d providers answered",
                        info.job_id, len(member.inputs) + len(member.declined),
                        len(member.expected_providers))
        phase(f"round 1 done ({len(member.inputs)} inputs, {len(member.declined)} declined)")
        pairs = member.freeze()  # S is computed from this snapshot, whatever arrives later
        await self.broadcast(job, MessageKind.RECEIVED, ReceivedPayload(
            inputs=[(p, h32(c)) for p, c in pairs]))
        await self.gather(job, lambda: len(member.received), member.agreement_quorum)
        phase(f"round 2 done ({len(member.received)} lists)")
        for other in member.view_differences():
            log.warning("job %d: %s reports other inputs than ours", info.job_id, other)
        agreed = member.agreed_inputs()
        inputs_hash = eip712.inputs_hash(agreed)
        total = member.sum_share(agreed)  # raises when too few providers: nothing is opened
        await self.broadcast(job, MessageKind.AGREE, AgreePayload(inputs_hash=h32(inputs_hash)))
        await self.gather(job, lambda: member.votes_for(inputs_hash), member.agreement_quorum)
        if not member.agreed_by_quorum(inputs_hash):
            raise ProtocolError(f"no quorum of {member.agreement_quorum} members on the input "
                                "set; nothing is opened")
        phase(f"round 3 done ({member.votes_for(inputs_hash)} matching agreements)")
        # Fair exchange: never open when the result could not be finalized any more (a buyer
        # colluding with a member would learn it and still reclaim the escrow).
        chain_now = await asyncio.to_thread(
            lambda: int(self.market.w3.eth.get_block("latest")["timestamp"]))
        if chain_now + cfg.deadline_margin_s >= info.deadline:
            raise ProtocolError(f"too close to the deadline ({info.deadline - chain_now} s "
                                "left); nothing is opened")
        await self.broadcast(job, MessageKind.OPEN, OpenPayload(inputs_hash=h32(inputs_hash),
                                                      sum_shares=[hex(s) for s in total]))
        await self.gather(job, lambda: len(member.matching_opens(inputs_hash)),
                          member.openings_needed)
        phase(f"round 4 done ({len(member.matching_opens(inputs_hash))} openings)")
        aggregates = member.reconstruct(inputs_hash)
        result_hash = eip712.result_hash(aggregates)
        root = job.transcript.seal()  # the kept transcript is exactly the one signed
        job.transcript.save(cfg.state_dir / "transcripts")
        sig = eip712.sign_result_commitment(self.identity.account, self.identity.domain,
                                            info.job_id, result_hash, inputs_hash, root)
        await self.broadcast(job, MessageKind.SIGNATURE, SignaturePayload(
            result_hash=h32(result_hash), inputs_hash=h32(inputs_hash),
            transcript_root=h32(root), sig=SigModel.of(sig)))
        await self.gather(job, lambda: len(member.matching_signatures(result_hash, inputs_hash)),
                          info.threshold + 1)
        phase(f"round 5 done; aggregates opened over {len(agreed)} providers")
        await self.submit(job, aggregates, agreed, result_hash, inputs_hash)

    async def submit(self, job: JobRuntime, aggregates: list[int],
                     agreed: list[tuple[str, bytes]], result_hash: bytes,
                     inputs_hash: bytes) -> None:
        """Finalize the job on chain with t+1 matching result signatures. The first signer
        submits at once, the k-th after k ``submit_backoff_s`` periods and only if the job is
        still Open; a revert (someone was first) is logged, not raised."""
        member = job.member
        assert member is not None
        info, me = job.info, self.identity
        sigs = member.matching_signatures(result_hash, inputs_hash)
        if len(sigs) < info.threshold + 1:
            log.error("job %d: only %d matching signatures", info.job_id, len(sigs))
            return
        signers = [s[0] for s in sigs]
        await asyncio.sleep(signers.index(me.address) * self.config.submit_backoff_s
                            if me.address in signers else 0)
        status = (await asyncio.to_thread(self.market.get_job, info.job_id)).status
        if status is not JobStatus.OPEN:
            return
        inputs = [(p, c, member.inputs[p].sig) for p, c in agreed]
        try:
            async with self.tx_lock:
                tx = await asyncio.to_thread(
                    self.market.finalize_job, me.account, info.job_id, aggregates,
                    list(info.committee), inputs, [(root, sig) for _, root, sig in sigs])
            log.info("job %d finalized by this node: tx %s, gas %d", info.job_id, tx.hash,
                     tx.gas_used)
        except ContractRevert as exc:
            log.warning("job %d: finalize reverted: %s", info.job_id, exc)
