"""Signers' transcripts: :func:`verify_transcript` (one published transcript against the
root its node signed, envelope by envelope) and the ``transcripts`` check, which fetches them
within the check's wall-clock budget."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from offchain.audit.context import AuditContext
from offchain.audit.report import CheckFailed, CheckSkipped
from offchain.audit.signatures import Signers
from offchain.audit.util import checksum
from offchain.types import PROVIDER_KINDS, MessageKind
from offchain.wire.envelope import EnvelopeError, envelope_signer
from offchain.wire.transcript import Transcript


def verify_transcript(doc: dict[str, Any], *, chain_id: int, market: str, job_id: int,
                      node: str, signed_root: bytes, committee: Sequence[str],
                      providers: Sequence[str], threshold: int) -> tuple[list[str], int]:
    """Check one member's published transcript against the root it signed.

    Returns (problems, number of envelopes verified); no problems means: the document is for
    this job and node, every message's envelope is for this chain, market and job, with the
    recorded kind, sender and recipient, its digest is the recorded leaf and its signature
    recovers to its sender; the node is a party to every message; the Merkle root over the
    leaves (``offchain.wire.transcript`` order) equals ``signed_root``; and it holds a ``share``
    from every provider in ``providers``, ``agree`` messages from at least
    floor((n+t)/2)+1 members and ``open`` messages from at least min(n, 2t+1) members.
    """
    problems: list[str] = []
    node = checksum(node)
    market = checksum(market)
    members = {checksum(m) for m in committee}
    if doc.get("job_id") != job_id:
        problems.append(f"transcript is for job {doc.get('job_id')!r}")
    if str(doc.get("node", "")).lower() != node.lower():
        problems.append(f"transcript is of node {doc.get('node')!r}")
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*problems, "no messages"], 0
    transcript = Transcript(job_id, node)
    verified = 0
    for i, msg in enumerate(messages):
        try:
            kind, env = str(msg["kind"]), dict(msg["envelope"])
            sender, recipient = checksum(msg["sender"]), checksum(
                msg["recipient"])
            digest, signer = envelope_signer(env)
        except (KeyError, TypeError, ValueError, EnvelopeError) as exc:
            problems.append(f"message {i}: malformed ({exc})")
            continue
        where = f"message {i} ({kind} {sender[:8]}…→{recipient[:8]}…)"
        header = (env.get("chain_id"), env.get("contract"), env.get("job_id"), env.get("kind"),
                  env.get("sender"), env.get("recipient"))
        if header != (chain_id, market, job_id, kind, sender, recipient):
            problems.append(f"{where}: envelope header does not match")
        if "0x" + digest.hex() != str(msg.get("digest", "")).lower():
            problems.append(f"{where}: recorded digest is not the envelope's")
        if signer != sender:
            problems.append(f"{where}: signed by {signer}, not by its sender")
        if node not in (sender, recipient):
            problems.append(f"{where}: the node is neither sender nor recipient")
        if kind not in PROVIDER_KINDS and not {sender, recipient} <= members:
            problems.append(f"{where}: {kind} messages are between committee members only")
        if recipient not in members:
            problems.append(f"{where}: recipient is not a committee member")
        try:
            transcript.record(kind, sender, recipient, digest, env)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        verified += 1
    if transcript.entries:
        root = transcript.root()
        if root != signed_root:
            problems.append(f"Merkle root 0x{root.hex()[:16]}… is not the signed transcriptRoot "
                            f"0x{signed_root.hex()[:16]}…")
    keys = set(transcript.entries)
    missing = [p for p in providers if (MessageKind.SHARE, checksum(p), node) not in keys]
    if missing:
        problems.append(f"no share from counted provider(s) {', '.join(missing)}")
    n = len(members)
    quorum, openings = (n + threshold) // 2 + 1, min(n, 2 * threshold + 1)
    for kind, need in ((MessageKind.AGREE, quorum), (MessageKind.OPEN, openings)):
        have = len({s for k, s, r in keys if k == kind and r == node and s in members})
        if have < need:
            problems.append(f"{have} {kind} messages received; a member signs only after {need}")
    return problems, verified


class TranscriptChecks(AuditContext):
    """``transcripts``."""

    def check_transcripts(self, signers: Signers) -> str:
        """``transcripts``: each valid signer's (``signers``, from
        :meth:`~offchain.audit.signatures.SignatureChecks.recover_signers`) published transcript
        against the root it signed, within :attr:`transcript_budget_s`."""
        self._require_final()
        if not signers.valid:
            raise CheckSkipped("no valid signature whose transcript could be checked")
        providers = [checksum(i["provider"]) for i in (self.call_data or {})["inputs"]]
        problems, verified, unavailable, late, envelopes = [], 0, [], [], 0
        end = time.monotonic() + self.transcript_budget_s
        for signer, root in signers.valid:
            if time.monotonic() >= end:  # the budget is spent: not fetched, not a pass
                late.append(signer)
                continue
            endpoint = str(self.contract.functions.getNode(signer).call()[5])
            doc = self.fetch(endpoint, self.job_id) if endpoint else None
            if time.monotonic() > end:  # answered after the budget: discarded
                late.append(signer)
                continue
            if doc is None:
                unavailable.append(signer)
                continue
            found, count = verify_transcript(
                doc, chain_id=self.chain_id, market=self.market, job_id=self.job_id,
                node=signer, signed_root=root, committee=self.committee, providers=providers,
                threshold=self.stored["threshold"])
            envelopes += count
            if found:
                problems.append(f"{signer}: " + "; ".join(found[:5]))
            else:
                verified += 1
        if problems:
            raise CheckFailed(" | ".join(problems))
        over = (f"; {len(late)} unavailable within the {self.transcript_budget_s:g} s budget "
                "of the check" if late else "")
        if verified == 0:
            raise CheckSkipped(f"no signer published its transcript ({len(unavailable)} "
                               f"endpoint(s) did not answer{over})")
        rest = (f"; {len(unavailable)} not published" if unavailable else "") + over
        return (f"{verified} signer transcript(s) match their signed roots; {envelopes} "
                f"envelope signatures valid{rest}")
