"""Keccak-256 Merkle tree over byte-string leaves, with inclusion proofs.

Hashing (all keccak-256, as ``eth_utils.keccak``, so Solidity can recompute it):

* leaf node  = ``keccak(0x00 || data)``
* inner node = ``keccak(0x01 || left || right)``
* levels are paired left to right; an odd last node is promoted unchanged to the next level.

Why this shape: Bitcoin's tree duplicates the odd last node, so the lists ``[a, b, c]`` and
``[a, b, c, c]`` have the same root (CVE-2012-2459); promoting the node instead never creates a
second copy of a leaf. The 0x00/0x01 prefixes separate leaves from inner nodes (RFC 6962 style),
so 64 bytes of ``left || right`` can never be passed off as a leaf, and a root therefore fixes
the whole leaf sequence (under collision resistance of keccak).

An inclusion proof is the list of sibling hashes from the leaf upwards, skipping levels where
the node was promoted. The position a proof establishes is only meaningful relative to the true
number of leaves: :func:`verify_proof` must be given ``n_leaves`` from a trusted source (e.g.
signed together with the root), otherwise a genuine leaf can be shown at a different index.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_utils.crypto import keccak

LEAF_PREFIX = b"\x00"
INNER_PREFIX = b"\x01"


def hash_leaf(data: bytes) -> bytes:
    """Leaf hash ``keccak(0x00 || data)`` (32 bytes)."""
    return keccak(LEAF_PREFIX + bytes(data))


def hash_inner(left: bytes, right: bytes) -> bytes:
    """Inner node hash ``keccak(0x01 || left || right)`` of two 32-byte children (32 bytes)."""
    return keccak(INNER_PREFIX + left + right)


def _check_leaves(leaves: Sequence[bytes]) -> None:
    if len(leaves) == 0:
        raise ValueError("a Merkle tree needs at least one leaf")
    for i, leaf in enumerate(leaves):
        if not isinstance(leaf, bytes | bytearray):
            raise TypeError(f"leaf {i} must be bytes, got {type(leaf).__name__}")


def _next_level(level: list[bytes]) -> list[bytes]:
    out = [hash_inner(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    if len(level) % 2 == 1:
        out.append(level[-1])  # promote the odd node unchanged
    return out


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root (32 bytes) of the tree over ``leaves`` (a non-empty sequence of byte strings).

    Raises ``ValueError`` if ``leaves`` is empty, ``TypeError`` if a leaf is not bytes.
    """
    _check_leaves(leaves)
    level = [hash_leaf(leaf) for leaf in leaves]
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Inclusion proof for ``leaves[index]``: sibling hashes (32 bytes each), bottom to top.

    Levels where the node is promoted contribute no sibling, so the proof has at most
    ``ceil(log2(len(leaves)))`` entries. Raises ``ValueError`` if ``leaves`` is empty,
    ``IndexError`` if ``index`` is not in ``[0, len(leaves))``.
    """
    _check_leaves(leaves)
    if type(index) is not int or not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index!r} out of range for {len(leaves)} leaves")
    level = [hash_leaf(leaf) for leaf in leaves]
    proof: list[bytes] = []
    pos = index
    while len(level) > 1:
        sibling = pos ^ 1
        if sibling < len(level):
            proof.append(level[sibling])
        level = _next_level(level)
        pos //= 2
    return proof


def verify_proof(
    root: bytes, leaf_data: bytes, index: int, n_leaves: int, proof: Sequence[bytes]
) -> bool:
    """Check that ``leaf_data`` is leaf number ``index`` of the ``n_leaves``-leaf tree ``root``.

    ``proof`` is what :func:`merkle_proof` returns. Returns ``False`` (never raises) for a wrong
    leaf, index, leaf count, root or proof, including a proof of the wrong length or with
    entries that are not 32 bytes. ``n_leaves`` must come from a trusted source (see module
    docstring).
    """
    if type(index) is not int or type(n_leaves) is not int or not 0 <= index < n_leaves:
        return False
    if not isinstance(leaf_data, bytes | bytearray) or not isinstance(root, bytes | bytearray):
        return False
    node = hash_leaf(leaf_data)
    pos, width, used = index, n_leaves, 0
    while width > 1:
        sibling = pos ^ 1
        if sibling < width:
            if used >= len(proof):
                return False
            other = proof[used]
            used += 1
            if not isinstance(other, bytes | bytearray) or len(other) != 32:
                return False
            node = hash_inner(node, bytes(other)) if pos % 2 == 0 else hash_inner(
                bytes(other), node
            )
        pos //= 2
        width = (width + 1) // 2
    return used == len(proof) and node == bytes(root)
