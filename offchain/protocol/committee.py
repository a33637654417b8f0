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

from collections.abc import Iterable, Sequence
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

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
    ``JobMarket.drawCommittee``. Raises ValueError if there are fewer than n candidates."""
    pool = [to_checksum_address(c) for c in candidates]
    m = len(pool)
    if m < n:
        raise ValueError(f"TooFewEligibleNodes: {m} candidates for a committee of {n}")
    for i in range(n):
        r = int.from_bytes(keccak(abi_encode(["bytes32", "uint256"], [seed, i])), "big")
        j = i + r % (m - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:n], key=lambda a: int(a, 16))


def eligible_from_events(events: Iterable[dict[str, Any]], snapshot_block: int) -> list[str]:
    """Nodes eligible at ``snapshot_block`` (ascending), from the registry's decoded events in
    chain order (NodeRegistered, NodeExitRequested, NodeSlashed, NodeExited; others ignored).

    Eligible: the node's latest registration is in a block < snapshot_block, and it has not
    started to exit (request or slash) in a block <= snapshot_block. The registry records the
    same two block numbers (``nodeBlocks``); a later re-registration is a new registration.
    """
    registered: dict[str, int] = {}
    exited: dict[str, int] = {}
    for ev in events:
        name, block = ev.get("event"), int(ev["block_number"])
        if name not in ("NodeRegistered", "NodeExitRequested", "NodeSlashed", "NodeExited"):
            continue
        node = to_checksum_address(ev["node"])
        if block > snapshot_block and name != "NodeRegistered":
            continue
        if name == "NodeRegistered":
            if block >= snapshot_block:
                continue
            registered[node] = block
            exited.pop(node, None)
        elif name in ("NodeExitRequested", "NodeSlashed"):
            exited.setdefault(node, block)
        elif name == "NodeExited":
            registered.pop(node, None)
            exited.pop(node, None)
    return sorted((a for a in registered if a not in exited), key=lambda a: int(a, 16))
