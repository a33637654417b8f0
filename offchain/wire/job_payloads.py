"""Plaintext payloads of the job protocol's peer messages, validated strictly on receipt.

Every payload travels inside an envelope (``offchain.wire.envelope``) that is encrypted to the
recipient's registered X25519 key and signed by the sender's Ethereum key; the envelope header
carries the chain, contract, job, kind, sender and recipient. These models validate what is inside:
field elements in [0, R), 32-byte hashes, checksum addresses, ECDSA signature parts (the field
types of :mod:`offchain.wire.fields`, re-exported here for the payloads' users).

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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from offchain.errors import MarketError
from offchain.types import JOB_KINDS, MessageKind
from offchain.wire.fields import Address, FieldHex, Hash32, SigModel

__all__ = [
    "MAX_VECTOR",
    "PAYLOADS",
    "Address",
    "AgreePayload",
    "DeclinePayload",
    "FieldHex",
    "Hash32",
    "OpenPayload",
    "Payload",
    "PayloadError",
    "ReceivedPayload",
    "SharePayload",
    "SigModel",
    "SignaturePayload",
    "decode_payload",
    "encode_payload",
    "h32",
    "to_hex",
]

MAX_VECTOR = 64


class PayloadError(MarketError, ValueError):
    """A decrypted payload does not have the shape its kind requires."""


class Payload(BaseModel):
    """Base of every peer-message payload (job and beacon kinds): strict, frozen, no extra
    fields, so a payload either validates exactly or raises (PayloadError via
    :func:`decode_payload`)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SharePayload(Payload):
    shares: list[FieldHex] = Field(min_length=1, max_length=MAX_VECTOR)
    commitment: Hash32
    commitment_sig: SigModel


class DeclinePayload(Payload):
    reason: str = Field(max_length=200)


class ReceivedPayload(Payload):
    inputs: list[tuple[Address, Hash32]] = Field(max_length=4096)


class AgreePayload(Payload):
    inputs_hash: Hash32


class OpenPayload(Payload):
    inputs_hash: Hash32
    sum_shares: list[FieldHex] = Field(min_length=1, max_length=MAX_VECTOR)


class SignaturePayload(Payload):
    result_hash: Hash32
    inputs_hash: Hash32
    transcript_root: Hash32
    sig: SigModel


PAYLOADS: dict[str, type[Payload]] = {
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


def encode_payload(payload: Payload) -> bytes:
    """Canonical JSON bytes of a payload."""
    return json.dumps(payload.model_dump(mode="json"), separators=(",", ":"),
                      sort_keys=True).encode()


def decode_payload(kind: str, data: bytes,
                   payloads: Mapping[str, type[Payload]] | None = None) -> Any:
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
