"""The EIP-712 building blocks shared by the market's and the beacon's typed data.

Bottom layer: no network, no web3 (only eth-account, eth-utils).

* :class:`Sig`: an ECDSA signature as the contracts' ``struct Sig { bytes32 r; bytes32 s;
  uint8 v; }``.
* :func:`market_domain`: the one EIP-712 domain (name "MPCMarket", version "1", chainId,
  verifyingContract = the market), which EIP-5267 ``eip712Domain()`` reports.
* The value checks: :func:`checksum_address` (lenient: user input), :func:`require_checksum_address`
  (strict: peer messages), :func:`check_bytes32`, :func:`check_uint256`.
* :func:`typed_digest`, :func:`sign_typed` and :func:`recover_signer`: the one low-s / v /
  recover check, the rules of OpenZeppelin's ``ECDSA.tryRecover`` (no hand-rolled ECDSA:
  eth-account signs and recovers).

Sources: EIP-712 (typed structured data), EIP-191 (version bytes 0x01 and 0x45), EIP-55
(checksum addresses), EIP-2 / SEC 1 (low s), EIP-5267 (domain retrieval).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import SignableMessage
from eth_account.signers.local import LocalAccount
from eth_utils.address import is_checksum_address, to_checksum_address
from eth_utils.crypto import keccak

from offchain.errors import MarketError

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "SECP256K1_N",
    "AddressError",
    "Sig",
    "SignatureError",
    "check_bytes32",
    "check_uint256",
    "checksum_address",
    "market_domain",
    "recover_signer",
    "require_checksum_address",
    "sign_typed",
    "typed_digest",
]

DOMAIN_NAME = "MPCMarket"
DOMAIN_VERSION = "1"

#: Order of the secp256k1 group; low-s means s <= SECP256K1_N // 2.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_UINT256_MAX = 2**256 - 1


@dataclass(frozen=True)
class Sig:
    """An ECDSA signature as the contract's ``struct Sig { bytes32 r; bytes32 s; uint8 v; }``.

    Attributes:
        r: 32 bytes, big-endian.
        s: 32 bytes, big-endian (low-s for a valid signature).
        v: recovery id, 27 or 28.
    """

    r: bytes
    s: bytes
    v: int

    def to_tuple(self) -> tuple[bytes, bytes, int]:
        """``(r, s, v)``: the ABI tuple of ``struct Sig``."""
        return (self.r, self.s, self.v)

    def to_bytes(self) -> bytes:
        """65-byte ``r || s || v`` encoding."""
        return self.r + self.s + bytes([self.v])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Sig:
        """Parse 65-byte ``r || s || v``; raises ValueError on another length."""
        if len(raw) != 65:
            raise ValueError(f"a signature is 65 bytes, got {len(raw)}")
        return cls(r=bytes(raw[:32]), s=bytes(raw[32:64]), v=raw[64])


# ----------------------------------------------------------------------------- validation


class AddressError(MarketError, ValueError):
    """A value is not an Ethereum address in the form required (see :func:`checksum_address`
    and :func:`require_checksum_address`)."""


class SignatureError(MarketError, ValueError):
    """A signature is malformed, not canonical (r or s out of range, high s, v not 27/28) or
    does not recover to any address (:func:`recover_signer`)."""


def checksum_address(value: object) -> str:
    """``value`` in EIP-55 checksum form.

    Accepts a ``str`` of ``0x`` and 40 hex digits: all lower case, all upper case, or mixed
    case with a valid EIP-55 checksum. Raises :class:`AddressError` (a ValueError) otherwise,
    in particular for a mixed-case address whose checksum is wrong (a typo, not a new address).
    The one lenient address check of the package: user input (API requests, CLI, manifests) and
    the arguments of this module go through it; peer messages use the strict
    :func:`require_checksum_address`.
    """
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise AddressError("not an address (0x and 40 hex digits)")
    digits = value[2:]
    if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
        raise AddressError("mixed-case address with an invalid EIP-55 checksum")
    return str(to_checksum_address(value))


def require_checksum_address(value: object) -> str:
    """``value`` unchanged if it already is a ``0x``-prefixed EIP-55 checksum address (the only
    encoding a node puts on the wire, so any other is a malformed message). Raises
    :class:`AddressError` (a ValueError) otherwise."""
    if not isinstance(value, str) or not is_checksum_address(value):
        raise AddressError("must be a 0x-prefixed EIP-55 checksummed address")
    return value


def check_bytes32(value: bytes, what: str) -> bytes:
    """``value`` as ``bytes`` if it is 32 ``bytes``/``bytearray``; ValueError naming ``what``
    otherwise."""
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes")
    return bytes(value)


def check_uint256(value: int, what: str) -> int:
    """``value`` if it is an ``int`` (not a bool) in ``[0, 2**256)``; ValueError naming ``what``
    otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _UINT256_MAX:
        raise ValueError(f"{what} must be a uint256, got {value!r}")
    return value


