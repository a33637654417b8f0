"""The committee-selection rule, recomputed independently of the contract.

A job's committee is drawn by ``JobMarket.assignCommittee`` from the output of the beacon round
that seeded it (the round the job joined, or that round's successor if it failed):

* **Candidates** — the nodes eligible at the round's commit block S: registered in a block
  before S and not exiting at S (no exit, or an exit requested after S; a slash counts as an
  exit), sorted ascending by address. The set was fixed before anybody could know the output,
  so neither a registration nor an exit after the fact can steer the draw.
* **Sampling without replacement** — partial Fisher–Yates: for i = 0..n-1, swap position i with
  i + (keccak256(abi.encode(seed, i)) mod (m - i)), seed = keccak256(abi.encode(TAG, output,
  jobId)) with TAG = keccak256("MPCMarket.committee") (so a seed never equals a request's value);
  the first n, sorted ascending, are the committee. (The modulo bias is below m / 2^256.)

An auditor recomputes the committee from chain data alone with :func:`eligible_from_events` and
:func:`draw_committee`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from offchain.protocol.registry import replay_registry

__all__ = ["committee_seed", "draw_committee", "eligible_from_events"]


COMMITTEE_SEED_TAG = keccak(b"MPCMarket.committee")


def committee_seed(output: bytes, job_id: int) -> bytes:
    """``keccak256(abi.encode(COMMITTEE_SEED_TAG, output, jobId))`` (32 bytes). Raises
    ValueError if ``output`` is not 32 bytes."""
    if len(output) != 32:
        raise ValueError("a round output is 32 bytes")
    return keccak(abi_encode(["bytes32", "bytes32", "uint256"],
                             [COMMITTEE_SEED_TAG, output, job_id]))


def draw_committee(candidates: Sequence[str], n: int, seed: bytes) -> list[str]:
    """``n`` of ``candidates`` (ascending addresses) drawn with ``seed``, returned ascending, as
    ``JobMarket.drawCommittee``. Raises ValueError naming the contract's error
    (``JobTooFewEligibleNodes``) if there are fewer than n candidates."""
    pool = [to_checksum_address(c) for c in candidates]
    m = len(pool)
    if m < n:
        raise ValueError(f"JobTooFewEligibleNodes: {m} candidates for a committee of {n}")
    for i in range(n):
        r = int.from_bytes(keccak(abi_encode(["bytes32", "uint256"], [seed, i])), "big")
        j = i + r % (m - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:n], key=lambda a: int(a, 16))


def eligible_from_events(events: Iterable[Mapping[str, Any]],
                         snapshot_block: int) -> list[str]:
    """Nodes eligible at ``snapshot_block`` (ascending), from the registry's decoded events in
    chain order (NodeRegistered, NodeExitRequested, NodeSlashed, NodeExited; others ignored).

    Eligible: the node's latest registration is in a block < snapshot_block, and it has not
    started to exit (request or slash) in a block <= snapshot_block. The registry records the
    same two block numbers (``nodeBlocks``); a later re-registration is a new registration.
    The replay is :func:`offchain.protocol.registry.replay_registry`.
    """
    return list[str](replay_registry(events, snapshot_block).eligible(snapshot_block))
