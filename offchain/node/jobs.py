"""The job service: a node's jobs from chain event to settled, and the job messages it receives.

Driven by the node (``offchain.node.main``), which hands it the job events of the chain follower
and the authenticated job messages of its peers. A JobPosted event is kept until the job's
committee is drawn (CommitteeAssigned, after a beacon round); then a task of
:class:`offchain.node.job_runner.JobRunner` contributes as a provider (Shamir shares of the
local aggregates to each member, or a decline) and, if this node is in the committee, runs the
member side of ``offchain.protocol.job.CommitteeJob`` in five rounds (inputs, received lists,
agreement on the input set, opening of the summed shares, result signatures) and, when it is
its turn, submits the result on chain (``finalizeJob``). Received messages are checked here
(role, schema, replay, signatures) and fed to the member state machine.

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
from typing import Any

from web3 import Web3

from offchain.chain.market import MarketClient
from offchain.encoding import eip712
from offchain.encoding.query import QueryError, parse_query
from offchain.node.config import NodeConfig
from offchain.node.job_runner import JobRunner, JobRuntime
from offchain.node.peers import Identity, Peers
from offchain.protocol.job import CommitteeJob, JobSpec, ProtocolError
from offchain.types import PROVIDER_KINDS
from offchain.wire.envelope import EnvelopeError, Header, ReplayGuard, envelope_digest
from offchain.wire.job_payloads import (
    AgreePayload,
    DeclinePayload,
    OpenPayload,
    PayloadError,
    ReceivedPayload,
    SharePayload,
    SignaturePayload,
    decode_payload,
)
from offchain.wire.transcript import ROUND_ORDER, Transcript

log = logging.getLogger("mpc.node")
ROLE_PROVIDER_KINDS = PROVIDER_KINDS  # kinds a provider sends (offchain.types.KIND_RULES)
JOB_RETENTION_S = 30.0  # how long a settled job's state is kept in memory


class JobService:
    """The jobs of one node: chain events, received job messages, saved transcripts.

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
        self.runner = JobRunner(identity, peers, market, config, tx_lock=tx_lock)
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
        asyncio.get_running_loop().create_task(self.runner.run(runtime))

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
