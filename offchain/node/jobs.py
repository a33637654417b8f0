"""The job service: a node's runtime as a data provider and, when drawn, a committee member.

Driven by the node (``offchain.node.main``), which hands it the job events of the chain follower
and the authenticated job messages of its peers. A JobPosted event is kept until the job's
committee is drawn (CommitteeAssigned, after a beacon round); then the node contributes as a
provider (Shamir shares of its local aggregates to each member, or a decline) and, if it is in
the committee, runs the member side of ``offchain.protocol.job.CommitteeJob`` in five rounds
(inputs, received lists, agreement on the input set, opening of the summed shares, result
signatures) and, when it is its turn, submits the result on chain (``finalizeJob``).

Who learns what: a member learns one Shamir share per provider (nothing about a provider's
data below the threshold) and, once a quorum agrees, the opened aggregates; the chain learns the
aggregates, the input commitments and t+1 result signatures. Every message a member sent or
received (sealed envelopes, never plaintext) is kept in its transcript, saved under
``state_dir/transcripts`` and served to auditors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from web3 import Web3

from offchain.chain.market import ContractRevert, MarketClient
from offchain.encoding import eip712
from offchain.encoding.fixedpoint import FixedPointError
from offchain.encoding.query import QueryError, local_aggregates, parse_query
from offchain.node.config import NodeConfig
from offchain.node.datasource import DataSource, DataSourceError
from offchain.node.peers import Identity, Peers
from offchain.protocol.job import CommitteeJob, JobSpec, ProtocolError, deal
from offchain.types import PROVIDER_KINDS, JobStatus, MessageKind
from offchain.wire.envelope import EnvelopeError, Header, ReplayGuard, envelope_digest
from offchain.wire.job_payloads import (
    AgreePayload,
    DeclinePayload,
    OpenPayload,
    PayloadError,
    ReceivedPayload,
    SharePayload,
    SigModel,
    SignaturePayload,
    _Payload,
    decode_payload,
    h32,
)
from offchain.wire.transcript import ROUND_ORDER, Transcript

log = logging.getLogger("mpc.node")
ROLE_PROVIDER_KINDS = PROVIDER_KINDS  # kinds a provider sends (offchain.types.KIND_RULES)
JOB_RETENTION_S = 30.0  # how long a settled job's state is kept in memory


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


class JobService:
    """Provider and committee-member runtime of one node.

    ``identity``: this node; ``peers``: messaging and waiting; ``market``: the market contract
    (job reads, ``finalizeJob``, chain time); ``config``: data sources, timeouts (seconds) and
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
        self.replay = ReplayGuard()
        self.runtimes: dict[int, JobRuntime] = {}
        self.job_seen: dict[int, asyncio.Event] = {}
        # JobPosted events waiting for their committee: job id -> (event, expected providers)
        self.posted: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}

    # -- chain events --------------------------------------------------------------------------
    def on_job_posted(self, ev: dict[str, Any]) -> None:
        """Keep a JobPosted event until its committee is drawn, with the expected providers:
        every node Active in the registry as of the job's block (the follower applies events in
        chain order, so all nodes compute the same set)."""
        self.posted[int(ev["job_id"])] = (ev, self.peers.active_nodes())

    def on_committee_assigned(self, ev: dict[str, Any]) -> None:
        """Start the job of a CommitteeAssigned event (``committee``: its members, any case),
        if its JobPosted event was seen."""
        posted = self.posted.pop(int(ev["job_id"]), None)
        if posted is not None:
            self.on_committee(posted[0], posted[1], ev["committee"])

    def on_job_settled(self, job_id: int) -> None:
        """A JobFinalized or JobRefunded event: keep the runtime ``JOB_RETENTION_S`` longer for
        stragglers, then drop it and its replay records (:meth:`forget_job`)."""
        asyncio.get_running_loop().call_later(JOB_RETENTION_S, self.forget_job, job_id)

    def forget_job(self, job_id: int) -> None:
        """Drop a settled job's in-memory state (its transcript is on disk)."""
        self.runtimes.pop(job_id, None)
        self.posted.pop(job_id, None)
        self.job_seen.pop(job_id, None)
        self.replay.forget_job(job_id)

    def on_committee(self, ev: dict[str, Any], expected: frozenset[str],
                     committee: list[str]) -> None:
        """Start a job once its committee is drawn (``ev`` is its JobPosted event). A job with
        a query that does not parse is logged and ignored."""
        job_id = int(ev["job_id"])
        if job_id in self.runtimes:
            return
        try:
            spec = parse_query(ev["query"])
        except QueryError as exc:
            log.warning("job %d has an invalid query: %s", job_id, exc)
            return
        info = JobSpec(job_id=job_id, dataset_id=bytes(ev["dataset_id"]), query=spec,
                       committee=tuple(Web3.to_checksum_address(a) for a in committee),
                       threshold=int(ev["threshold"]), min_providers=int(ev["min_providers"]),
                       deadline=int(ev["deadline"]))
        me = self.identity.address
        runtime = JobRuntime(info, None, Transcript(job_id, me), expected)
        if me in info.committee:
            runtime.member = CommitteeJob(info, me, expected)
        self.runtimes[job_id] = runtime
        self.job_seen.setdefault(job_id, asyncio.Event()).set()
        log.info("job %d posted: %s", job_id, spec)
        asyncio.get_running_loop().create_task(self.run_job(runtime))

    # -- receiving -----------------------------------------------------------------------------
    async def receive(self, header: Header, plaintext: bytes,
                      raw: bytes | dict[str, Any]) -> tuple[int, str]:
        """Apply one job message whose envelope ``raw`` was authenticated and decrypted (to
        ``plaintext``) and whose sender is registered. Checks, in order: job known (404),
        sender's role (403: a provider kind needs this node in the committee, any other kind a
        sender in the committee), payload schema (400), replay guard (409), the payload's own
        checks such as its EIP-712 signature (400). Returns (HTTP status, reason); only 202
        changes state (and records the envelope in the transcript)."""
        sender = header.sender
        job = await self.wait_job(header.job_id)
        if job is None:
            log.warning("dropped %s from %s: unknown job %d", header.kind, sender, header.job_id)
            return 404, "unknown job"
        in_committee = sender in job.info.committee
        if header.kind in ROLE_PROVIDER_KINDS:
            if job.member is None:
                log.warning("dropped %s from %s: not in job %d's committee", header.kind, sender,
                            header.job_id)
                return 403, "this node is not in the job's committee"
        elif not in_committee or job.member is None:
            log.warning("dropped %s from non-member %s", header.kind, sender)
            return 403, "sender not in the committee"
        try:
            payload = decode_payload(header.kind, plaintext)
            self.replay.accept(header)
        except PayloadError as exc:
            log.warning("dropped %s from %s: %s", header.kind, sender, exc)
            return 400, str(exc)
        except EnvelopeError as exc:
            log.warning("dropped %s from %s: %s", header.kind, sender, exc)
            return 409, str(exc)
        try:
            self.apply(job, header, payload)
        except ProtocolError as exc:
            log.warning("dropped %s from %s: %s", header.kind, sender, exc)
            return 400, str(exc)
        if header.kind in ROUND_ORDER:  # every job kind but the signature over the root
            # open_envelope accepted raw, so its size and nesting are bounded: safe to parse.
            envelope = json.loads(raw) if isinstance(raw, bytes) else raw
            job.transcript.record(header.kind, sender, self.identity.address,
                                  envelope_digest(raw), envelope)
        async with job.changed:
            job.changed.notify_all()
        return 202, "accepted"

    def apply(self, job: JobRuntime, header: Header, payload: Any) -> None:
        """Feed one decoded payload from ``header.sender`` to the member state machine.
        Raises ProtocolError for a share or signature not signed by its sender (or whose
        signature does not recover), and from :class:`CommitteeJob` for a message out of turn,
        a duplicate or malformed content."""
        member = job.member
        assert member is not None
        sender, job_id, domain = header.sender, job.info.job_id, self.identity.domain
        if isinstance(payload, SharePayload):
            commitment = bytes.fromhex(payload.commitment[2:])
            sig = payload.commitment_sig.to_sig()
            try:
                signer = eip712.recover_input_signer(domain, job_id, commitment, sig)
            except ValueError as exc:  # malformed, high-s or unrecoverable signature
                raise ProtocolError(str(exc)) from exc
            if signer != sender:
                raise ProtocolError("input commitment not signed by the sender")
            member.add_input(sender, [int(s, 16) for s in payload.shares], commitment, sig)
        elif isinstance(payload, DeclinePayload):
            log.info("job %d: %s declined: %s", job_id, sender, payload.reason)
            member.add_decline(sender)
        elif isinstance(payload, ReceivedPayload):
            member.add_received(sender, {p: bytes.fromhex(c[2:]) for p, c in payload.inputs})
        elif isinstance(payload, AgreePayload):
            member.add_agreement(sender, bytes.fromhex(payload.inputs_hash[2:]))
        elif isinstance(payload, OpenPayload):
            member.add_open(sender, bytes.fromhex(payload.inputs_hash[2:]),
                            [int(s, 16) for s in payload.sum_shares])
        elif isinstance(payload, SignaturePayload):
            rh, ih, root = (bytes.fromhex(x[2:]) for x in
                            (payload.result_hash, payload.inputs_hash, payload.transcript_root))
            sig = payload.sig.to_sig()
            try:
                signer = eip712.recover_result_signer(domain, job_id, rh, ih, root, sig)
            except ValueError as exc:  # malformed, high-s or unrecoverable signature
                raise ProtocolError(str(exc)) from exc
            if signer != sender:
                raise ProtocolError("result commitment not signed by the sender")
            member.add_signature(sender, rh, ih, root, sig)

    async def wait_job(self, job_id: int, timeout_s: float = 5.0) -> JobRuntime | None:
        """The runtime of ``job_id``, waiting up to ``timeout_s`` seconds (and waking the
        follower) for a job whose committee this node has not seen drawn yet; None if none."""
        if job_id in self.runtimes:
            return self.runtimes[job_id]
        seen = self.job_seen.setdefault(job_id, asyncio.Event())
        self.peers.request_sync()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.wait(), timeout_s)
        if job_id not in self.runtimes:
            self.job_seen.pop(job_id, None)  # a bogus job id leaves nothing behind
        return self.runtimes.get(job_id)

    def transcript_file(self, job_id: int) -> bytes | None:
        """The saved transcript of ``job_id`` (JSON bytes), served at
        ``GET /v1/transcripts/{job_id}``; None if this node has none (or it is mid-write)."""
        path = self.config.state_dir / "transcripts" / f"job-{job_id}.json"
        try:
            data = path.read_bytes()
            json.loads(data)
        except (OSError, ValueError):
            return None
        return data

    # -- sending -------------------------------------------------------------------------------
    async def send(self, job: JobRuntime, kind: str, recipient: str, payload: _Payload) -> None:
        """Send one job message (see :meth:`Peers.send`); a round message is recorded in the
        job's transcript first (every node keeps what it sent and received)."""
        def record(envelope: dict[str, Any]) -> None:
            job.transcript.record(kind, self.identity.address, recipient,
                                  envelope_digest(envelope), envelope)
        await self.peers.send(job.info.job_id, kind, recipient, payload,
                              record=record if kind in ROUND_ORDER else None)

    async def broadcast(self, job: JobRuntime, kind: str, payload: _Payload) -> None:
        """Send the same payload to every committee member (this node included, if one)."""
        await asyncio.gather(*(self.send(job, kind, m, payload) for m in job.info.committee))

    async def gather(self, job: JobRuntime, count: Callable[[], int], need: int) -> int:
        """Wait for a round's messages of ``job``: ``need`` within the round timeout, then
        ``straggler_grace_s`` for the rest of the committee (:meth:`Peers.gather`)."""
        return await self.peers.gather(job.changed, count, need, len(job.info.committee),
                                       grace_s=self.config.straggler_grace_s)

    # -- the protocol --------------------------------------------------------------------------
    async def run_job(self, job: JobRuntime) -> None:
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
