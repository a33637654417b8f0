"""Where the audit reads the chain: the :class:`LogSource` protocol, its real-chain
implementation :class:`ChainLogSource`, and :func:`registration_from_events` (a node's
registration at a past block, replayed from the registry's events when the node serving the
RPC has no historical state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from web3 import Web3
from web3.contract import Contract

from offchain.audit.util import checksum
from offchain.chain.events import EventDecoder
from offchain.protocol.registry import replay_registry
from offchain.types import NodeStatus, Wei


class LogSource(Protocol):
    """Where the audit reads the market's logs and transactions."""

    def events(self, from_block: int) -> list[dict[str, Any]]:
        """Every decoded market log from ``from_block`` to the head, in chain order (as
        :meth:`offchain.chain.events.EventDecoder.fetch`: ``event``, snake_case arguments,
        ``block_number``, ``tx_hash``, ``log_index``)."""
        ...

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        """``{"hash", "from", "to", "value", "input" (bytes), "block_number"}``."""
        ...

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        """``{"status", "gas_used", "effective_gas_price", "block_number"}``."""
        ...


class ChainLogSource:
    """The real chain: ``eth_getLogs`` over the market, transactions and receipts by hash."""

    def __init__(self, w3: Web3, contract: Contract) -> None:
        self.w3 = w3
        self.decoder = EventDecoder(contract)

    def events(self, from_block: int) -> list[dict[str, Any]]:
        return self.decoder.fetch(from_block, "latest")

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        tx = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        return {"hash": tx_hash, "from": checksum(tx["from"]),
                "to": checksum(tx["to"]) if tx.get("to") else None,
                "value": int(tx["value"]), "input": bytes(tx["input"]),
                "block_number": int(tx["blockNumber"])}

    def receipt(self, tx_hash: str) -> dict[str, Any]:
        r = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        return {"status": int(r["status"]), "gas_used": int(r["gasUsed"]),
                "effective_gas_price": int(r["effectiveGasPrice"]),
                "block_number": int(r["blockNumber"])}


def registration_from_events(events: Sequence[dict[str, Any]], node: str,
                             block: int) -> tuple[Wei, NodeStatus]:
    """(stake in wei, status) of ``node`` at the end of ``block``, replayed from the registry's
    decoded events of blocks <= ``block`` in chain order by the one replay rule
    (:func:`offchain.protocol.registry.replay_registry`): ``NodeRegistered`` sets the stake and
    makes it Active (a later one is a re-registration), ``NodeExitRequested`` makes it Exiting,
    ``NodeSlashed`` takes its amount from the stake and makes it Exiting, ``NodeExited`` removes
    it (stake 0, NONE)."""
    return replay_registry(events, block).registration(node)
