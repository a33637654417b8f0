"""A node process: provider and (when chosen) committee member, driven by chain events.

One asyncio loop runs: the peer HTTP server (``offchain.node.transport``), the chain follower
(``offchain.node.follower``: registry directory and market events, woken by new blocks), the
randomness beacon (``offchain.node.beacon``: a round per RoundOpened event) and the job service
(``offchain.node.jobs``: one task per job). A JobPosted event joins a beacon round; once the
round is final the job's committee is drawn on chain (CommitteeAssigned). Then the node
contributes as a provider (or declines) and, if it is in the committee, runs the member side of
the protocol (``offchain.protocol.job``) and finally signs and, when it is its turn, submits the
result on chain. Both services send through one :class:`~offchain.node.peers.Peers`.

Message acceptance, in this order (anything failing is dropped and logged, and changes nothing):
envelope schema, addressee/chain/contract, sender's ECDSA signature (before decryption), AEAD
decryption, sender registered on chain (the registry is the PKI); then for a ``beacon_*`` kind
the beacon service's checks (:meth:`BeaconService.receive`), and otherwise job known, sender's
role in the job (a provider must have been Active when the job was posted), replay guard,
payload schema, and for ``share``/``signature`` the embedded EIP-712 signature
(:meth:`JobService.receive`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from offchain.chain.artifacts import market_abi
from offchain.chain.beacon import BeaconClient
from offchain.chain.market import MarketClient
from offchain.encoding import eip712
from offchain.errors import MarketError
from offchain.node.beacon import BeaconChain, BeaconService
from offchain.node.config import NodeConfig
from offchain.node.follower import ChainFollower
from offchain.node.jobs import JobService
from offchain.node.peers import Peers
from offchain.node.transport import PeerClient, make_app, serve
from offchain.types import NodeStatus
from offchain.wire.envelope import EnvelopeError, open_envelope
from offchain.wire.keys import NodeKeys

log = logging.getLogger("mpc.node")


class NodeStartError(MarketError, RuntimeError):
    """The node cannot start as configured (the message says why)."""


@dataclass(frozen=True)
class NodeIdentity:
    """This node as its peers and the chain see it (satisfies
    :class:`offchain.node.peers.Identity`): checksummed ``address`` of ``account`` (secret
    key), ``chain_id``, checksummed market ``contract`` and its EIP-712 ``domain``."""

    address: str
    account: LocalAccount
    chain_id: int
    contract: str
    domain: dict[str, Any]


class Node:
    """A running node: the wiring of its parts. Use :func:`run_node` to start one."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.keys = NodeKeys.load(config.keys_file)
        self.w3 = Web3(Web3.HTTPProvider(config.rpc_url, request_kwargs={"timeout": 10}))
        abi = market_abi()
        self.market = MarketClient(self.w3, Web3.to_checksum_address(config.market), abi)
        chain_id = self.w3.eth.chain_id
        self.identity = NodeIdentity(self.keys.eth.address, self.keys.eth, chain_id,
                                     self.market.address,
                                     eip712.market_domain(chain_id, self.market.address))
        self.address = self.identity.address
        self.follower = ChainFollower(self.w3, self.market, rpc_url=config.rpc_url,
                                      ws_url=config.ws_url,
                                      poll_interval_s=config.poll_interval_s,
                                      on_job=self.on_job_event, on_beacon=self.on_beacon_event,
                                      on_block=self.on_block)
        self.client = PeerClient()
        self.peers = Peers(self.identity, self.follower, self.client, self.receive,
                           deadline_s=config.round_timeout_s)
        tx_lock = asyncio.Lock()  # one nonce sequence for both services
        self.jobs = JobService(self.identity, self.peers, self.market, config, tx_lock=tx_lock)
        chain = BeaconChain(BeaconClient(self.market), self.identity.account, tx_lock)
        self.beacon = BeaconService(self.identity, self.peers, chain, config)
        self.endpoint = ""

    # -- dispatch ------------------------------------------------------------------------------
    async def receive(self, raw: bytes | dict[str, Any]) -> tuple[int, str]:
        """Authenticate one envelope (raw request body, or the sealed dict of a message to
        self), check its sender is registered, and hand it to the beacon or the job service.
        Returns (HTTP status, reason): 400 for an envelope that does not open, 403 for an
        unregistered sender, otherwise the service's answer."""
        try:
            header, plaintext = open_envelope(raw, recipient=self.address,
                                              recipient_key=self.keys.x25519,
                                              chain_id=self.identity.chain_id,
                                              contract=self.identity.contract)
        except EnvelopeError as exc:
            log.warning("dropped envelope: %s", exc)
            return 400, f"rejected: {exc}"
        if not await self.peers.is_registered(header.sender):
            log.warning("dropped %s from unregistered %s", header.kind, header.sender)
            return 403, "sender not registered"
        if header.kind.startswith("beacon_"):
            return await self.beacon.receive(header, plaintext)
        return await self.jobs.receive(header, plaintext, raw)

    def on_job_event(self, ev: dict[str, Any]) -> None:
        """A job event from the follower, for the job service and the beacon's waiting jobs."""
        name = ev["event"]
        if name == "JobPosted":
            self.jobs.on_job_posted(ev)
            self.beacon.on_job_posted(int(ev["job_id"]), int(ev["seed_round"]))
        elif name == "CommitteeAssigned":
            self.beacon.on_committee_assigned(int(ev["job_id"]))
            self.jobs.on_committee_assigned(ev)
        elif name in ("JobFinalized", "JobRefunded"):
            self.jobs.on_job_settled(int(ev["job_id"]))

    def on_beacon_event(self, ev: dict[str, Any]) -> None:
        """A beacon event from the follower (see :meth:`BeaconService.on_event`)."""
        self.beacon.on_event(ev)

    def on_block(self, number: int) -> None:
        """The follower synced up to block ``number``."""
        self.beacon.on_block(number)

    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: this node's address and the number of jobs in memory."""
        return {"address": self.address, "jobs": len(self.jobs.runtimes)}

    # -- start-up ------------------------------------------------------------------------------
    async def ensure_registered(self) -> None:
        """Register (if configured) or check the registration: the registered encryption key
        must be ours, and a changed endpoint (a restart on another port) is updated on chain.
        Raises NodeStartError for another key on chain, no registration and no
        ``register_stake_wei``, or a failed registration."""
        account = self.identity.account
        node = await asyncio.to_thread(self.market.get_node, self.address)
        if node.status is not NodeStatus.NONE:
            if node.enc_key != self.keys.enc_public_key:
                raise NodeStartError(f"{self.address} is registered with another encryption "
                                     "key than the one in keys_file")
            if node.endpoint != self.endpoint:
                tx = await asyncio.to_thread(self.market.update_endpoint, account, self.endpoint)
                log.info("endpoint updated to %s (tx %s)", self.endpoint, tx.hash)
            return
        stake = self.config.register_stake_wei
        if stake is None:
            raise NodeStartError(f"{self.address} is not registered and the config sets no "
                                 "register_stake_wei")
        try:
            tx = await asyncio.to_thread(self.market.register, account,
                                         self.keys.enc_public_key, self.endpoint, stake)
        except Exception as exc:  # revert (e.g. RegistryStakeTooLow), no funds, RPC error
            raise NodeStartError(f"registering {self.address} failed: {exc}") from exc
        log.info("registered (tx %s, gas %d)", tx.hash, tx.gas_used)


async def run_node(config: NodeConfig, *, exit_with_parent: bool = False) -> None:
    """Start the node: bind, register if configured, print a ready line, serve until stopped.
    Raises NodeStartError (see :meth:`Node.ensure_registered`)."""
    node = Node(config)
    app = make_app(node.receive, node.health, node.jobs.transcript_file)
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
