"""EIP-712 messages of the randomness beacon (same domain as the market: "MPCMarket", "1").

* ``BeaconCommit(uint256 roundId, bytes32 participantsHash)`` — signed by every member of a
  round's participant set Q; the contract's ``commitRound`` checks all of them
  (``hashBeaconCommit`` returns the digest). ``participantsHash`` =
  ``keccak256(abi.encode(address[] participants, bytes32[] commitments))``.
* ``BeaconShare(uint256 roundId, address recipient, bytes32 commitment, uint256 shareSecret,
  uint256 shareSalt)`` — a dealer's signature on the Pedersen share it dealt to ``recipient``
  under its commitment ``commitment``. It never goes on chain in the honest case; it makes a
  complaint *provable*: a recipient holding a signed share that fails the Pedersen check can show
  it to anybody, who then knows the dealer cheated (the signature rules out a framed dealer).

Sources: EIP-712 (typed structured data), EIP-191 (version byte 0x01). Signing and recovery use
eth-account; signatures are (r, s, v) with v in {27, 28} and low s, as the contract requires.
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
    "BEACON_COMMIT_TYPES",
    "BEACON_SHARE_TYPES",
    "beacon_commit_digest",
    "participants_hash",
    "recover_beacon_commit_signer",
    "recover_share_signer",
    "sign_beacon_commit",
    "sign_share",
]

BEACON_COMMIT_TYPES: dict[str, list[dict[str, str]]] = {
    "BeaconCommit": [
        {"name": "roundId", "type": "uint256"},
        {"name": "participantsHash", "type": "bytes32"},
    ]
}
BEACON_SHARE_TYPES: dict[str, list[dict[str, str]]] = {
    "BeaconShare": [
        {"name": "roundId", "type": "uint256"},
        {"name": "recipient", "type": "address"},
        {"name": "commitment", "type": "bytes32"},
        {"name": "shareSecret", "type": "uint256"},
        {"name": "shareSalt", "type": "uint256"},
    ]
}


def participants_hash(participants: Sequence[str], commitments: Sequence[bytes]) -> bytes:
    """``keccak256(abi.encode(address[] participants, bytes32[] commitments))`` (32 bytes), as
    the contract computes it over Q. Raises ValueError for mismatched lengths, a malformed
    address or a commitment that is not 32 bytes."""
    if len(participants) != len(commitments):
        raise ValueError("participants and commitments differ in length")
    return keccak(abi_encode(
        ["address[]", "bytes32[]"],
        [[checksum_address(p) for p in participants],
         [check_bytes32(c, "commitment") for c in commitments]]))


def _commit_message(domain: dict[str, Any], round_id: int, p_hash: bytes) -> SignableMessage:
    return encode_typed_data(
        domain_data=domain, message_types=BEACON_COMMIT_TYPES,
        message_data={"roundId": check_uint256(round_id, "round_id"),
                      "participantsHash": check_bytes32(p_hash, "participants_hash")})


def beacon_commit_digest(domain: dict[str, Any], round_id: int, p_hash: bytes) -> bytes:
    """32-byte digest of ``BeaconCommit(round_id, p_hash)``; equals ``hashBeaconCommit``."""
    return typed_digest(_commit_message(domain, round_id, p_hash))


def sign_beacon_commit(account: LocalAccount, domain: dict[str, Any], round_id: int,
                       p_hash: bytes) -> Sig:
    """A participant's signature committing round ``round_id`` to the participant set whose
    :func:`participants_hash` is ``p_hash``. Raises ValueError on malformed arguments."""
    return sign_typed(account, _commit_message(domain, round_id, p_hash))


def recover_beacon_commit_signer(domain: dict[str, Any], round_id: int, p_hash: bytes,
                                 sig: Sig) -> str:
    """Checksum address that signed ``BeaconCommit(round_id, p_hash)``. Raises ValueError for a
    malformed or high-s signature."""
    return recover_signer(_commit_message(domain, round_id, p_hash), sig)


def _share_message(domain: dict[str, Any], round_id: int, recipient: str, commitment: bytes,
                   share_secret: int, share_salt: int) -> SignableMessage:
    return encode_typed_data(
        domain_data=domain, message_types=BEACON_SHARE_TYPES,
        message_data={"roundId": check_uint256(round_id, "round_id"),
                      "recipient": checksum_address(recipient),
                      "commitment": check_bytes32(commitment, "commitment"),
                      "shareSecret": check_uint256(share_secret, "share_secret"),
                      "shareSalt": check_uint256(share_salt, "share_salt")})


def sign_share(account: LocalAccount, domain: dict[str, Any], round_id: int, recipient: str,
               commitment: bytes, share_secret: int, share_salt: int) -> Sig:
    """A dealer's signature on the share (f(x), g(x)) it deals to ``recipient``."""
    return sign_typed(account, _share_message(domain, round_id, recipient, commitment,
                                              share_secret, share_salt))


def recover_share_signer(domain: dict[str, Any], round_id: int, recipient: str,
                         commitment: bytes, share_secret: int, share_salt: int,
                         sig: Sig) -> str:
    """Checksum address that signed the BeaconShare; ValueError for a malformed signature."""
    return recover_signer(_share_message(domain, round_id, recipient, commitment, share_secret,
                                   share_salt), sig)
