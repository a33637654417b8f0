"""A node process: provider and (when chosen) committee member, driven by chain events.

One asyncio loop runs four things: the peer HTTP server (``offchain.node.transport``), the chain
follower (``offchain.node.follower``: registry directory and market events, woken by new blocks),
the
randomness beacon (``offchain.node.beacon``: a round per RoundOpened event), and one task per
job. A JobPosted event joins a beacon round; once the round is final the job's committee is drawn
on chain (CommitteeAssigned). Then the node contributes as a provider (or declines) and, if it is
in the committee, runs the member side of the protocol (``offchain.protocol.job``) and finally
signs and, when it is its turn, submits the result on chain.

Message acceptance, in this order (anything failing is dropped and logged, and changes nothing):
envelope schema, addressee/chain/contract, sender's ECDSA signature (before decryption), AEAD
decryption, sender registered on chain (the registry is the PKI), job known, sender's role in the
job (a provider must have been Active when the job was posted), replay guard, payload schema, and
for ``share``/``signature`` the embedded EIP-712 signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from offchain.chain.artifacts import market_abi
from offchain.chain.market import ContractRevert, MarketClient
from offchain.encoding import eip712
from offchain.encoding.fixedpoint import FixedPointError
from offchain.encoding.query import QueryError, local_aggregates, parse_query
from offchain.node.beacon import BeaconService
from offchain.node.config import NodeConfig
from offchain.node.datasource import DataSource, DataSourceError
from offchain.node.follower import ChainFollower
from offchain.node.transport import DeliveryError, PeerClient, make_app, serve
from offchain.protocol.job import CommitteeJob, JobInfo, ProtocolError, deal
from offchain.wire.envelope import (
    EnvelopeError,
    Header,
    ReplayGuard,
    envelope_digest,
    open_envelope,
    seal,
)
from offchain.wire.job_payloads import (
    AgreePayload,
    DeclinePayload,
    OpenPayload,
    PayloadError,
    ReceivedPayload,
    SharePayload,
    SigModel,
    SignaturePayload,
    decode_payload,
    encode_payload,
    h32,
)
from offchain.wire.keys import NodeKeys
from offchain.wire.transcript import ROUND_ORDER, Transcript

log = logging.getLogger("mpc.node")
ROLE_PROVIDER_KINDS = ("share", "decline")
JOB_RETENTION_S = 30.0  # how long a settled job's state is kept in memory


@dataclass
class JobRuntime:
    info: JobInfo
    member: CommitteeJob | None
    transcript: Transcript
    expected: frozenset[str] = frozenset()  # providers: Active nodes when the job was posted
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class NodeStartError(RuntimeError):
    """The node cannot start as configured (the message says why)."""


class Node:
    """A running node. Use :func:`run_node` to start one from a config."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.keys = NodeKeys.load(config.keys_file)
        self.account: LocalAccount = self.keys.eth
        self.address: str = self.account.address
        self.w3 = Web3(Web3.HTTPProvider(config.rpc_url, request_kwargs={"timeout": 10}))
        abi = market_abi()
        self.market = MarketClient(self.w3, Web3.to_checksum_address(config.market), abi)
        self.chain_id = self.w3.eth.chain_id
        self.domain = eip712.market_domain(self.chain_id, self.market.address)
        self.sources: dict[bytes, tuple[str, DataSource]] = {
            eip712.dataset_id(name): (name, src) for name, src in config.sources().items()
        }
        self.replay = ReplayGuard()
        self.jobs: dict[int, JobRuntime] = {}
        self.job_seen: dict[int, asyncio.Event] = {}
        # JobPosted events waiting for their committee: job id -> (event, expected providers)
        self.posted: dict[int, tuple[dict[str, Any], frozenset[str]]] = {}
        self.beacon = BeaconService(self)
        self.beacon.fault = config.beacon_fault
        self.follower = ChainFollower(self.w3, self.market, rpc_url=config.rpc_url,
                                      ws_url=config.ws_url,
                                      poll_interval_s=config.poll_interval_s,
                                      on_job=self.on_job_event, on_beacon=self.beacon.on_event,
                                      on_block=self.beacon.on_block)
        self.client = PeerClient()
        self.endpoint = ""
        self.tx_lock = asyncio.Lock()
        self.deliveries: set[asyncio.Task[None]] = set()  # in-flight background deliveries

    # -- chain helpers -------------------------------------------------------------------------
    async def ensure_registered(self) -> None:
        """Register (if configured) or check the registration: the registered encryption key
        must be ours, and a changed endpoint (a restart on another port) is updated on chain."""
        node = await asyncio.to_thread(self.market.get_node, self.address)
        if node.status != 0:
            if node.enc_key != self.keys.enc_public_key:
                raise NodeStartError(f"{self.address} is registered with another encryption "
                                     "key than the one in keys_file")
            if node.endpoint != self.endpoint:
                tx = await asyncio.to_thread(self.market.update_endpoint, self.account,
                                             self.endpoint)
                log.info("endpoint updated to %s (tx %s)", self.endpoint, tx.hash)
            return
        stake = self.config.register_stake_wei
        if stake is None:
            raise NodeStartError(f"{self.address} is not registered and the config sets no "
                                 "register_stake_wei")
        try:
            tx = await asyncio.to_thread(self.market.register, self.account,
                                         self.keys.enc_public_key, self.endpoint, stake)
        except Exception as exc:  # revert (e.g. StakeTooLow), insufficient funds, RPC error
            raise NodeStartError(f"registering {self.address} failed: {exc}") from exc
        log.info("registered (tx %s, gas %d)", tx.hash, tx.gas_used)

    # -- sending -------------------------------------------------------------------------------
    async def send(self, job: JobRuntime, kind: str, recipient: str, payload: Any) -> None:
        """Seal ``payload`` for ``recipient`` and record it in the job's transcript; deliver it to
        ourselves at once and to a peer in a background task (with retries until the round
        timeout), so a dead or slow peer never holds up the protocol."""
        peer = await self.follower.peer(recipient)
        if peer is None:
            log.warning("recipient %s not registered; not sending %s", recipient, kind)
            return
        header = Header(chain_id=self.chain_id, contract=self.market.address,
                        job_id=job.info.job_id, kind=kind, sender=self.address,
                        recipient=recipient)
        envelope = seal(header, encode_payload(payload), self.account, peer.enc_key)
        if kind in ROUND_ORDER:  # every node keeps what it sent and received
            job.transcript.record(kind, self.address, recipient, envelope_digest(envelope),
                                  envelope)
        if recipient == self.address:
            status, reason = await self.receive(envelope)
            if status != 202:
                log.error("self-delivery of %s failed: %s", kind, reason)
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(kind, recipient, peer.endpoint, envelope))
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)

    async def _deliver(self, kind: str, recipient: str, endpoint: str,
                       envelope: dict[str, Any]) -> None:
        try:
            status = await self.client.send(endpoint, envelope,
                                            deadline_s=self.config.round_timeout_s)
            if status != 202:
                log.warning("%s to %s answered HTTP %d", kind, recipient, status)
        except DeliveryError as exc:
            log.warning("%s to %s not delivered: %s", kind, recipient, exc)

    async def broadcast(self, job: JobRuntime, kind: str, payload: Any) -> None:
        await asyncio.gather(*(self.send(job, kind, m, payload) for m in job.info.committee))

    # -- receiving -----------------------------------------------------------------------------
    async def receive(self, raw: bytes | dict[str, Any]) -> tuple[int, str]:
        """Authenticate, validate and apply one envelope (raw request body, or the sealed dict
        for a message to self); returns (HTTP status, reason)."""
        try:
            header, plaintext = open_envelope(raw, recipient=self.address,
                                              recipient_key=self.keys.x25519,
                                              chain_id=self.chain_id, contract=self.market.address)
        except EnvelopeError as exc:
            log.warning("dropped envelope: %s", exc)
            return 400, f"rejected: {exc}"
        sender = header.sender
        if await self.follower.peer(sender) is None:
            log.warning("dropped %s from unregistered %s", header.kind, sender)
            return 403, "sender not registered"
        if header.kind.startswith("beacon_"):
            return await self.beacon.receive(header, plaintext)
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
        except (ProtocolError, ValueError) as exc:
            log.warning("dropped %s from %s: %s", header.kind, sender, exc)
            return 400, str(exc)
        if header.kind != "signature":
            # open_envelope accepted raw, so its size and nesting are bounded: safe to parse.
            envelope = json.loads(raw) if isinstance(raw, bytes) else raw
            job.transcript.record(header.kind, sender, self.address, envelope_digest(raw),
                                  envelope)
        async with job.changed:
            job.changed.notify_all()
        return 202, "accepted"

    def apply(self, job: JobRuntime, header: Header, payload: Any) -> None:
        member = job.member
        assert member is not None
        sender, job_id = header.sender, job.info.job_id
        if isinstance(payload, SharePayload):
            commitment = bytes.fromhex(payload.commitment[2:])
            sig = payload.commitment_sig.to_sig()
            signer = eip712.recover_input_signer(self.domain, job_id, commitment, sig)
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
            if eip712.recover_result_signer(self.domain, job_id, rh, ih, root, sig) != sender:
                raise ProtocolError("result commitment not signed by the sender")
            member.add_signature(sender, rh, ih, root, sig)

    async def wait_job(self, job_id: int, timeout_s: float = 5.0) -> JobRuntime | None:
        if job_id in self.jobs:
            return self.jobs[job_id]
        seen = self.job_seen.setdefault(job_id, asyncio.Event())
        self.follower.poke.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(seen.wait(), timeout_s)
        if job_id not in self.jobs:
            self.job_seen.pop(job_id, None)  # a bogus job id leaves nothing behind
        return self.jobs.get(job_id)

    # -- chain watcher -------------------------------------------------------------------------
    def on_job_event(self, ev: dict[str, Any]) -> None:
        if ev["event"] == "JobPosted":
            # Expected providers: every node Active in the registry as of the job's block (the
            # follower applies events in chain order, so all nodes compute the same set).
            job_id = int(ev["job_id"])
            self.posted[job_id] = (ev, self.follower.active_nodes())
            self.beacon.on_job_posted(job_id, int(ev["seed_round"]))
        elif ev["event"] == "CommitteeAssigned":
            job_id = int(ev["job_id"])
            self.beacon.on_committee_assigned(job_id)
            posted = self.posted.pop(job_id, None)
            if posted is not None:
                self.on_committee(posted[0], posted[1], ev["committee"])
        elif ev["event"] in ("JobFinalized", "JobRefunded"):
            # Settled on chain: keep the runtime a little longer for stragglers, then drop it
            # and its replay records so a long-running node does not grow without bound.
            asyncio.get_running_loop().call_later(JOB_RETENTION_S, self.forget_job,
                                                  int(ev["job_id"]))

    def forget_job(self, job_id: int) -> None:
        """Drop a settled job's in-memory state (its transcript is on disk)."""
        self.jobs.pop(job_id, None)
        self.posted.pop(job_id, None)
        self.job_seen.pop(job_id, None)
        self.replay.forget_job(job_id)

    def on_committee(self, ev: dict[str, Any], expected: frozenset[str],
                     committee: list[str]) -> None:
        """Start a job once its committee is drawn (``ev`` is its JobPosted event)."""
        job_id = int(ev["job_id"])
        if job_id in self.jobs:
            return
        try:
            spec = parse_query(ev["query"])
        except QueryError as exc:
            log.warning("job %d has an invalid query: %s", job_id, exc)
            return
        info = JobInfo(job_id=job_id, dataset_id=bytes(ev["dataset_id"]), query=spec,
                       committee=tuple(Web3.to_checksum_address(a) for a in committee),
                       threshold=int(ev["threshold"]), min_providers=int(ev["min_providers"]),
                       deadline=int(ev["deadline"]))
        runtime = JobRuntime(info, None, Transcript(job_id, self.address), expected)
        if self.address in info.committee:
            runtime.member = CommitteeJob(info, self.address, expected)
        self.jobs[job_id] = runtime
        self.job_seen.setdefault(job_id, asyncio.Event()).set()
        log.info("job %d posted: %s", job_id, spec)
        asyncio.get_running_loop().create_task(self.run_job(runtime))

    # -- the protocol --------------------------------------------------------------------------
    async def run_job(self, job: JobRuntime) -> None:
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

    async def provide(self, job: JobRuntime) -> None:
        info = job.info
        t0 = time.perf_counter()
        if self.address not in job.expected:  # e.g. Exiting, or registered after the job
            log.info("job %d: not an expected provider (not Active when it was posted)",
                     info.job_id)
            return
        held = self.sources.get(info.dataset_id)
        if held is None:
            await self.broadcast(job, "decline", DeclinePayload(reason="dataset not held"))
            return
        try:
            rows = await asyncio.to_thread(held[1].read_columns, info.query.columns)
            aggregates = local_aggregates(info.query, rows)
        except (DataSourceError, FixedPointError) as exc:
            log.warning("job %d: cannot contribute: %s", info.job_id, exc)
            await self.broadcast(job, "decline", DeclinePayload(reason="query does not fit data"))
            return
        log.info("job %d: local aggregates computed at +%.0f ms", info.job_id,
                 (time.perf_counter() - t0) * 1e3)
        contribution = deal(info, self.address, aggregates)
        sig = eip712.sign_input_commitment(self.account, self.domain, info.job_id,
                                           contribution.commitment)
        await asyncio.gather(*(
            self.send(job, "share", member, SharePayload(
                shares=[hex(s) for s in contribution.shares[i]],
                commitment=h32(contribution.commitment),
                commitment_sig=SigModel.of(sig)))
            for i, member in enumerate(info.committee)))
        log.info("job %d: shares of %d local rows dealt in %.0f ms", info.job_id, len(rows),
                 (time.perf_counter() - t0) * 1e3)

    async def until(self, job: JobRuntime, predicate: Any, timeout_s: float) -> bool:
        async with job.changed:
            try:
                await asyncio.wait_for(job.changed.wait_for(predicate), timeout_s)
                return True
            except TimeoutError:
                return bool(predicate())

    async def gather(self, job: JobRuntime, count: Callable[[], int], need: int) -> int:
        """Wait until ``count()`` reaches ``need`` (what the round requires, up to the round
        timeout), then at most ``straggler_grace_s`` more for the rest of the committee; a dead
        member costs one grace period per round, not a timeout. Returns the final count."""
        n = len(job.info.committee)
        await self.until(job, lambda: count() >= need, self.config.round_timeout_s)
        if count() >= need:
            await self.until(job, lambda: count() >= n, self.config.straggler_grace_s)
        return count()

    async def serve_committee(self, job: JobRuntime) -> None:
        member = job.member
        assert member is not None
        info = job.info
        t0 = time.perf_counter()

        def phase(name: str) -> None:
            log.info("job %d: %s at +%.0f ms", info.job_id, name, (time.perf_counter() - t0) * 1e3)

        if not await self.until(job, member.round1_complete, self.config.collect_timeout_s):
            log.warning("job %d: collection timed out; %d of %d providers answered",
                        info.job_id, len(member.inputs) + len(member.declined),
                        len(member.expected_providers))
        phase(f"round 1 done ({len(member.inputs)} inputs, {len(member.declined)} declined)")
        pairs = member.freeze()  # S is computed from this snapshot, whatever arrives later
        await self.broadcast(job, "received", ReceivedPayload(
            inputs=[(p, h32(c)) for p, c in pairs]))
        await self.gather(job, lambda: len(member.received), member.agreement_quorum)
        phase(f"round 2 done ({len(member.received)} lists)")
        for other in member.view_differences():
            log.warning("job %d: %s reports other inputs than ours", info.job_id, other)
        agreed = member.agreed_inputs()
        inputs_hash = eip712.inputs_hash(agreed)
        total = member.sum_share(agreed)  # raises when too few providers: nothing is opened
        await self.broadcast(job, "agree", AgreePayload(inputs_hash=h32(inputs_hash)))
        await self.gather(job, lambda: member.votes_for(inputs_hash), member.agreement_quorum)
        if not member.agreed_by_quorum(inputs_hash):
            raise ProtocolError(f"no quorum of {member.agreement_quorum} members on the input "
                                "set; nothing is opened")
        phase(f"round 3 done ({member.votes_for(inputs_hash)} matching agreements)")
        # Fair exchange: never open when the result could not be finalized any more (a buyer
        # colluding with a member would learn it and still reclaim the escrow).
        chain_now = await asyncio.to_thread(
            lambda: int(self.w3.eth.get_block("latest")["timestamp"]))
        if chain_now + self.config.deadline_margin_s >= info.deadline:
            raise ProtocolError(f"too close to the deadline ({info.deadline - chain_now} s "
                                "left); nothing is opened")
        await self.broadcast(job, "open", OpenPayload(inputs_hash=h32(inputs_hash),
                                                      sum_shares=[hex(s) for s in total]))
        await self.gather(job, lambda: len(member.matching_opens(inputs_hash)),
                          member.openings_needed)
        phase(f"round 4 done ({len(member.matching_opens(inputs_hash))} openings)")
        aggregates = member.reconstruct(inputs_hash)
        result_hash = eip712.result_hash(aggregates)
        root = job.transcript.seal()  # the kept transcript is exactly the one signed
        job.transcript.save(self.config.state_dir / "transcripts")
        sig = eip712.sign_result_commitment(self.account, self.domain, info.job_id, result_hash,
                                            inputs_hash, root)
        await self.broadcast(job, "signature", SignaturePayload(
            result_hash=h32(result_hash), inputs_hash=h32(inputs_hash),
            transcript_root=h32(root), sig=SigModel.of(sig)))
        await self.gather(job, lambda: len(member.matching_signatures(result_hash, inputs_hash)),
                          info.threshold + 1)
        phase(f"round 5 done; aggregates opened over {len(agreed)} providers")
        await self.submit(job, aggregates, agreed, result_hash, inputs_hash)

    async def submit(self, job: JobRuntime, aggregates: list[int],
                     agreed: list[tuple[str, bytes]], result_hash: bytes,
                     inputs_hash: bytes) -> None:
        member = job.member
        assert member is not None
        info = job.info
        sigs = member.matching_signatures(result_hash, inputs_hash)
        if len(sigs) < info.threshold + 1:
            log.error("job %d: only %d matching signatures", info.job_id, len(sigs))
            return
        signers = [s[0] for s in sigs]
        # The first signer submits at once; the k-th waits k backoff periods and submits only
        # if nobody has finalized by then.
        await asyncio.sleep(signers.index(self.address) * self.config.submit_backoff_s
                            if self.address in signers else 0)
        status = (await asyncio.to_thread(self.market.get_job, info.job_id)).status
        if status != 1:
            return
        inputs = [(p, c, member.inputs[p].sig) for p, c in agreed]
        try:
            async with self.tx_lock:
                tx = await asyncio.to_thread(
                    self.market.finalize_job, self.account, info.job_id, aggregates,
                    list(info.committee), inputs, [(root, sig) for _, root, sig in sigs])
            log.info("job %d finalized by this node: tx %s, gas %d", info.job_id, tx.hash,
                     tx.gas_used)
        except ContractRevert as exc:
            log.warning("job %d: finalize reverted: %s", info.job_id, exc)


