"""A node's protocol transcript for one job, and its Merkle root (the proof-of-MPC leaf set).

Each committee member records every peer message it sent or received for a job (the sealed,
signed envelopes: ciphertexts, never plaintext). A message is keyed by (kind, sender, recipient),
which the protocol makes unique within a job, so the set of leaves — and therefore the root — does
not depend on arrival order. Leaves are the envelopes' keccak digests
(``offchain.wire.envelope.envelope_digest``), ordered by protocol round, then sender, then
recipient.

The root is what the member signs in its EIP-712 ``ResultCommitment`` and what the chain records
(folded into the job's proofHash). Anyone holding the transcript can recompute the root and check
each envelope's signature; only the addressee can decrypt an envelope.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offchain.crypto.merkle import merkle_root
from offchain.types import TRANSCRIPT_KINDS, MessageKind

#: Protocol rounds in order; a kind's position orders the transcript's leaves. Derived from the
#: kind table (:data:`offchain.types.KIND_RULES`): every job kind before the result signature.
ROUND_ORDER: tuple[MessageKind, ...] = TRANSCRIPT_KINDS


@dataclass
class Transcript:
    """Messages of one job as seen by one node.

    ``entries`` maps (kind, sender, recipient) to (digest, envelope JSON object).
    """

    job_id: int
    node: str
    entries: dict[tuple[str, str, str], tuple[bytes, dict[str, Any]]] = field(default_factory=dict)
    sealed: bool = False

    def seal(self) -> bytes:
        """Stop recording and return the root: a member calls this when it signs the root, so
        the transcript it keeps is exactly the one it signed (stragglers are not added)."""
        self.sealed = True
        return self.root()

    def record(self, kind: str, sender: str, recipient: str, digest: bytes,
               envelope: dict[str, Any]) -> None:
        """Record one message (ignored once sealed). Raises ValueError for an unknown kind or a
        conflicting duplicate."""
        if self.sealed:
            return
        if kind not in ROUND_ORDER:
            raise ValueError(f"kind {kind!r} is not part of the transcript")
        key = (kind, sender, recipient)
        old = self.entries.get(key)
        if old is not None and old[0] != digest:
            raise ValueError(f"conflicting second message for {key}")
        self.entries[key] = (digest, envelope)

    def ordered_keys(self) -> list[tuple[str, str, str]]:
        """Keys in canonical order: round, then sender, then recipient (lower-case hex)."""
        return sorted(self.entries, key=lambda k: (ROUND_ORDER.index(k[0]), k[1].lower(),
                                                   k[2].lower()))

    def root(self) -> bytes:
        """keccak Merkle root (32 bytes) over the ordered digests. ValueError if empty."""
        return merkle_root([self.entries[k][0] for k in self.ordered_keys()])

    def to_json(self) -> dict[str, Any]:
        """JSON-able form: job id, node, root, and the ordered envelopes."""
        return {
            "job_id": self.job_id,
            "node": self.node,
            "root": "0x" + self.root().hex(),
            "messages": [
                {"kind": k[0], "sender": k[1], "recipient": k[2],
                 "digest": "0x" + self.entries[k][0].hex(), "envelope": self.entries[k][1]}
                for k in self.ordered_keys()
            ],
        }

    def save(self, directory: Path) -> Path:
        """Write ``job-<id>.json`` under ``directory`` and return its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"job-{self.job_id}.json"
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path
