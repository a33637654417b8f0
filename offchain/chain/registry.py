"""The node registry on chain (``contracts/core/NodeRegistry.sol``): its transactions and views
as :class:`RegistryCalls` (part of :class:`~offchain.chain.market.MarketClient`), and the
registry as of a past block, replayed from its events (:func:`registry_at`).

The replay rule itself is pure and lives one layer down, in :mod:`offchain.protocol.registry`
(the one copy, shared with the committee rule, the node's follower, the auditor and the API's
index); this module only fetches the events with web3 and folds them.

Units: stakes and rewards in wei (int), ``exit_at`` unix seconds, keys 32-byte ``bytes``,
addresses checksum strings. Nothing read here is secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from offchain.chain.client import ContractClient
from offchain.chain.events import EventDecoder
from offchain.chain.tx import TxResult
from offchain.protocol.registry import (
    REGISTRY_EVENTS,
    RegistryEntry,
    RegistryState,
    replay_registry,
)
from offchain.types import Address, NodeStatus, Wei

__all__ = ["LOG_RANGE", "NodeInfo", "RegistryCalls", "eligible_at", "registry_at",
           "registry_events"]

LOG_RANGE = 5_000
"""Most blocks asked of one ``eth_getLogs`` call (providers cap the range of one query)."""


@dataclass(frozen=True)
class NodeInfo:
    """A registry entry (``getNode``); all zero / empty for an unknown address.

    ``enc_key`` is the 32-byte X25519 public key, ``exit_at`` unix seconds (0 unless Exiting).
    """

    address: str
    stake_wei: int
    rewards_wei: int
    exit_at: int
    status: NodeStatus
    enc_key: bytes
    endpoint: str


class RegistryCalls(ContractClient):
    """The registry's transactions and views (mixed into MarketClient)."""

    # ------------------------------------------------------------------ transactions

    def register(
        self, account: LocalAccount, enc_key: bytes, endpoint: str, stake_wei: int
    ) -> TxResult:
        """Register ``account`` with X25519 key ``enc_key`` (32 bytes), ``endpoint`` and
        ``stake_wei`` locked. Raises ContractRevert RegistryStakeTooLow /
        RegistryInvalidEncryptionKey / RegistryInvalidEndpoint / RegistryAlreadyRegistered;
        ValueError if enc_key is not 32 bytes."""
        if len(enc_key) != 32:
            raise ValueError("enc_key must be 32 bytes")
        fn = self.contract.functions.register(bytes(enc_key), endpoint)
        return self.sender.send("register", account, fn, value=stake_wei)

    def update_endpoint(self, account: LocalAccount, endpoint: str) -> TxResult:
        """Change ``account``'s registered endpoint. Raises ContractRevert RegistryNotRegistered /
        RegistryInvalidEndpoint."""
        return self.sender.send("updateEndpoint", account,
                                self.contract.functions.updateEndpoint(endpoint))

    def request_exit(self, account: LocalAccount) -> TxResult:
        """Active -> Exiting (stake withdrawable after exit_delay_s). Raises ContractRevert
        RegistryNotRegistered / RegistryNotActive."""
        return self.sender.send("requestExit", account, self.contract.functions.requestExit())

    def withdraw_stake(self, account: LocalAccount) -> TxResult:
        """Pay out stake + unpaid rewards and leave the registry. Raises ContractRevert
        RegistryNotRegistered / RegistryExitNotReady(exitAt) / MarketTransferFailed."""
        return self.sender.send("withdrawStake", account,
                                self.contract.functions.withdrawStake())

    def withdraw_rewards(self, account: LocalAccount) -> TxResult:
        """Pull credited rewards. Raises ContractRevert RegistryNothingToWithdraw /
        MarketTransferFailed."""
        return self.sender.send("withdrawRewards", account,
                                self.contract.functions.withdrawRewards())

    # ------------------------------------------------------------------ views

    def get_node(self, address: str) -> NodeInfo:
        """Registry entry of ``address`` (zeros if unknown)."""
        addr = to_checksum_address(address)
        stake, rewards, exit_at, status, enc_key, endpoint = self._call(
            self.contract.functions.getNode(addr)
        )
        return NodeInfo(
            address=addr,
            stake_wei=int(stake),
            rewards_wei=int(rewards),
            exit_at=int(exit_at),
            status=NodeStatus(status),
            enc_key=bytes(enc_key),
            endpoint=str(endpoint),
        )

    def is_active(self, address: str) -> bool:
        """Whether ``address`` is registered and Active."""
        return bool(self._call(self.contract.functions.isActive(to_checksum_address(address))))

    def node_count(self) -> int:
        """Number of registered (Active or Exiting) nodes."""
        return int(self._call(self.contract.functions.nodeCount()))

    def node_at(self, index: int) -> str:
        """Address of the ``index``-th registered node (ContractRevert RegistryIndexOutOfBounds)."""
        return to_checksum_address(self._call(self.contract.functions.nodeAt(index)))

    def list_nodes(self) -> list[NodeInfo]:
        """All registered nodes with their entries (1 + 2n eth_calls; list order is the
        contract's, which changes on removals)."""
        return [self.get_node(self.node_at(i)) for i in range(self.node_count())]

    def node_blocks(self, address: str) -> tuple[int, int]:
        """(registered block, exit block or 0) of ``address`` (``nodeBlocks``; (0, 0) if
        unknown): the two block numbers that fix its committee eligibility."""
        a, b = self._call(self.contract.functions.nodeBlocks(to_checksum_address(address)))
        return int(a), int(b)

    def registry_entry(self, address: str) -> RegistryEntry | None:
        """The current entry of ``address`` as a :class:`RegistryEntry` (``getNode`` and
        ``nodeBlocks``: 2 eth_calls, not one atomic read), or None if it is not registered."""
        node = self.get_node(address)
        if node.status is NodeStatus.NONE:
            return None
        registered, exited = self.node_blocks(node.address)
        return RegistryEntry(Address(node.address), node.enc_key, node.endpoint,
                             Wei(node.stake_wei), node.status, registered, exited or None)

    def registry_now(self) -> RegistryState:
        """The registry's current state as a :class:`RegistryState` (1 + 3n eth_calls), to be
        kept current with its events (:meth:`RegistryState.apply`)."""
        entries = (self.registry_entry(self.node_at(i)) for i in range(self.node_count()))
        return RegistryState({e.address: e for e in entries if e is not None})

    def node_registered_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """NodeRegistered logs as dicts: node, stake_wei, enc_key, endpoint, block_number,
        tx_hash, log_index."""
        return self.events("NodeRegistered", from_block, to_block)


