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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.contract import Contract
from web3.logs import DISCARD

from offchain.chain.artifacts import market_abi, market_artifact
from offchain.chain.events import EventDecoder
from offchain.chain.tx import (
    DEFAULT_TIP_WEI,
    ContractRevert,
    ErrorDecoder,
    TransactionFailed,
    TxResult,
    TxSender,
    decode_revert,
)
from offchain.encoding.eip712 import DOMAIN_NAME, DOMAIN_VERSION, Sig, market_domain
from offchain.types import Address, Bytes32, JobStatus, NodeStatus, Wei

__all__ = [
    "ContractRevert",
    "JobStatus",
    "MarketClient",
    "MarketConfig",
    "NodeInfo",
    "NodeStatus",
    "StoredJob",
    "TransactionFailed",
    "TxResult",
    "decode_post_job",
    "decode_revert",
    "deploy_market",
    "encode_post_job",
]

# ----------------------------------------------------------------------------- data classes


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


@dataclass(frozen=True)
class StoredJob:
    """A stored job (``getJob``); all zero for an unknown id. Not the committee's view of a
    posted job (:class:`offchain.protocol.job.JobSpec`).

    ``status`` is the contract's value as a :class:`~offchain.types.JobStatus` (compare with
    ``is``).

    ``deadline`` is unix seconds; ``signer_mask`` bit i = committee[i] signed the result;
    hashes are 32 bytes (``result_hash`` zero until finalized; the proof hash is in the
    JobFinalized event).
    """

    job_id: int
    buyer: Address
    escrow_wei: Wei
    spec_hash: Bytes32
    committee_hash: Bytes32
    deadline: int
    committee_size: int
    threshold: int
    min_providers: int
    status: JobStatus
    provider_count: int
    signer_mask: int
    seed_round: int
    result_hash: bytes


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


# ----------------------------------------------------------------------------- postJob calldata

POST_JOB_SELECTOR = keccak(text="postJob(bytes32,string,uint8,uint8,uint16,uint40)")[:4]
_POST_JOB_TYPES = ["bytes32", "string", "uint8", "uint8", "uint16", "uint40"]


def encode_post_job(dataset_id: bytes, query: str, committee_size: int, threshold: int,
                    min_providers: int, timeout_s: int) -> bytes:
    """Calldata of ``postJob(datasetId, query, committeeSize, threshold, minProviders,
    timeoutS)``."""
    return POST_JOB_SELECTOR + abi_encode(
        _POST_JOB_TYPES, [dataset_id, query, committee_size, threshold, min_providers, timeout_s])


def decode_post_job(data: bytes) -> tuple[bytes, bytes, int, int, int, int]:
    """Arguments of postJob calldata (datasetId, query as raw bytes — it need not be UTF-8 —,
    committeeSize, threshold, minProviders, timeoutS). Raises LookupError if ``data`` does not
    call postJob, ValueError if the arguments do not decode."""
    if data[:4] != POST_JOB_SELECTOR:
        raise LookupError("calldata does not call postJob")
    try:
        values = abi_decode(["bytes32", "bytes", "uint8", "uint8", "uint16", "uint40"],
                            bytes(data[4:]))
    except Exception as exc:  # eth_abi raises several decoding error types
        raise ValueError(f"postJob arguments do not decode: {exc}") from None
    d, q, n, t, m, timeout = values
    return bytes(d), bytes(q), int(n), int(t), int(m), int(timeout)


# ----------------------------------------------------------------------------- client


def _market_abi() -> list[dict[str, Any]]:
    return market_abi()


