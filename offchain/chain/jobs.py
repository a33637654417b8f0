"""Jobs on chain (``contracts/core/JobMarket.sol``): the stored job and its one decoder
(:func:`decode_stored_job`, also used by the auditor), ``postJob`` calldata, and the job side of
:class:`~offchain.chain.market.MarketClient` (:class:`JobCalls`: post, finalize, reclaim, views
and job events).

Units: amounts in wei (int), times unix seconds, durations seconds, hashes 32-byte ``bytes``,
addresses checksum strings. Reverts surface as ContractRevert with the custom error's name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.logs import DISCARD

from offchain.chain.client import ContractClient
from offchain.chain.tx import TxResult
from offchain.encoding.eip712 import Sig
from offchain.types import Address, Bytes32, JobStatus, Wei

__all__ = ["POST_JOB_SELECTOR", "JobCalls", "StoredJob", "decode_post_job", "decode_stored_job",
           "encode_post_job"]


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


def decode_stored_job(job_id: int, raw: Sequence[Any]) -> StoredJob:
    """The :class:`StoredJob` of ``getJob(job_id)``'s 13-field return tuple ``raw`` (as web3
    returns it: buyer, escrowWei, specHash, committeeHash, deadline, committeeSize, threshold,
    minProviders, status, providerCount, signerMask, seedRound, resultHash).

    Raises ValueError if ``raw`` has another length or its status is not a
    :class:`~offchain.types.JobStatus` (the contract is not an MPCMarket).
    """
    if len(raw) != 13:
        raise ValueError(f"getJob returned {len(raw)} fields, expected 13")
    return StoredJob(
        job_id=job_id,
        buyer=Address(to_checksum_address(raw[0])),
        escrow_wei=Wei(int(raw[1])),
        spec_hash=Bytes32(bytes(raw[2])),
        committee_hash=Bytes32(bytes(raw[3])),
        deadline=int(raw[4]),
        committee_size=int(raw[5]),
        threshold=int(raw[6]),
        min_providers=int(raw[7]),
        status=JobStatus(raw[8]),
        provider_count=int(raw[9]),
        signer_mask=int(raw[10]),
        seed_round=int(raw[11]),
        result_hash=bytes(raw[12]),
    )


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


class JobCalls(ContractClient):
    """The job side of the market: transactions, views and events (mixed into MarketClient)."""

    # ------------------------------------------------------------------ transactions

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
            return self._posted(self.sender.send("postJob", account, fn, value=payment_wei))
        if callback_fee_wei is None:
            callback_fee_wei = self.job_callback_fee_wei(callback_gas_limit) * 5 // 4
        fn = self.contract.functions.postJobWithCallback(*args, callback_gas_limit)
        tx = self.sender.send("postJobWithCallback", account, fn,
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
        return self.sender.send("finalizeJob", account, fn)

    def reclaim_escrow(self, account: LocalAccount, job_id: int) -> TxResult:
        """Refund an expired job's escrow to its buyer (``account``). Raises ContractRevert
        JobNotBuyer / JobNotOpen / JobDeadlineNotReached / MarketTransferFailed."""
        return self.sender.send(
            "reclaimEscrow", account, self.contract.functions.reclaimEscrow(job_id)
        )

    # ------------------------------------------------------------------ views

    def get_job(self, job_id: int) -> StoredJob:
        """Stored job ``job_id`` (zeros if unknown; :func:`decode_stored_job`)."""
        return decode_stored_job(job_id, self._call(self.contract.functions.getJob(job_id)))

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

    # ------------------------------------------------------------------ events

    def job_posted_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobPosted logs as dicts: job_id, buyer, dataset_id, query, committee, threshold,
        min_providers, deadline, escrow_wei, block_number, tx_hash, log_index."""
        return self.events("JobPosted", from_block, to_block)

    def job_finalized_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobFinalized logs as dicts: job_id, result_hash, proof_hash, inputs_hash,
        provider_count, signer_mask, reward_per_signer_wei, aggregates, block_number, tx_hash,
        log_index."""
        return self.events("JobFinalized", from_block, to_block)

    def job_refunded_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobRefunded logs as dicts: job_id, buyer, amount_wei, block_number, tx_hash,
        log_index."""
        return self.events("JobRefunded", from_block, to_block)

    def job_callback_requested_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobCallbackRequested logs as dicts: job_id, callback_gas_limit, fee_wei,
        block_number, tx_hash, log_index."""
        return self.events("JobCallbackRequested", from_block, to_block)

    def job_callback_events(
        self, from_block: int = 0, to_block: int | str = "latest"
    ) -> list[dict[str, Any]]:
        """JobCallback logs as dicts: job_id, finalizer, fee_wei, ok (False: the consumer's
        callback reverted or ran out of gas), block_number, tx_hash, log_index."""
        return self.events("JobCallback", from_block, to_block)
