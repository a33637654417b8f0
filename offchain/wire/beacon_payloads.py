"""Plaintext payloads of the randomness beacon's peer messages, validated strictly on receipt.

They travel in the same signed, encrypted envelopes as the job protocol
(``offchain.wire.envelope``),
with the round id in the header's ``job_id`` field and these kinds:

- ``beacon_deal``     dealer -> node: the dealer's T+1 Pedersen commitment points and the
                      node's share (f(x), g(x)), with the dealer's EIP-712 BeaconShare signature.
- ``beacon_report``   node -> leader: the (dealer, commitment) pairs it verified, and complaints
                      (signed shares that fail the check: proofs against their dealers).
- ``beacon_propose``  leader -> member of Q: the proposed participants and commitments.
- ``beacon_sign``     member -> leader: its BeaconCommit signature over the proposal.
- ``beacon_open``     member -> members: its opening (secret, salt, restHash), after the commit.
- ``beacon_recover``  member -> members: its share of a contribution whose owner withheld it.

Field elements are 0x-hex below r; curve coordinates 0x-hex below the BN254 base prime p (the
on-curve check happens in ``offchain.crypto.pedersen.decode_point``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from offchain.types import BEACON_KINDS, MessageKind
from offchain.wire.fields import Address, CoordHex, FieldHex, Hash32, SigModel
from offchain.wire.job_payloads import Payload, decode_payload

MAX_POINTS = 32  # T + 1 <= 32
MAX_NODES = 256


class ComplaintModel(Payload):
    dealer: Address
    points: list[tuple[CoordHex, CoordHex]] = Field(min_length=1, max_length=MAX_POINTS)
    share_s: FieldHex
    share_r: FieldHex
    sig: SigModel


class BeaconDealPayload(Payload):
    points: list[tuple[CoordHex, CoordHex]] = Field(min_length=2, max_length=MAX_POINTS)
    share_s: FieldHex
    share_r: FieldHex
    sig: SigModel


class BeaconReportPayload(Payload):
    verified: list[tuple[Address, Hash32]] = Field(max_length=MAX_NODES)
    complaints: list[ComplaintModel] = Field(max_length=MAX_NODES)


class BeaconProposePayload(Payload):
    participants: list[Address] = Field(min_length=3, max_length=64)
    commitments: list[Hash32] = Field(min_length=3, max_length=64)


class BeaconSignPayload(Payload):
    participants_hash: Hash32
    sig: SigModel


class BeaconOpenPayload(Payload):
    secret: FieldHex
    salt: FieldHex
    rest_hash: Hash32


class BeaconRecoverPayload(Payload):
    dealer: Address
    share_s: FieldHex
    share_r: FieldHex


BEACON_PAYLOADS: dict[str, type[Payload]] = {
    MessageKind.BEACON_DEAL: BeaconDealPayload,
    MessageKind.BEACON_REPORT: BeaconReportPayload,
    MessageKind.BEACON_PROPOSE: BeaconProposePayload,
    MessageKind.BEACON_SIGN: BeaconSignPayload,
    MessageKind.BEACON_OPEN: BeaconOpenPayload,
    MessageKind.BEACON_RECOVER: BeaconRecoverPayload,
}
"""The payload model of each beacon kind (:data:`offchain.types.BEACON_KINDS`)."""

if tuple(BEACON_PAYLOADS) != BEACON_KINDS:
    raise RuntimeError("BEACON_PAYLOADS must map exactly the beacon kinds of "
                       "offchain.types.KIND_RULES")


def decode_beacon_payload(kind: str, data: bytes) -> Any:
    """Parse and validate a beacon payload of ``kind``. Raises PayloadError with the reason."""
    return decode_payload(kind, data, BEACON_PAYLOADS)