class MarketClient:
    """Client of one deployed MPCMarket.

    Args:
        w3: a connected Web3 (HTTP provider to anvil or another node).
        address: the market contract address.
        abi: the MPCMarket ABI (default: the shipped artifact, :func:`market_abi`).
        tip_wei: EIP-1559 priority fee per gas (wei) for transactions sent by this client.
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
        self.abi: list[dict[str, Any]] = list(abi) if abi is not None else _market_abi()
        self.contract: Contract = w3.eth.contract(address=self.address, abi=self.abi)
        self._logs = EventDecoder(self.contract)
        self._decoder = ErrorDecoder(self.abi)
        self._tx = TxSender(w3, self._decoder, tip_wei)
        self.chain_id: int = self._tx.chain_id
        self._domain: dict[str, Any] | None = None
        self._deployment: TxResult | None = None

    @property
    def deployment(self) -> TxResult:
        """The deployment transaction of a client made by :func:`deploy_market`.

        Raises RuntimeError for a client attached to an existing address.
        """
        if self._deployment is None:
            raise RuntimeError("this client did not deploy the market (no deployment tx)")
        return self._deployment

    def _call(self, fn: Any) -> Any:
        with self._tx.reverts():
            return fn.call()

    # ------------------------------------------------------------------ registry transactions

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
        return self._tx.send("register", account, fn, value=stake_wei)

    def update_endpoint(self, account: LocalAccount, endpoint: str) -> TxResult:
        """Change ``account``'s registered endpoint. Raises ContractRevert RegistryNotRegistered /
        RegistryInvalidEndpoint."""
        return self._tx.send("updateEndpoint", account,
                             self.contract.functions.updateEndpoint(endpoint))

    def request_exit(self, account: LocalAccount) -> TxResult:
        """Active -> Exiting (stake withdrawable after exit_delay_s). Raises ContractRevert
        RegistryNotRegistered / RegistryNotActive."""
        return self._tx.send("requestExit", account, self.contract.functions.requestExit())

    def withdraw_stake(self, account: LocalAccount) -> TxResult:
        """Pay out stake + unpaid rewards and leave the registry. Raises ContractRevert
        RegistryNotRegistered / RegistryExitNotReady(exitAt) / MarketTransferFailed."""
        return self._tx.send("withdrawStake", account, self.contract.functions.withdrawStake())

    def withdraw_rewards(self, account: LocalAccount) -> TxResult:
        """Pull credited rewards. Raises ContractRevert RegistryNothingToWithdraw /
        MarketTransferFailed."""
        return self._tx.send("withdrawRewards", account, self.contract.functions.withdrawRewards())

    # ------------------------------------------------------------------ job transactions

    def post_job(
        self,
        account: LocalAccount,
        *,
        dataset_id: bytes,
        query: str,
        committee_size: int,
        threshold: int,
        min_providers: int,
        timeout_s: int,
        payment_wei: int,
        callback_gas_limit: int = 0,
        callback_fee_wei: int | None = None,
    ) -> tuple[int, TxResult]:
        """Post a job escrowing ``payment_wei``; returns (job id from the JobPosted event, tx).

        The committee of ``committee_size`` nodes is drawn later (:meth:`assign_committee`) from
        the beacon round the job joins (``seed_round`` of the job). Raises ContractRevert
        JobPaymentTooLow / JobInvalidQuery / JobInvalidCommitteeSize / JobInvalidThreshold /
        JobInvalidMinProviders / JobInvalidTimeout / BeaconTooFewActiveNodes.

        With ``callback_gas_limit`` > 0 it calls ``postJobWithCallback`` instead: the market
        delivers the result at finalization to ``account``'s ``onMPCResult(jobId, aggregates)``
        with that much gas (meant for contracts, see
        ``contracts/interfaces/IMPCJobConsumer.sol``). The transaction then sends
        ``payment_wei + callback_fee_wei``; the contract charges the fee
        at the gas price of the block it lands in (``jobCallbackFeeWei``) and escrows the rest.
        ``callback_fee_wei`` defaults to the current price plus 25% (the base fee may rise by
        12.5% per block meanwhile); the excess joins the escrow. Extra reverts:
        JobCallbackGasTooHigh / JobPaymentTooLow(sent, minPaymentWei + fee).
        """
        args = (bytes(dataset_id), query, committee_size, threshold, min_providers, timeout_s)
        if callback_gas_limit == 0:
            fn = self.contract.functions.postJob(*args)
            return self._posted(self._tx.send("postJob", account, fn, value=payment_wei))
        if callback_fee_wei is None:
            callback_fee_wei = self.job_callback_fee_wei(callback_gas_limit) * 5 // 4
        fn = self.contract.functions.postJobWithCallback(*args, callback_gas_limit)
        tx = self._tx.send("postJobWithCallback", account, fn,
                           value=payment_wei + callback_fee_wei)
        return self._posted(tx)

    def _posted(self, tx: TxResult) -> tuple[int, TxResult]:
        events = self.contract.events.JobPosted().process_receipt(tx.receipt, errors=DISCARD)
        if len(events) != 1:
            raise RuntimeError(f"{tx.name} {tx.hash}: expected one JobPosted event")
        return int(events[0]["args"]["jobId"]), tx

    def finalize_job(
        self,
        account: LocalAccount,
        job_id: int,
        aggregates: Sequence[int],
        committee: Sequence[str],
        inputs: Sequence[tuple[str, bytes, Sig]],
        signatures: Sequence[tuple[bytes, Sig]],
    ) -> TxResult:
        """Submit a job's result (anyone may; ``account`` only pays the gas).

        Args:
            aggregates: opened, centered-lifted int256 values (1..64).
            committee: the job's committee as posted (ascending).
            inputs: (provider, 32-byte commitment, InputCommitment signature), providers
                strictly ascending — not sorted here.
            signatures: (32-byte transcript root, ResultCommitment signature), signers strictly
                ascending by recovered address — not sorted here.

        For a job posted with a callback the transaction also runs the buyer's ``onMPCResult``
        with the job's callback gas limit (the gas estimate includes it; ``account`` is credited
        the callback fee as rewards); the callback's outcome is in the JobCallback event
        (:meth:`job_callback_events`).

        Raises ContractRevert with one of the errors listed in JobMarket.finalizeJob.
        """
        fn = self.contract.functions.finalizeJob(
            job_id,
            [int(a) for a in aggregates],
            [to_checksum_address(a) for a in committee],
            [(to_checksum_address(p), bytes(c), s.to_tuple()) for p, c, s in inputs],
            [(bytes(root), s.to_tuple()) for root, s in signatures],
        )
        return self._tx.send("finalizeJob", account, fn)

    def reclaim_escrow(self, account: LocalAccount, job_id: int) -> TxResult:
        """Refund an expired job's escrow to its buyer (``account``). Raises ContractRevert
        JobNotBuyer / JobNotOpen / JobDeadlineNotReached / MarketTransferFailed."""
        return self._tx.send(
            "reclaimEscrow", account, self.contract.functions.reclaimEscrow(job_id)
        )

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

    def get_job(self, job_id: int) -> StoredJob:
        """Stored job ``job_id`` (zeros if unknown)."""
        j = self._call(self.contract.functions.getJob(job_id))
        return StoredJob(
            job_id=job_id,
            buyer=Address(to_checksum_address(j[0])),
            escrow_wei=Wei(int(j[1])),
            spec_hash=Bytes32(bytes(j[2])),
            committee_hash=Bytes32(bytes(j[3])),
            deadline=int(j[4]),
            committee_size=int(j[5]),
            threshold=int(j[6]),
            min_providers=int(j[7]),
            status=JobStatus(j[8]),
            provider_count=int(j[9]),
            signer_mask=int(j[10]),
            seed_round=int(j[11]),
            result_hash=bytes(j[12]),
        )

    def job_callback(self, job_id: int) -> tuple[int, int]:
        """(callback gas limit, callback fee still held in wei) of job ``job_id``: limit 0 means
        no callback; the fee drops to 0 once credited to the finalizer or refunded."""
        limit, fee = self._call(self.contract.functions.jobCallback(job_id))
        return int(limit), int(fee)

    def job_callback_fee_wei(self, callback_gas_limit: int) -> int:
        """Callback fee (wei) ``postJobWithCallback`` charges now for ``callback_gas_limit``
        gas: limit x (2 x base fee + 1 gwei), on top of the escrow."""
        return int(self._call(self.contract.functions.jobCallbackFeeWei(callback_gas_limit)))

    def job_count(self) -> int:
        """Number of jobs ever posted (ids are 1..job_count)."""
        return int(self._call(self.contract.functions.jobCount()))

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

    # ------------------------------------------------------------------ events

    def _events(self, name: str, from_block: int, to_block: int | str) -> list[dict[str, Any]]:
        out = self._logs.fetch(from_block, to_block, name)
        for entry in out:
            del entry["event"]
        return out

    def job_posted_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobPosted logs as dicts: job_id, buyer, dataset_id, query, committee, threshold,
        min_providers, deadline, escrow_wei, block_number, tx_hash, log_index."""
        return self._events("JobPosted", from_block, to_block)

    def job_finalized_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobFinalized logs as dicts: job_id, result_hash, proof_hash, inputs_hash,
        provider_count, signer_mask, reward_per_signer_wei, aggregates, block_number, tx_hash,
        log_index."""
        return self._events("JobFinalized", from_block, to_block)

    def job_refunded_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobRefunded logs as dicts: job_id, buyer, amount_wei, block_number, tx_hash,
        log_index."""
        return self._events("JobRefunded", from_block, to_block)

    def job_callback_requested_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobCallbackRequested logs as dicts: job_id, callback_gas_limit, fee_wei,
        block_number, tx_hash, log_index."""
        return self._events("JobCallbackRequested", from_block, to_block)

    def job_callback_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobCallback logs as dicts: job_id, finalizer, fee_wei, ok (False: the consumer's
        callback reverted or ran out of gas), block_number, tx_hash, log_index."""
        return self._events("JobCallback", from_block, to_block)

    def node_registered_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """NodeRegistered logs as dicts: node, stake_wei, enc_key, endpoint, block_number,
        tx_hash, log_index."""
        return self._events("NodeRegistered", from_block, to_block)


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
    client = MarketClient(w3, cast(str, address), abi)
    client._deployment = tx
    return client