# ------------------------------------------------------------------- domain and signatures


def market_domain(chain_id: int, contract: str) -> dict[str, Any]:
    """EIP-712 domain of the market contract at ``contract`` on chain ``chain_id``.

    Returns ``{"name": "MPCMarket", "version": "1", "chainId": chain_id,
    "verifyingContract": <checksum address>}`` (the fields EIP-5267 ``eip712Domain()`` reports,
    fields byte 0x0f). Raises ValueError for a bad chain id or address.
    """
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id <= 0:
        raise ValueError(f"chain id must be a positive int, got {chain_id!r}")
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": checksum_address(contract),
    }


def typed_digest(msg: SignableMessage) -> bytes:
    """The 32-byte digest an EIP-191 message signs: ``keccak256(0x19 || version || header ||
    body)``; for EIP-712 (version 0x01) ``keccak256(0x19 0x01 || domainSeparator ||
    hashStruct(message))``, what the contract's ``_hashTypedDataV4`` returns."""
    return keccak(b"\x19" + msg.version + msg.header + msg.body)


def sign_typed(account: LocalAccount, msg: SignableMessage) -> Sig:
    """``account``'s signature over ``msg`` (eth-account; always low s and v in {27, 28})."""
    signed = account.sign_message(msg)
    return Sig(r=signed.r.to_bytes(32, "big"), s=signed.s.to_bytes(32, "big"), v=signed.v)


def recover_signer(msg: SignableMessage, sig: Sig) -> str:
    """Checksum address whose key signed ``msg`` (any EIP-191 message: EIP-712 typed data or an
    ``encode_defunct`` personal message) with ``sig``.

    The one signature check of the package, with the contract's rules (OpenZeppelin
    ``ECDSA.tryRecover``): r and s 32 bytes each, ``0 < r < N``, ``0 < s <= N // 2`` (low s: the
    malleable high-s twin is rejected although eth-account would accept it), v in {27, 28}.
    Raises :class:`SignatureError` (a ValueError) if a rule is broken (the message then says
    "not canonical") or the point does not recover. A well-formed signature over other data
    recovers to another address, so the caller compares the result with the expected signer.
    """
    if len(sig.r) != 32 or len(sig.s) != 32:
        raise SignatureError("signature is not canonical: r and s must be 32 bytes each")
    if sig.v not in (27, 28):
        raise SignatureError(f"signature is not canonical: v must be 27 or 28, got {sig.v}")
    r = int.from_bytes(sig.r, "big")
    s = int.from_bytes(sig.s, "big")
    if not 0 < r < SECP256K1_N:
        raise SignatureError("signature is not canonical: r out of range")
    if not 0 < s <= SECP256K1_N // 2:
        raise SignatureError("signature is not canonical: s is zero or high (malleable "
                             "signature; the contract rejects it)")
    try:
        signer = Account.recover_message(msg, vrs=(sig.v, r, s))
    except Exception as exc:  # eth-keys raises BadSignature/ValidationError on bad points
        raise SignatureError(f"signature does not recover: {exc}") from exc
    return str(to_checksum_address(signer))