# ----------------------------------------------------------------------------- replay


def registry_events(decoder: EventDecoder, from_block: int,
                    to_block: int) -> list[dict[str, Any]]:
    """The registry's decoded events (:data:`REGISTRY_EVENTS`) of blocks [from_block, to_block],
    in chain order, read in ranges of at most :data:`LOG_RANGE` blocks (one ``eth_getLogs``
    each). Raises whatever web3 raises for an RPC failure."""
    out: list[dict[str, Any]] = []
    start = from_block
    while start <= to_block:
        end = min(to_block, start + LOG_RANGE - 1)
        out.extend(ev for ev in decoder.fetch(start, end) if ev["event"] in REGISTRY_EVENTS)
        start = end + 1
    return out


def registry_at(decoder: EventDecoder, block: int, *, from_block: int = 0) -> RegistryState:
    """The registry at the end of ``block``, replayed from the chain's events
    (:func:`~offchain.protocol.registry.replay_registry`). ``from_block`` must be at or before
    the market's deployment (an earlier start only costs more ``eth_getLogs`` calls). Works on
    a node without historical state, unlike ``getNode`` at a past block."""
    return replay_registry(registry_events(decoder, from_block, block), block)


def eligible_at(decoder: EventDecoder, snapshot_block: int, *,
                from_block: int = 0) -> list[Address]:
    """Nodes eligible for a committee seeded at commit block ``snapshot_block`` (ascending), from
    the chain's registry events (the rule of :mod:`offchain.protocol.committee`)."""
    return registry_at(decoder, snapshot_block, from_block=from_block).eligible(snapshot_block)
