"""Following the market contract: a registry directory and the ordered event stream.

The registry is the PKI: a node trusts a peer's encryption key and endpoint only as the chain
states them. The follower reads the whole registry once at start-up, then applies registry
events (NodeRegistered, NodeEndpointUpdated, NodeExitRequested, NodeExited) in chain order, so at
each JobPosted event the directory is the registry as of that block. Job events go to a callback.

New blocks are announced by an ``eth_subscribe("newHeads")`` websocket subscription (anvil serves
websockets on its HTTP port); each wake costs one eth_blockNumber and, when blocks were added, one
eth_getLogs. Without a websocket it polls every ``poll_interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from web3 import AsyncWeb3, Web3
from web3.providers.persistent import WebSocketProvider

from offchain.chain.events import EventDecoder
from offchain.chain.market import MarketClient
from offchain.protocol.registry import REGISTRY_EVENTS, RegistryEntry, RegistryState
from offchain.types import Address

log = logging.getLogger("mpc.follower")


PeerInfo = RegistryEntry
"""A registry entry as the node uses it (:class:`offchain.protocol.registry.RegistryEntry`):
checksummed ``address``, raw 32-byte X25519 ``enc_key``, HTTP ``endpoint``, and ``active``
(False once Exiting or slashed)."""


class ChainFollower:
    """Registry directory plus market events; ``on_job`` is called for each job event
    (JobPosted, CommitteeAssigned, JobFinalized, JobRefunded) and ``on_beacon`` for each beacon
    event (RoundOpened, RoundCommitted, ContributionOpened, RoundFinalized, RoundFailed,
    RandomnessRequested, RandomnessFulfilled), after every registry change that precedes it on
    chain; ``on_block`` gets the latest block number after each sync."""

    def __init__(self, w3: Web3, market: MarketClient, *, rpc_url: str, ws_url: str | None,
                 poll_interval_s: float, on_job: Callable[[dict[str, Any]], None],
                 on_beacon: Callable[[dict[str, Any]], None] | None = None,
                 on_block: Callable[[int], None] | None = None) -> None:
        self.w3 = w3
        self.market = market
        self.ws_url = ws_url or "ws" + rpc_url.removeprefix("http")
        self.poll_interval_s = poll_interval_s
        self.on_job = on_job
        self.on_beacon = on_beacon
        self.on_block = on_block
        self.events = EventDecoder(market.contract)
        # The registry as of the last processed block, kept current from registry events.
        self.registry = RegistryState()
        self.lookups: dict[str, PeerInfo] = {}  # on-demand registry reads, ahead of events
        self.poke = asyncio.Event()
        self.push_connected = False

    async def peer(self, address: str) -> PeerInfo | None:
        """Registry entry of ``address``, or None if not registered. Served from the directory
        that registry events keep current; an address not in it (registered in a block not yet
        processed) is looked up on chain and kept in a separate cache, so that the directory
        itself always reflects the chain in event order (job provider sets are taken from it)."""
        info = self.registry.nodes.get(Address(address)) or self.lookups.get(address)
        if info is not None:
            return info
        info = await asyncio.to_thread(self.market.registry_entry, address)
        if info is None:
            return None
        self.lookups[address] = info
        return info

    def active_nodes(self) -> frozenset[str]:
        """Nodes Active in the registry as of the last processed event."""
        return frozenset(self.registry.active())

    def load_directory(self) -> None:
        """Read every registered node from the registry (blocking; at start-up)."""
        self.registry = self.market.registry_now()

    def on_registry_event(self, ev: dict[str, Any]) -> None:
        """Apply one registry event (NodeRegistered, NodeEndpointUpdated, NodeExitRequested,
        NodeSlashed, NodeExited) to the directory, by the one replay rule
        (:meth:`offchain.protocol.registry.RegistryState.apply`)."""
        self.lookups.pop(Web3.to_checksum_address(ev["node"]), None)  # events caught up
        self.registry.apply(ev)

    async def watch(self, from_block: int) -> None:
        """Follow the market's events from ``from_block`` on, in chain order.

        Wakes on every new block announced over the websocket subscription (``_heads``), on a
        poke (a message for a job not seen yet), and otherwise every second; without a websocket
        it polls every ``poll_interval_s``. Each wake costs one eth_blockNumber, plus one
        eth_getLogs when blocks were added.
        """
        next_block = from_block
        heads = asyncio.get_running_loop().create_task(self._heads())
        try:
            while True:
                self.poke.clear()  # before syncing, so a poke during the sync is not lost
                try:
                    latest = await asyncio.to_thread(lambda: self.w3.eth.block_number)
                    if latest >= next_block:
                        events = await asyncio.to_thread(self.events.fetch, next_block, latest)
                        next_block = latest + 1
                        for ev in events:  # in chain order: the directory is current at each job
                            name = ev["event"]
                            if name.startswith("Job") or name == "CommitteeAssigned":
                                self.on_job(ev)
                            elif name in REGISTRY_EVENTS:
                                self.on_registry_event(ev)
                            elif self.on_beacon is not None:
                                self.on_beacon(ev)
                        if self.on_block is not None:
                            self.on_block(latest)
                except Exception:  # keep watching through transient RPC errors
                    log.exception("chain poll failed")
                wait_s = 1.0 if self.push_connected else self.poll_interval_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.poke.wait(), wait_s)
        finally:
            heads.cancel()

    async def _heads(self) -> None:
        """Poke the watcher on every new block (eth_subscribe newHeads over a websocket)."""
        url = self.ws_url
        while True:
            try:
                async with AsyncWeb3(WebSocketProvider(url)) as w3:
                    await w3.eth.subscribe("newHeads")
                    self.push_connected = True
                    self.poke.set()
                    async for _ in w3.socket.process_subscriptions():
                        self.poke.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.push_connected:
                    log.warning("block subscription lost (%s); polling", exc)
                else:
                    log.info("no block subscription at %s (%s); polling every %.3f s", url, exc,
                             self.poll_interval_s)
            self.push_connected = False
            await asyncio.sleep(5.0)
