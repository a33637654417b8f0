"""One deployed MPCMarket bound to a Web3: the contract object, its event and error decoders, and
the one :class:`~offchain.chain.tx.TxSender` that every transaction to it goes through.

:class:`ContractClient` is the base of :class:`~offchain.chain.market.MarketClient`, whose
methods live, one seam each, in :mod:`offchain.chain.registry` (the node registry) and
:mod:`offchain.chain.jobs` (jobs); :class:`~offchain.chain.beacon.BeaconClient` sends through
the same :attr:`ContractClient.sender`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.contract import Contract

from offchain.chain.artifacts import market_abi
from offchain.chain.events import EventDecoder
from offchain.chain.tx import DEFAULT_TIP_WEI, ErrorDecoder, TxSender

__all__ = ["ContractClient"]


class ContractClient:
    """The market at ``address`` on ``w3``.

    Args:
        w3: a connected Web3 (HTTP provider to anvil or another node).
        address: the market contract address (any case; kept checksummed).
        abi: the MPCMarket ABI (default: the shipped artifact,
            :func:`~offchain.chain.artifacts.market_abi`).
        tip_wei: EIP-1559 priority fee per gas (wei) for transactions sent by this client.

    Attributes:
        sender: the :class:`TxSender` of this client (signing, gas, revert decoding); other
            clients of the same contract (the beacon's) send through it too.
        chain_id: the chain id the sender signs for (read once from the node).
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        abi: Sequence[dict[str, Any]] | None = None,
        *,
        tip_wei: int = DEFAULT_TIP_WEI,
    ) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.abi: list[dict[str, Any]] = list(abi) if abi is not None else market_abi()
        self.contract: Contract = w3.eth.contract(address=self.address, abi=self.abi)
        self.logs = EventDecoder(self.contract)
        self.sender = TxSender(w3, ErrorDecoder(self.abi), tip_wei)
        self.chain_id: int = self.sender.chain_id

    def _call(self, fn: Any) -> Any:
        """``fn.call()`` (a bound view function) with reverts raised as ContractRevert."""
        with self.sender.reverts():
            return fn.call()

    def events(self, name: str, from_block: int = 0,
               to_block: int | str = "latest") -> list[dict[str, Any]]:
        """Decoded logs of event ``name`` in blocks [from_block, to_block], in chain order: the
        arguments in snake_case, ``block_number``, ``tx_hash``, ``log_index`` (as
        :meth:`EventDecoder.fetch`, without the ``event`` key)."""
        out = self.logs.fetch(from_block, to_block, name)
        for entry in out:
            del entry["event"]
        return out
