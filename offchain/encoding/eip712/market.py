"""EIP-712 typed data of the market (signed by providers and committee members) and the
hashes derived from a job that the MPCMarket contract recomputes.

Bottom layer: no network, no web3 (only eth-account, eth-abi, eth-utils).

Sources:
  * EIP-712 (typed structured data hashing and signing): digest =
    keccak256(0x19 0x01 || domainSeparator || hashStruct(message)); produced here by eth-account's
    ``encode_typed_data``, signed with ``LocalAccount.sign_message`` and recovered with
    ``Account.recover_message`` (no hand-rolled ECDSA), through
    :mod:`offchain.encoding.eip712.base`.
  * The contract side: ``contracts/core/JobMarket.sol`` (OpenZeppelin EIP712 + ECDSA.tryRecover).

Domain: :func:`~offchain.encoding.eip712.base.market_domain`. Types:
  ``InputCommitment(uint256 jobId,bytes32 commitment)``  signed by a data provider;
  ``ResultCommitment(uint256 jobId,bytes32 resultHash,bytes32 inputsHash,bytes32 transcriptRoot)``
  signed by a committee member.

Signatures are (r, s, v) with v in {27, 28} and low s (s <= secp256k1n / 2), as
OpenZeppelin's ``ECDSA.tryRecover`` requires; eth-account always produces such signatures.
All hashes are 32-byte ``bytes``; addresses are accepted as hex strings and returned checksummed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.messages import SignableMessage, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from offchain.encoding.eip712.base import (
    Sig,
    check_bytes32,
    check_uint256,
    checksum_address,
    recover_signer,
    sign_typed,
    typed_digest,
)

__all__ = [
    "INPUT_COMMITMENT_TYPES",
    "RESULT_COMMITMENT_TYPES",
    "committee_hash",
    "dataset_id",
    "input_commitment_digest",
    "inputs_hash",
    "proof_hash",
    "recover_input_signer",
    "recover_result_signer",
    "result_commitment_digest",
    "result_hash",
    "sign_input_commitment",
    "sign_result_commitment",
    "spec_hash",
]

INPUT_COMMITMENT_TYPES: dict[str, list[dict[str, str]]] = {
    "InputCommitment": [
        {"name": "jobId", "type": "uint256"},
        {"name": "commitment", "type": "bytes32"},
    ]
}
RESULT_COMMITMENT_TYPES: dict[str, list[dict[str, str]]] = {
    "ResultCommitment": [
        {"name": "jobId", "type": "uint256"},
        {"name": "resultHash", "type": "bytes32"},
        {"name": "inputsHash", "type": "bytes32"},
        {"name": "transcriptRoot", "type": "bytes32"},
    ]
}

_ZERO32 = bytes(32)
_INT256_MIN = -(2**255)
_INT256_MAX = 2**255 - 1


def _input_message(domain: dict[str, Any], job_id: int, commitment: bytes) -> SignableMessage:
    return encode_typed_data(
        domain_data=domain,
        message_types=INPUT_COMMITMENT_TYPES,
        message_data={
            "jobId": check_uint256(job_id, "job_id"),
            "commitment": check_bytes32(commitment, "commitment"),
        },
    )


def _result_message(
    domain: dict[str, Any],
    job_id: int,
    result_hash_: bytes,
    inputs_hash_: bytes,
    transcript_root: bytes,
) -> SignableMessage:
    return encode_typed_data(
        domain_data=domain,
        message_types=RESULT_COMMITMENT_TYPES,
        message_data={
            "jobId": check_uint256(job_id, "job_id"),
            "resultHash": check_bytes32(result_hash_, "result_hash"),
            "inputsHash": check_bytes32(inputs_hash_, "inputs_hash"),
            "transcriptRoot": check_bytes32(transcript_root, "transcript_root"),
        },
    )


# ----------------------------------------------------------------------------- InputCommitment


def input_commitment_digest(domain: dict[str, Any], job_id: int, commitment: bytes) -> bytes:
    """32-byte EIP-712 digest of ``InputCommitment(jobId, commitment)``.

    Equals the contract's ``hashInputCommitment(jobId, commitment)``. Raises ValueError for a
    bad job id or a commitment that is not 32 bytes.
    """
    return typed_digest(_input_message(domain, job_id, commitment))


def sign_input_commitment(
    account: LocalAccount, domain: dict[str, Any], job_id: int, commitment: bytes
) -> Sig:
    """A provider's EIP-712 signature over ``InputCommitment(job_id, commitment)``.

    ``commitment`` is 32 bytes. Raises ValueError on malformed arguments.
    """
    return sign_typed(account, _input_message(domain, job_id, commitment))


def recover_input_signer(domain: dict[str, Any], job_id: int, commitment: bytes, sig: Sig) -> str:
    """Checksum address that signed ``InputCommitment(job_id, commitment)`` with ``sig``.

    Raises ValueError for a malformed signature, v not in {27, 28}, or a high s (which the
    contract rejects). A well-formed signature over other data recovers to another address.
    """
    return recover_signer(_input_message(domain, job_id, commitment), sig)


# ----------------------------------------------------------------------------- ResultCommitment


def result_commitment_digest(
    domain: dict[str, Any],
    job_id: int,
    result_hash: bytes,
    inputs_hash: bytes,
    transcript_root: bytes,
) -> bytes:
    """32-byte EIP-712 digest of ``ResultCommitment(jobId, resultHash, inputsHash,
    transcriptRoot)``; equals the contract's ``hashResultCommitment``. Raises ValueError on
    malformed arguments."""
    return typed_digest(_result_message(domain, job_id, result_hash, inputs_hash, transcript_root))


def sign_result_commitment(
    account: LocalAccount,
    domain: dict[str, Any],
    job_id: int,
    result_hash: bytes,
    inputs_hash: bytes,
    transcript_root: bytes,
) -> Sig:
    """A committee member's EIP-712 signature over ``ResultCommitment``.

    ``result_hash`` = :func:`result_hash` of the opened aggregates, ``inputs_hash`` =
    :func:`inputs_hash` of the contributing providers, ``transcript_root`` = the member's own
    transcript Merkle root (all 32 bytes). Raises ValueError on malformed arguments.
    """
    return sign_typed(
        account, _result_message(domain, job_id, result_hash, inputs_hash, transcript_root)
    )


def recover_result_signer(
    domain: dict[str, Any],
    job_id: int,
    result_hash: bytes,
    inputs_hash: bytes,
    transcript_root: bytes,
    sig: Sig,
) -> str:
    """Checksum address that signed the ``ResultCommitment``; ValueError as in
    :func:`recover_input_signer`."""
    return recover_signer(
        _result_message(domain, job_id, result_hash, inputs_hash, transcript_root), sig
    )


# ----------------------------------------------------------------------------- derived hashes


def result_hash(aggregates: Sequence[int]) -> bytes:
    """``keccak256(abi.encodePacked(int256[] aggregates))``: keccak of the concatenated 32-byte
    big-endian two's-complement words of the opened, centered-lifted values.

    Raises ValueError if a value is not an int in the int256 range. (The contract additionally
    requires 1..64 values.)
    """
    words = []
    for a in aggregates:
        if isinstance(a, bool) or not isinstance(a, int) or not _INT256_MIN <= a <= _INT256_MAX:
            raise ValueError(f"aggregate out of int256 range: {a!r}")
        words.append(a.to_bytes(32, "big", signed=True))
    return keccak(b"".join(words))


def _chain(pairs: Sequence[tuple[str, bytes]], what: str) -> bytes:
    h = _ZERO32
    prev = -1
    for addr, value in pairs:
        checksum = checksum_address(addr)
        as_int = int(checksum, 16)
        if as_int <= prev:
            raise ValueError(f"{what} addresses must be strictly ascending ({checksum})")
        prev = as_int
        h = keccak(
            abi_encode(["bytes32", "address", "bytes32"], [h, checksum, check_bytes32(value, what)])
        )
    return h


def inputs_hash(pairs: Sequence[tuple[str, bytes]]) -> bytes:
    """Hash chain over the contributing providers' commitments:
    ``h0 = 0x00..00; h_i = keccak256(abi.encode(h_{i-1}, provider_i, commitment_i))``.

    ``pairs`` = (provider address, 32-byte commitment) in strictly ascending address order
    (ValueError otherwise, or for a malformed address/commitment). Empty input gives 32 zero bytes.
    """
    return _chain(pairs, "provider")


def proof_hash(pairs: Sequence[tuple[str, bytes]]) -> bytes:
    """Hash chain over the counted committee signers' transcript roots:
    ``p0 = 0x00..00; p_i = keccak256(abi.encode(p_{i-1}, signer_i, transcriptRoot_i))``.

    ``pairs`` = (signer address, 32-byte transcript root), strictly ascending addresses
    (ValueError otherwise).
    """
    return _chain(pairs, "signer")


def committee_hash(addresses: Sequence[str]) -> bytes:
    """``keccak256(abi.encodePacked(address[] committee))`` = keccak of the addresses each
    left-padded to 32 bytes, in the given order (the contract stores it for the ascending
    committee). Raises ValueError for a malformed address."""
    return keccak(b"".join(bytes(12) + bytes.fromhex(checksum_address(a)[2:]) for a in addresses))


def spec_hash(dataset_id_: bytes, query: str) -> bytes:
    """``keccak256(abi.encode(datasetId, keccak256(bytes(query))))`` with the query UTF-8 encoded.
    Raises ValueError if ``dataset_id_`` is not 32 bytes."""
    return keccak(
        abi_encode(
            ["bytes32", "bytes32"],
            [check_bytes32(dataset_id_, "dataset_id"), keccak(query.encode("utf-8"))],
        )
    )


def dataset_id(name: str) -> bytes:
    """``keccak256(utf8(name))``: the 32-byte on-chain id of a dataset."""
    return keccak(name.encode("utf-8"))