async def run_node(config: NodeConfig, *, exit_with_parent: bool = False) -> None:
    """Start the node: bind, register if configured, print a ready line, serve until stopped."""
    node = Node(config)
    app = make_app(node.receive, lambda: {"address": node.address, "jobs": len(node.jobs)},
                   node.transcript_file)
    server, port = await serve(app, config.host, config.port)
    node.endpoint = config.public_endpoint or f"http://{config.host}:{port}"
    start_block = await asyncio.to_thread(lambda: node.w3.eth.block_number)
    await asyncio.to_thread(node.follower.load_directory)
    await node.client.health(node.endpoint)  # warm up the HTTP stack before the first job
    await node.ensure_registered()
    watcher = asyncio.get_running_loop().create_task(node.follower.watch(start_block + 1))
    print(json.dumps({"event": "ready", "address": node.address, "endpoint": node.endpoint,
                      "pid": os.getpid()}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if exit_with_parent:
        # A daemon thread, not the loop's executor: asyncio.run() joins executor threads at
        # shutdown, and this one blocks on stdin until the parent goes away.
        threading.Thread(target=_exit_on_stdin_eof, args=(loop, stop), daemon=True).start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    watcher.cancel()
    server.should_exit = True
    await node.client.aclose()


def _exit_on_stdin_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.read()
    loop.call_soon_threadsafe(stop.set)
