"""The one set of pydantic field types of the package's messages: what a peer payload, an
envelope header or an API body may hold, each checked once.

* :data:`Address`: a ``0x`` EIP-55 checksum address, exactly as a node writes it (strict:
  :func:`~offchain.encoding.eip712.require_checksum_address`; any other spelling is malformed).
* :data:`AddressIn`: an address typed by a user: all lower or all upper case, or mixed case
  with a valid checksum; normalised to the checksum form
  (:func:`~offchain.encoding.eip712.checksum_address`).
* :data:`Hash32`: ``0x`` and 64 hex digits (a 32-byte hash, any case).
* :data:`FieldHex`: a BN254 scalar field element in ``[0, R)`` as ``0x`` hex of at most
  32 bytes.
* :data:`CoordHex`: a BN254 base-field coordinate in ``[0, P)``, ``0x`` hex of at most 32 bytes
  (the on-curve check is :func:`offchain.crypto.pedersen.decode_point`'s).
* :data:`HexBytes`: lower-case ``0x`` hex of whole bytes (length bounds added by the user).
* :class:`SigModel`: an ECDSA signature ``{r, s, v}`` (32-byte hex words, v in {27, 28});
  :meth:`SigModel.to_sig` gives the :class:`~offchain.encoding.eip712.Sig` that
  :func:`~offchain.encoding.eip712.recover_signer` checks (low s is checked there, not here).

A value that breaks a rule raises ``pydantic.ValidationError`` from the model that holds it
(its message is the ``ValueError`` text below); the wire modules turn that into their own
errors (:class:`~offchain.wire.job_payloads.PayloadError`,
:class:`~offchain.wire.envelope.Malformed`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from offchain.crypto.field import R
from offchain.crypto.pedersen import P
from offchain.encoding.eip712 import Sig, checksum_address, require_checksum_address

__all__ = [
    "Address",
    "AddressIn",
    "CoordHex",
    "FieldHex",
    "Hash32",
    "HexBytes",
    "SigModel",
]


def _below(bound: int, what: str, bound_name: str) -> AfterValidator:
    def check(v: str) -> str:
        if not v.startswith("0x") or len(v) > 66:
            raise ValueError(f"{what} must be 0x-hex of at most 32 bytes")
        if int(v, 16) >= bound:
            raise ValueError(f"{what} not below the {bound_name}")
        return v

    return AfterValidator(check)


def _hash32(v: str) -> str:
    if not v.startswith("0x") or len(v) != 66:
        raise ValueError("expected 0x + 64 hex digits")
    int(v, 16)
    return v


Address = Annotated[str, AfterValidator(require_checksum_address)]
"""A strict EIP-55 address (peer messages, envelope headers)."""
AddressIn = Annotated[str, AfterValidator(checksum_address)]
"""A user's address, any valid spelling, normalised to EIP-55 (API requests, manifests)."""
Hash32 = Annotated[str, AfterValidator(_hash32)]
"""A 32-byte hash as ``0x`` + 64 hex digits."""
FieldHex = Annotated[str, _below(R, "field element", "BN254 scalar modulus")]
"""An element of F_R (BN254 scalar field) as ``0x`` hex."""
CoordHex = Annotated[str, _below(P, "coordinate", "BN254 base prime")]
"""A BN254 base-field coordinate (below P) as ``0x`` hex."""
HexBytes = Annotated[str, Field(pattern=r"^0x(?:[0-9a-f]{2})*$")]
"""Lower-case ``0x`` hex of whole bytes."""


class SigModel(BaseModel):
    """An ECDSA signature (r, s, v): r and s as 32-byte ``0x`` hex words, v in {27, 28}.
    Strict; its canonical form (low s, r in range) is checked on recovery, by
    :func:`~offchain.encoding.eip712.recover_signer`."""

    model_config = ConfigDict(extra="forbid", strict=True)
    r: Hash32
    s: Hash32
    v: int = Field(ge=27, le=28)

    def to_sig(self) -> Sig:
        """The :class:`~offchain.encoding.eip712.Sig` of these words."""
        return Sig(bytes.fromhex(self.r[2:]), bytes.fromhex(self.s[2:]), self.v)

    @classmethod
    def of(cls, sig: Sig) -> SigModel:
        """The model of ``sig`` (lower-case hex)."""
        return cls(r="0x" + sig.r.hex(), s="0x" + sig.s.hex(), v=sig.v)
