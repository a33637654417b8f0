"""Python client of the MPCMarket contract (web3.py 8, locally signed EIP-1559 transactions).

Every state-changing method takes the :class:`~eth_account.signers.local.LocalAccount` that signs
the transaction and returns a :class:`TxResult` once it is mined. Reverts surface as
:class:`ContractRevert` carrying the Solidity custom error's name and decoded arguments (e.g.
``RegistryNotActive(0xAbc...)``), whether they happen in ``eth_estimateGas``, ``eth_call`` or a
mined transaction (replayed with ``eth_call`` to learn the reason).

Units: all amounts are wei (int), all times unix seconds / durations seconds (int), hashes are
32-byte ``bytes``, addresses checksum strings. The contract interface is defined in
``contracts/core/JobMarket.sol`` / ``contracts/core/NodeRegistry.sol``; the EIP-712 domain comes
from the contract's EIP-5267 ``eip712Domain()``. The ABI is the shipped artifact
(:mod:`offchain.chain.artifacts`).

:class:`MarketClient` is assembled from one module per seam: :mod:`offchain.chain.client` (the
contract binding and its :attr:`~MarketClient.sender`), :mod:`offchain.chain.registry` (node
registry calls, :class:`NodeInfo`) and :mod:`offchain.chain.jobs` (job calls,
:class:`StoredJob`, ``postJob`` calldata); this module adds the market-wide views and
:func:`deploy_market`, and re-exports those names so ``offchain.chain.market`` stays the one
import path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3

from offchain.chain.artifacts import market_artifact
from offchain.chain.jobs import (
    POST_JOB_SELECTOR,
    JobCalls,
    StoredJob,
    decode_post_job,
    decode_stored_job,
    encode_post_job,
)
from offchain.chain.registry import NodeInfo, RegistryCalls
from offchain.chain.tx import (
    DEFAULT_TIP_WEI,
    ContractRevert,
    ErrorDecoder,
    TransactionFailed,
    TxResult,
    TxSender,
    decode_revert,
)
from offchain.encoding.eip712 import DOMAIN_NAME, DOMAIN_VERSION, market_domain
from offchain.types import JobStatus, NodeStatus

__all__ = [
    "POST_JOB_SELECTOR",
    "ContractRevert",
    "JobStatus",
    "MarketClient",
    "MarketConfig",
    "NodeInfo",
    "NodeStatus",
    "StoredJob",
    "TransactionFailed",
    "TxResult",
    "TxSender",
    "decode_post_job",
    "decode_revert",
    "decode_stored_job",
    "deploy_market",
    "encode_post_job",
]


@dataclass(frozen=True)
class MarketConfig:
    """Constructor parameters of a deployed market (wei / seconds)."""

    min_stake_wei: int
    exit_delay_s: int
    min_payment_wei: int
    max_timeout_s: int
    phase_blocks: int
    randomness_fee_wei: int
    beacon_slash_wei: int


# ----------------------------------------------------------------------------- client


class MarketClient(RegistryCalls, JobCalls):
    """Client of one deployed MPCMarket: registry calls (:class:`RegistryCalls`), job calls
    (:class:`JobCalls`) and the market-wide views below, all sent through :attr:`sender`.

    Args:
        w3: a connected Web3 (HTTP provider to anvil or another node).
        address: the market contract address.
        abi: the MPCMarket ABI (default: the shipped artifact,
            :func:`~offchain.chain.artifacts.market_abi`).
        tip_wei: EIP-1559 priority fee per gas (wei) for transactions sent by this client.
        deployment: the deployment transaction, when this client deployed the market
            (:func:`deploy_market` sets it).
    """

    def __init__(
        self,
        w3: Web3,
        address: str,
        abi: Sequence[dict[str, Any]] | None = None,
        *,
        tip_wei: int = DEFAULT_TIP_WEI,
        deployment: TxResult | None = None,
    ) -> None:
        super().__init__(w3, address, abi, tip_wei=tip_wei)
        self._domain: dict[str, Any] | None = None
        self._deployment = deployment

    @property
    def deployment(self) -> TxResult:
        """The deployment transaction of a client made by :func:`deploy_market`.

        Raises RuntimeError for a client attached to an existing address.
        """
        if self._deployment is None:
            raise RuntimeError("this client did not deploy the market (no deployment tx)")
        return self._deployment

    # ------------------------------------------------------------------ market-wide views

    def config(self) -> MarketConfig:
        """The market's immutable parameters."""
        f = self.contract.functions
        return MarketConfig(
            min_stake_wei=int(self._call(f.minStakeWei())),
            exit_delay_s=int(self._call(f.exitDelayS())),
            min_payment_wei=int(self._call(f.minPaymentWei())),
            max_timeout_s=int(self._call(f.maxTimeoutS())),
            phase_blocks=int(self._call(f.phaseBlocks())),
            randomness_fee_wei=int(self._call(f.randomnessFeeWei())),
            beacon_slash_wei=int(self._call(f.beaconSlashWei())),
        )

    def domain(self) -> dict[str, Any]:
        """EIP-712 domain for signing, read once from the contract's EIP-5267
        ``eip712Domain()`` and checked against :func:`offchain.encoding.eip712.market_domain`.

        Raises RuntimeError if the contract reports another name, version, chain or address.
        """
        if self._domain is None:
            _fields, name, version, chain_id, verifying, _salt, _ext = self._call(
                self.contract.functions.eip712Domain()
            )
            expected = market_domain(self.chain_id, self.address)
            got = {
                "name": name,
                "version": version,
                "chainId": int(chain_id),
                "verifyingContract": to_checksum_address(verifying),
            }
            if got != expected or (name, version) != (DOMAIN_NAME, DOMAIN_VERSION):
                raise RuntimeError(f"unexpected EIP-712 domain {got}, expected {expected}")
            self._domain = expected
        return dict(self._domain)


