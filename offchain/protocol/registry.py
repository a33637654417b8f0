"""The node registry as of a block, replayed from its events: the one copy of that rule.

``NodeRegistry.sol`` changes a node's entry only through five events, and this module folds them,
in chain order, into the registry's state at the end of a block:

* ``NodeRegistered(node, stakeWei, encKey, endpoint)`` — a new entry, Active, with that stake,
  X25519 key and endpoint (after an exit, a re-registration is a new entry);
* ``NodeEndpointUpdated(node, endpoint)`` — the endpoint changes;
* ``NodeExitRequested(node, exitAt)`` — Active -> Exiting;
* ``NodeSlashed(node, amountWei, exitAt)`` — the amount leaves the stake and the node is put into
  Exiting (a slash is an exit);
* ``NodeExited(node)`` — the entry is removed.

The first exit (request or slash) after a registration is kept as ``exit_block``, next to
``registered_block``, as the contract keeps both in ``nodeBlocks``: a node is *eligible* for a
committee seeded at commit block S when it registered in a block before S and had not started to
exit by the end of S (:meth:`RegistryState.eligible`; see :mod:`offchain.protocol.committee`).

Pure: events are the decoded dicts of :class:`offchain.chain.events.EventDecoder` (``event``,
snake_case arguments, ``block_number``), and anything that is not a registry event is ignored.
Where the events come from is the caller's business: :mod:`offchain.chain.registry` fetches
them with web3; the node's follower, the auditor and the API's index apply the ones they already
read. Nothing here is secret: every input is public chain data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from offchain.types import Address, NodeStatus, Wei

__all__ = ["REGISTRY_EVENTS", "RegistryEntry", "RegistryState", "replay_registry"]

REGISTRY_EVENTS: frozenset[str] = frozenset({
    "NodeRegistered", "NodeEndpointUpdated", "NodeExitRequested", "NodeSlashed", "NodeExited"})
"""The names of the events that change the registry (every one carries ``node``)."""


def _address(value: Any) -> Address:
    return Address(str(to_checksum_address(value)))


def _ascending(addresses: Iterable[Address]) -> list[Address]:
    return sorted(addresses, key=lambda a: int(a, 16))


@dataclass(frozen=True)
class RegistryEntry:
    """One registered node (Active or Exiting).

    Attributes:
        address: the node's checksum address.
        enc_key: its 32-byte X25519 public key (the key peers encrypt to).
        endpoint: its HTTP endpoint as registered.
        stake_wei: its stake (wei), less any slashes since it registered.
        status: :attr:`NodeStatus.ACTIVE` or :attr:`NodeStatus.EXITING` (compare with ``is``).
        registered_block: block of its registration (the contract's ``registeredBlock``).
        exit_block: block of its first exit request or slash since then (``exitBlock``); None
            while Active.
    """

    address: Address
    enc_key: bytes
    endpoint: str
    stake_wei: Wei
    status: NodeStatus
    registered_block: int
    exit_block: int | None = None

    @property
    def active(self) -> bool:
        """Whether the node is Active (False once Exiting: it asked to leave or was slashed)."""
        return self.status is NodeStatus.ACTIVE


@dataclass
class RegistryState:
    """The registry as of the last event applied: registered nodes by address.

    Build it with :func:`replay_registry`, or seed ``nodes`` from the current state
    (:meth:`offchain.chain.registry.RegistryCalls.registry_now`) and keep it current with
    :meth:`apply`.
    """

    nodes: dict[Address, RegistryEntry] = field(default_factory=dict)

    def apply(self, ev: Mapping[str, Any]) -> bool:
        """Apply one decoded event; return whether it was a registry event.

        Events must come in chain order. An endpoint update, exit or slash of an address that
        is not registered changes nothing, as on chain (the contract would have reverted).
        Fields a minimal event lacks (``enc_key``, ``endpoint``, ``stake_wei``, ``amount_wei``)
        count as empty / 0; :class:`~offchain.chain.events.EventDecoder` always sets them.
        """
        name = ev.get("event")
        if name not in REGISTRY_EVENTS:
            return False
        node = _address(ev["node"])
        block = int(ev["block_number"])
        entry = self.nodes.get(node)
        if name == "NodeRegistered":
            self.nodes[node] = RegistryEntry(
                node, bytes(ev.get("enc_key", b"")), str(ev.get("endpoint", "")),
                Wei(int(ev.get("stake_wei", 0))), NodeStatus.ACTIVE, block)
        elif name == "NodeExited":
            self.nodes.pop(node, None)
        elif entry is None:
            pass
        elif name == "NodeEndpointUpdated":
            self.nodes[node] = dataclasses.replace(entry, endpoint=str(ev["endpoint"]))
        else:  # NodeExitRequested, NodeSlashed
            stake = entry.stake_wei
            if name == "NodeSlashed":
                stake = Wei(max(0, stake - int(ev.get("amount_wei", 0))))
            exit_block = entry.exit_block if entry.exit_block is not None else block
            self.nodes[node] = dataclasses.replace(
                entry, stake_wei=stake, status=NodeStatus.EXITING, exit_block=exit_block)
        return True

    def get(self, address: str) -> RegistryEntry | None:
        """The entry of ``address`` (any case), or None if it is not registered."""
        return self.nodes.get(_address(address))

    def registration(self, address: str) -> tuple[Wei, NodeStatus]:
        """(stake in wei, status) of ``address``; (0, NONE) if it is not registered."""
        entry = self.get(address)
        return (Wei(0), NodeStatus.NONE) if entry is None else (entry.stake_wei, entry.status)

    def active(self) -> frozenset[Address]:
        """The Active nodes."""
        return frozenset(a for a, e in self.nodes.items() if e.active)

    def eligible(self, snapshot_block: int) -> list[Address]:
        """Nodes eligible for a committee whose seeding round committed at ``snapshot_block``,
        ascending: registered in a block < ``snapshot_block`` and still Active. Meaningful on
        the state as of ``snapshot_block`` (``replay_registry(events, snapshot_block)``)."""
        return _ascending(a for a, e in self.nodes.items()
                          if e.active and e.registered_block < snapshot_block)


def replay_registry(events: Iterable[Mapping[str, Any]],
                    to_block: int | None = None) -> RegistryState:
    """The registry at the end of block ``to_block`` (None: after every event), folded from the
    registry's decoded events in chain order; events of later blocks and non-registry events are
    skipped. Starts from an empty registry, so ``events`` must begin at (or before) the market's
    deployment."""
    state = RegistryState()
    for ev in events:
        if ev.get("event") in REGISTRY_EVENTS and (
                to_block is None or int(ev["block_number"]) <= to_block):
            state.apply(ev)
    return state
