"""Audit a job from chain data alone (issue 4): every claim the market makes about a job,
recomputed from its logs, its transactions' calldata and the contract's state at past blocks.

:func:`audit_job` rebuilds the job and runs these named checks (stable names; a check that does
not apply, e.g. the signatures of a refunded job, is *skipped*, which is not a failure):

``job.parameters``
    One ``JobPosted`` log; the stored job (``getJob``) agrees with it (buyer, spec hash =
    keccak(datasetId, keccak(query)), deadline, n, t, M, seed round); 3 <= n <= 32, t >= 1,
    2t+1 <= n, M >= 1; the stored status matches the settlement logs.
``job.escrow``
    The logged escrow equals the stored one and is at least ``minPaymentWei``; the post
    transaction succeeded and really paid escrow + callback fee (``JobCallbackRequested``, for a
    job posted with a callback): as its value when the buyer called the market directly, as the
    market's balance growth across the block when a buyer contract did. The stored callback
    settings (``jobCallback``) agree with the logs: a nonzero callback gas limit iff one
    ``JobCallbackRequested`` log with that limit, its fee held while the job is Open.
``committee.selection_rule``
    The committee logged in ``CommitteeAssigned`` hashes to the stored ``committeeHash`` and is
    the one passed to ``finalizeJob``; the drawing round is the job's seed round (or the
    successor of a round that failed before committing); the job was posted before that round's
    output was fixed (its ``RoundCommitted``); every opened contribution matches its Pedersen
    commitment (openings decoded from the ``reveal``/``recover`` calldata) and every committed
    participant was opened; the output equals keccak(chainid, market, round, sum of the opened
    secrets) and the stored one; and the committee equals :func:`draw_committee` over the nodes
    eligible at the commit block (recomputed from the registry's events) with seed
    keccak(TAG, output, jobId).
``signatures.valid``
    Each ``ResultCommitment`` signature in the ``finalizeJob`` calldata recovers (EIP-712 digest
    recomputed from the calldata's aggregates and inputs) to a committee member that was
    registered with a nonzero stake at the block before finalization (from the registry's state
    at that block, or replayed from its events on a node without history); signers strictly
    ascending; the logged and stored signer mask and the logged proof hash follow from them.
``signatures.threshold``
    At least t+1 distinct valid committee signatures (and t+1 bits in the stored mask).
``inputs.providers``
    Each provider input in the calldata carries a valid ``InputCommitment`` signature by a
    provider registered at the block before finalization; providers strictly ascending; at least
    M of them; the count and the inputs hash chain equal the logged (and stored) ones.
``result.hash``
    keccak256(abi.encodePacked(aggregates)) of the logged aggregates equals the logged and the
    stored ``resultHash``, and the logged aggregates are those of the calldata.
``result.statistic``
    The query parses, the aggregate vector has the length it needs, and the statistic follows
    from it (exact rational arithmetic, ``offchain.encoding.query.statistic``); the value is
    reported.
``payments``
    Finalized: the logged reward per signer is escrow // k for the k counted signatures, the
    shares (the first signer also gets the remainder) add up to the escrow, a requested callback
    was delivered (``JobCallback``) crediting its fee to the finalizer, and in the finalize
    block each signer's ``rewardsWei`` grew by exactly its share (the finalizer's also by the
    fee), all together by escrow + fee (not checked, and said so, on a node without historical
    state: the log-based checks still run). Refunded: the refund equals escrow + callback fee, went
    to the buyer and left the market's balance (an EOA buyer's balance grew by it, less gas). An
    Open job fails this check: its escrow is neither paid out nor refunded. Balances are
    compared across a block only when the transaction is alone in it.
``deadlines``
    The deadline lies 1..maxTimeoutS after the post block; the committee was assigned and the
    job finalized no later than the deadline, a refund only after it.
``transcripts``
    Where the signers publish their transcripts (``GET /v1/transcripts/{job}`` at the endpoint
    they registered), each one's Merkle root equals the ``transcriptRoot`` it signed, every
    envelope in it is for this chain, market and job, its digest is the recorded leaf, and its
    signature recovers to its sender; it holds a share from every counted provider and enough
    ``agree``/``open`` messages. Skipped when no signer's endpoint answers. Each fetch is cut
    off after :data:`FETCH_DEADLINE_S` and all of them after :data:`TRANSCRIPTS_BUDGET_S` (a
    transcript not fetched in time counts as unavailable, never as verified).

Data comes from a :class:`LogSource` (decoded logs and transactions, by default the real chain
through ``eth_getLogs``/``eth_getTransactionByHash``; injectable so tests can feed doctored
data) and from ``eth_call``/``eth_getBalance`` at historical blocks. On a node without that
state (e.g. anvil restarted without ``--preserve-history``) the current state is never used in
its place: registrations at a block are replayed from the registry's events, and comparisons of
balances or rewards across a block are left out, which the check's detail says.

The package: :mod:`.report` (the report types), :mod:`.sources` (logs and transactions),
:mod:`.fetch` (transcript fetching with deadlines), :mod:`.context` (the job under audit and
historical state), the check families :mod:`.job`, :mod:`.committee`, :mod:`.signatures`,
:mod:`.payments` and :mod:`.transcripts`, and :mod:`.auditor` (:func:`audit_job`, which runs
the check table of :class:`~offchain.audit.auditor.Auditor`). Shared pieces are public in the
module that owns them and imported from there: the check outcomes ``CheckFailed`` and
``CheckSkipped`` (:mod:`.report`), ``json_depth`` and ``MAX_JSON_DEPTH`` (:mod:`.fetch`), the
address and formatting helpers (:mod:`.util`). This package exports only the names below.
"""

from __future__ import annotations

from offchain.audit.auditor import audit_job
from offchain.audit.fetch import (
    FETCH_DEADLINE_S,
    MAX_TRANSCRIPT_BYTES,
    TRANSCRIPTS_BUDGET_S,
    TranscriptFetcher,
    http_transcript_fetcher,
)
from offchain.audit.report import CHECK_NAMES, AuditError, AuditReport, Check
from offchain.audit.sources import ChainLogSource, LogSource, registration_from_events
from offchain.audit.transcripts import verify_transcript

__all__ = [
    "CHECK_NAMES",
    "FETCH_DEADLINE_S",
    "MAX_TRANSCRIPT_BYTES",
    "TRANSCRIPTS_BUDGET_S",
    "AuditError",
    "AuditReport",
    "ChainLogSource",
    "Check",
    "LogSource",
    "TranscriptFetcher",
    "audit_job",
    "http_transcript_fetcher",
    "registration_from_events",
    "verify_transcript",
]