# ----------------------------------------------------------------------------- deployment


def deploy_market(
    w3: Web3,
    deployer: LocalAccount,
    *,
    min_stake_wei: int,
    exit_delay_s: int,
    min_payment_wei: int,
    max_timeout_s: int,
    phase_blocks: int = 20,
    randomness_fee_wei: int = 10**15,
    beacon_slash_wei: int = 10**17,
    abi: Sequence[dict[str, Any]] | None = None,
    bytecode: str | None = None,
) -> MarketClient:
    """Deploy MPCMarket signed by ``deployer`` and return a client for it.

    Args:
        min_stake_wei: minimal node stake (wei, < 2**96).
        exit_delay_s: requestExit -> withdrawStake delay (s); must exceed ``max_timeout_s``.
        min_payment_wei: minimal job escrow (wei, < 2**96).
        max_timeout_s: longest job timeout (s).
        phase_blocks: length of each beacon phase (commit, reveal, recovery) in blocks.
        randomness_fee_wei: price of one randomness request (wei).
        beacon_slash_wei: stake seized from a beacon participant whose reveal was withheld.
        abi, bytecode: artifact to deploy (default: the shipped artifact, :func:`market_artifact`).

    Raises:
        ContractRevert: MarketInvalidConfiguration(exitDelayS, maxTimeoutS) if exit_delay_s <=
            max_timeout_s.
    """
    if abi is None or bytecode is None:
        art = market_artifact()
        abi, bytecode = art.abi, art.bytecode
    factory = w3.eth.contract(abi=list(abi), bytecode=bytecode)
    sender = TxSender(w3, ErrorDecoder(abi), DEFAULT_TIP_WEI)
    ctor = factory.constructor(min_stake_wei, exit_delay_s, min_payment_wei, max_timeout_s,
                               phase_blocks, randomness_fee_wei, beacon_slash_wei)
    tx = sender.send("deploy", deployer, ctor)
    address = tx.receipt["contractAddress"]
    if address is None:
        raise RuntimeError(f"deployment {tx.hash} created no contract")
    return MarketClient(w3, cast(str, address), abi, deployment=tx)
