"""The shared vocabulary: chain status enums, protocol message kinds and a few ``NewType`` names.

Chain values become enums at the boundary (the clients in :mod:`offchain.chain` build
``JobStatus(j[8])``, ...), so callers compare members with ``is``
(``job.status is JobStatus.OPEN``), never with bare integers. Each enum mirrors a Solidity enum;
the integer values are the ABI encoding and must not change.

:class:`MessageKind` and :data:`KIND_RULES` are the one table of peer-message kinds; the transcript
order (:data:`offchain.wire.transcript.ROUND_ORDER`), the payload models
(:data:`offchain.wire.job_payloads.PAYLOADS`, :data:`offchain.wire.beacon_payloads.BEACON_PAYLOADS`)
and the node's provider-role dispatch are derived from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Literal, NewType

__all__ = [
    "BEACON_KINDS",
    "JOB_KINDS",
    "KIND_RULES",
    "PROVIDER_KINDS",
    "TRANSCRIPT_KINDS",
    "Address",
    "Bytes32",
    "FieldElement",
    "JobStatus",
    "KindRule",
    "MessageKind",
    "NodeStatus",
    "RequestStatus",
    "RoundStatus",
    "Wei",
]

# ----------------------------------------------------------------------------- NewTypes

Address = NewType("Address", str)
"""A 20-byte account address as an EIP-55 checksum string (``0xAbC...``)."""

Bytes32 = NewType("Bytes32", bytes)
"""A 32-byte value: a keccak hash, a salt, a Merkle root."""

FieldElement = NewType("FieldElement", int)
"""An element of F_R (the BN254 scalar field), as an int in [0, R)."""

Wei = NewType("Wei", int)
"""An amount of ether in wei (an int >= 0)."""

# ----------------------------------------------------------------------------- chain enums


class NodeStatus(IntEnum):
    """Registry status of a node (contract enum NodeRegistry.NodeStatus)."""

    NONE = 0
    ACTIVE = 1
    EXITING = 2


class JobStatus(IntEnum):
    """Status of a job (contract enum JobMarket.JobStatus)."""

    NONE = 0
    OPEN = 1
    FINALIZED = 2
    REFUNDED = 3


class RoundStatus(IntEnum):
    """Status of a beacon round (contract enum RandomnessBeacon.RoundStatus)."""

    NONE = 0
    OPEN = 1
    COMMITTED = 2
    FINALIZED = 3
    FAILED = 4


class RequestStatus(IntEnum):
    """Status of a randomness request (contract enum RandomnessBeacon.RequestStatus)."""

    NONE = 0
    PENDING = 1
    FULFILLED = 2
    CALLBACK_FAILED = 3


# ----------------------------------------------------------------------------- message kinds


class MessageKind(StrEnum):
    """The ``kind`` of a peer message (the envelope header's field). A member equals its string
    value, so it can be compared with, and used as a key for, a decoded header's ``kind``."""

    SHARE = "share"
    DECLINE = "decline"
    RECEIVED = "received"
    AGREE = "agree"
    OPEN = "open"
    SIGNATURE = "signature"
    BEACON_DEAL = "beacon_deal"
    BEACON_REPORT = "beacon_report"
    BEACON_PROPOSE = "beacon_propose"
    BEACON_SIGN = "beacon_sign"
    BEACON_OPEN = "beacon_open"
    BEACON_RECOVER = "beacon_recover"


@dataclass(frozen=True)
class KindRule:
    """What a message kind is: which protocol it belongs to, whether a data provider sends it
    (to each committee member) rather than a member or beacon node, and whether a committee member
    records it as a leaf of its job transcript (the Merkle root it signs; the ``signature``
    message carries that root, so it cannot be one of its leaves)."""

    protocol: Literal["job", "beacon"]
    from_provider: bool
    in_transcript: bool


KIND_RULES: Mapping[MessageKind, KindRule] = MappingProxyType({
    # in protocol order: a job kind's position is its round's position in the transcript
    MessageKind.SHARE: KindRule("job", from_provider=True, in_transcript=True),
    MessageKind.DECLINE: KindRule("job", from_provider=True, in_transcript=True),
    MessageKind.RECEIVED: KindRule("job", from_provider=False, in_transcript=True),
    MessageKind.AGREE: KindRule("job", from_provider=False, in_transcript=True),
    MessageKind.OPEN: KindRule("job", from_provider=False, in_transcript=True),
    MessageKind.SIGNATURE: KindRule("job", from_provider=False, in_transcript=False),
    MessageKind.BEACON_DEAL: KindRule("beacon", from_provider=False, in_transcript=False),
    MessageKind.BEACON_REPORT: KindRule("beacon", from_provider=False, in_transcript=False),
    MessageKind.BEACON_PROPOSE: KindRule("beacon", from_provider=False, in_transcript=False),
    MessageKind.BEACON_SIGN: KindRule("beacon", from_provider=False, in_transcript=False),
    MessageKind.BEACON_OPEN: KindRule("beacon", from_provider=False, in_transcript=False),
    MessageKind.BEACON_RECOVER: KindRule("beacon", from_provider=False, in_transcript=False),
})
"""The one table of message kinds (every :class:`MessageKind` member, in protocol order)."""

if set(KIND_RULES) != set(MessageKind):
    raise RuntimeError("KIND_RULES must list every MessageKind exactly once")

JOB_KINDS: tuple[MessageKind, ...] = tuple(k for k, r in KIND_RULES.items() if r.protocol == "job")
"""The job protocol's kinds, in protocol order."""

BEACON_KINDS: tuple[MessageKind, ...] = tuple(
    k for k, r in KIND_RULES.items() if r.protocol == "beacon")
"""The randomness beacon's kinds, in protocol order."""

PROVIDER_KINDS: frozenset[MessageKind] = frozenset(
    k for k, r in KIND_RULES.items() if r.from_provider)
"""Kinds a data provider sends to a committee member (``share``, ``decline``)."""

TRANSCRIPT_KINDS: tuple[MessageKind, ...] = tuple(
    k for k, r in KIND_RULES.items() if r.in_transcript)
"""Kinds recorded in a job transcript, in round order (everything before ``signature``)."""
