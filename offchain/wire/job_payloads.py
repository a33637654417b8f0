"""Plaintext payloads of the job protocol's peer messages, validated strictly on receipt.

Every payload travels inside an envelope (``offchain.wire.envelope``) that is encrypted to the
recipient's registered X25519 key and signed by the sender's Ethereum key; the envelope header
carries the chain, contract, job, kind, sender and recipient. These models validate what is inside:
field elements in [0, R), 32-byte hashes, checksum addresses, ECDSA signature parts.

Kinds, in protocol order (all rounds are independent of the number of providers):

- ``share``     provider -> committee member: one Shamir share of the provider's local aggregate
                vector, plus its signed EIP-712 InputCommitment.
- ``decline``   provider -> committee member: "I contribute nothing to this job" (no such dataset,
                or the query does not fit my data), so members need not wait for a timeout.
- ``received``  member -> member: which (provider, input commitment) pairs it received.
- ``agree``     member -> member: the hash of the input set S it will open over.
- ``open``      member -> member: its share of the sum over the agreed providers.
- ``signature`` member -> member: its EIP-712 ResultCommitment signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

from eth_utils.address import is_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from offchain.crypto.field import R
from offchain.encoding.eip712 import Sig
from offchain.errors import MarketError
from offchain.types import JOB_KINDS, MessageKind

MAX_VECTOR = 64


class PayloadError(MarketError, ValueError):
    """A decrypted payload does not have the shape its kind requires."""


def _field_element(v: str) -> str:
    if not v.startswith("0x") or len(v) > 66:
        raise ValueError("field element must be 0x-hex of at most 32 bytes")
    if int(v, 16) >= R:
        raise ValueError("field element not below the BN254 scalar modulus")
    return v


def _hash32(v: str) -> str:
    if not v.startswith("0x") or len(v) != 66:
        raise ValueError("expected 0x + 64 hex digits")
    int(v, 16)
    return v


def _address(v: str) -> str:
    if not is_checksum_address(v):
        raise ValueError("expected a checksum address")
    return v


FieldHex = Annotated[str, AfterValidator(_field_element)]
Hash32 = Annotated[str, AfterValidator(_hash32)]
Address = Annotated[str, AfterValidator(_address)]


class SigModel(BaseModel):
    """An ECDSA signature (r, s, v) as 0x-hex words and v in {27, 28}."""

    model_config = ConfigDict(extra="forbid", strict=True)
    r: Hash32
    s: Hash32
    v: int = Field(ge=27, le=28)

    def to_sig(self) -> Sig:
        return Sig(bytes.fromhex(self.r[2:]), bytes.fromhex(self.s[2:]), self.v)

    @classmethod
    def of(cls, sig: Sig) -> SigModel:
        return cls(r="0x" + sig.r.hex(), s="0x" + sig.s.hex(), v=sig.v)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SharePayload(_Payload):
    shares: list[FieldHex] = Field(min_length=1, max_length=MAX_VECTOR)
    commitment: Hash32
    commitment_sig: SigModel


class DeclinePayload(_Payload):
    reason: str = Field(max_length=200)


class ReceivedPayload(_Payload):
    inputs: list[tuple[Address, Hash32]] = Field(max_length=4096)


class AgreePayload(_Payload):
    inputs_hash: Hash32


class OpenPayload(_Payload):
    inputs_hash: Hash32
    sum_shares: list[FieldHex] = Field(min_length=1, max_length=MAX_VECTOR)


class SignaturePayload(_Payload):
    result_hash: Hash32
    inputs_hash: Hash32
    transcript_root: Hash32
    sig: SigModel


PAYLOADS: dict[str, type[_Payload]] = {
    MessageKind.SHARE: SharePayload,
    MessageKind.DECLINE: DeclinePayload,
    MessageKind.RECEIVED: ReceivedPayload,
    MessageKind.AGREE: AgreePayload,
    MessageKind.OPEN: OpenPayload,
    MessageKind.SIGNATURE: SignaturePayload,
}
"""The payload model of each job-protocol kind (:data:`offchain.types.JOB_KINDS`)."""

if tuple(PAYLOADS) != JOB_KINDS:
    raise RuntimeError("PAYLOADS must map exactly the job kinds of offchain.types.KIND_RULES")


def encode_payload(payload: _Payload) -> bytes:
    """Canonical JSON bytes of a payload."""
    return json.dumps(payload.model_dump(mode="json"), separators=(",", ":"),
                      sort_keys=True).encode()


def decode_payload(kind: str, data: bytes,
                   payloads: Mapping[str, type[_Payload]] | None = None) -> Any:
    """Parse and validate the payload of ``kind`` (looked up in ``payloads``, default the job
    protocol's). Raises PayloadError with the reason."""
    model = (PAYLOADS if payloads is None else payloads).get(kind)
    if model is None:
        raise PayloadError(f"unknown message kind {kind!r}")
    try:
        return model.model_validate_json(data)
    except (ValidationError, UnicodeDecodeError) as exc:
        raise PayloadError(f"bad {kind} payload: {exc}") from exc


def to_hex(x: int) -> str:
    """A field element as 0x-hex."""
    return hex(x)


def h32(b: bytes) -> str:
    """32 bytes as 0x-hex."""
    return "0x" + b.hex()
