"""Messaging the other nodes: seal, send, deliver in the background, and wait for answers.

One :class:`Peers` per node, shared by the job service (``offchain.node.jobs``) and the beacon
service (``offchain.node.beacon``). A peer is known only as the on-chain registry states it
(the registry is the PKI): its X25519 encryption key and HTTP endpoint come from the
:class:`Directory` (the chain follower). A message is sealed with
:func:`offchain.wire.envelope.seal` (ECDSA-signed by this node's account, encrypted to the
recipient's key), so only the recipient learns the payload; the header (chain, contract,
job or round id, kind, sender, recipient) is public to anyone who sees the envelope.

Delivery to a peer runs in a background task that retries until ``deadline_s`` (the round
timeout), so a dead or slow peer never holds up the protocol; a message to this node itself is
handed straight to the node's own receive path (``local``), as if it had arrived over HTTP.

:meth:`Peers.until` and :meth:`Peers.gather` are the services' one way to wait for a round's
messages: on an ``asyncio.Condition`` that the receive path notifies after every accepted
message (and the beacon service after every chain event and new block).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount

from offchain.node.follower import PeerInfo
from offchain.node.transport import DeliveryError, PeerClient
from offchain.wire.envelope import Envelope, Header, seal
from offchain.wire.job_payloads import Payload, encode_payload

log = logging.getLogger("mpc.peers")

#: local(envelope) -> (HTTP status, reason): the node's own receive path, for messages to self.
LocalHandler = Callable[[Envelope], Awaitable[tuple[int, str]]]


class Identity(Protocol):
    """Who this node is, as its peers and the chain see it (read-only).

    ``address``: the EIP-55 checksummed address of ``account``, the node's registry key;
    ``account``: the key that signs envelopes, EIP-712 messages and transactions (secret: never
    leaves the process); ``chain_id`` and ``contract`` (checksummed market address): what every
    envelope header names; ``domain``: the market's EIP-712 domain
    (:func:`offchain.encoding.eip712.market_domain` of ``chain_id`` and ``contract``).
    """

    @property
    def address(self) -> str:
        """This node's checksummed address (its registry entry)."""
        ...

    @property
    def account(self) -> LocalAccount:
        """The signing key of ``address`` (secret)."""
        ...

    @property
    def chain_id(self) -> int:
        """The chain's EIP-155 id."""
        ...

    @property
    def contract(self) -> str:
        """The market contract's checksummed address."""
        ...

    @property
    def domain(self) -> dict[str, Any]:
        """The market's EIP-712 domain."""
        ...


class Directory(Protocol):
    """The registry as this node follows it (:class:`offchain.node.follower.ChainFollower`)."""

    poke: asyncio.Event

    async def peer(self, address: str) -> PeerInfo | None:
        """Registry entry of ``address`` (key, endpoint, Active flag), None if unregistered."""
        ...

    def active_nodes(self) -> frozenset[str]:
        """Checksummed addresses Active in the registry as of the last processed event."""
        ...


class Peers:
    """Seal-and-send to registered peers, background delivery, and waiting on a condition.

    ``identity``: this node; ``directory``: peer keys, endpoints and the Active set (from chain
    events); ``client``: the HTTP client that POSTs envelopes; ``local``: this node's receive
    path, called for a message addressed to itself; ``deadline_s``: how long (seconds) a
    delivery to a peer is retried (the round timeout) and the default wait of :meth:`gather`.
    """

    def __init__(self, identity: Identity, directory: Directory, client: PeerClient,
                 local: LocalHandler, *, deadline_s: float) -> None:
        self.identity = identity
        self.directory = directory
        self.client = client
        self.local = local
        self.deadline_s = deadline_s
        self.deliveries: set[asyncio.Task[None]] = set()  # in-flight background deliveries

    # -- the registry --------------------------------------------------------------------------
    def active_nodes(self) -> frozenset[str]:
        """Nodes Active in the registry as of the last chain event processed (checksummed).
        Every node computes the same set at the same event, since events apply in chain
        order."""
        return self.directory.active_nodes()

    async def is_registered(self, address: str) -> bool:
        """Whether ``address`` is registered on chain (Active or Exiting); may read the chain
        once for an address registered in a block not processed yet."""
        return await self.directory.peer(address) is not None

    def request_sync(self) -> None:
        """Wake the chain follower now (a peer mentioned a job or round not seen yet)."""
        self.directory.poke.set()

    # -- sending -------------------------------------------------------------------------------
    async def send(self, job_id: int, kind: str, recipient: str, payload: Payload, *,
                   record: Callable[[Envelope], None] | None = None) -> None:
        """Seal ``payload`` as message ``kind`` of job (or beacon round) ``job_id`` for
        ``recipient`` and deliver it.

        ``record``, if given, gets the sealed envelope before it is delivered (the job service
        keeps it in the job's transcript). To this node itself the envelope goes through
        ``local`` at once (a refusal is logged as an error); to a peer, through a background
        task retrying until ``deadline_s`` (failures and non-202 answers are logged, never
        raised). An unregistered recipient gets nothing (logged). Raises ``ValueError`` from
        :func:`~offchain.wire.envelope.seal` for a payload too large or a bad registry key.
        """
        me = self.identity
        peer = await self.directory.peer(recipient)
        if peer is None:
            log.warning("#%d: recipient %s not registered; %s not sent", job_id, recipient, kind)
            return
        header = Header(chain_id=me.chain_id, contract=me.contract, job_id=job_id, kind=kind,
                        sender=me.address, recipient=recipient)
        envelope = seal(header, encode_payload(payload), me.account, peer.enc_key)
        if record is not None:
            record(envelope)
        if recipient == me.address:
            status, reason = await self.local(envelope)
            if status != 202:
                log.error("#%d: self-delivery of %s failed: %s", job_id, kind, reason)
            return
        task = asyncio.get_running_loop().create_task(
            self._deliver(job_id, kind, recipient, peer.endpoint, envelope))
        self.deliveries.add(task)
        task.add_done_callback(self.deliveries.discard)

    async def _deliver(self, job_id: int, kind: str, recipient: str, endpoint: str,
                       envelope: Envelope) -> None:
        try:
            status = await self.client.send(endpoint, envelope, deadline_s=self.deadline_s)
            if status != 202:
                log.warning("#%d: %s to %s answered HTTP %d", job_id, kind, recipient, status)
        except DeliveryError as exc:
            log.warning("#%d: %s to %s not delivered: %s", job_id, kind, recipient, exc)

    # -- waiting -------------------------------------------------------------------------------
    @staticmethod
    async def until(changed: asyncio.Condition, predicate: Callable[[], bool],
                    timeout_s: float) -> bool:
        """Wait until ``predicate()`` holds, re-checked whenever ``changed`` is notified, for
        at most ``timeout_s`` seconds. Returns the predicate's final value (never raises
        TimeoutError)."""
        async with changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait_for(predicate), timeout_s)
                return True
        return bool(predicate())

    async def gather(self, changed: asyncio.Condition, count: Callable[[], int], need: int,
                     everyone: int, *, grace_s: float) -> int:
        """Wait until ``count()`` reaches ``need`` (what the round requires; up to
        ``deadline_s``), then at most ``grace_s`` more for ``everyone``: a dead node costs one
        grace period per round, not a timeout. Returns the final count (it may be below
        ``need``; the caller decides)."""
        await self.until(changed, lambda: count() >= need, self.deadline_s)
        if count() >= need:
            await self.until(changed, lambda: count() >= everyone, grace_s)
        return count()
