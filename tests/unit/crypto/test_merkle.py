"""Keccak Merkle tree with domain separation and odd-node promotion (offchain.crypto.merkle)."""

from __future__ import annotations

import pytest
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.crypto.merkle import merkle_proof, merkle_root, verify_proof

FAST = settings(max_examples=60, deadline=None)
unique_leaves = st.lists(st.binary(max_size=40), min_size=1, max_size=33, unique=True)


def L(data: bytes) -> bytes:
    return keccak(b"\x00" + data)


def N(left: bytes, right: bytes) -> bytes:
    return keccak(b"\x01" + left + right)


def test_known_shapes() -> None:
    a, b, c, d, e = (bytes([i]) for i in range(5))
    assert merkle_root([a]) == L(a)
    assert merkle_root([a, b]) == N(L(a), L(b))
    assert merkle_root([a, b, c]) == N(N(L(a), L(b)), L(c))  # c promoted
    assert merkle_root([a, b, c, d]) == N(N(L(a), L(b)), N(L(c), L(d)))
    assert merkle_root([a, b, c, d, e]) == N(N(N(L(a), L(b)), N(L(c), L(d))), L(e))
    assert merkle_proof([a, b, c], 2) == [N(L(a), L(b))]
    assert merkle_proof([a, b, c, d, e], 4) == [N(N(L(a), L(b)), N(L(c), L(d)))]
    assert merkle_proof([a], 0) == []


def test_no_duplicate_leaf_ambiguity() -> None:
    a, b, c = b"a", b"b", b"c"
    # Bitcoin's duplicate-last-node rule makes these equal; promotion does not.
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])
    # An inner node's preimage used as leaf data does not give the inner node's hash.
    assert merkle_root([L(a) + L(b)]) != merkle_root([a, b])


@FAST
@given(unique_leaves)
def test_every_proof_verifies_and_wrong_inputs_fail(leaves: list[bytes]) -> None:
    n = len(leaves)
    root = merkle_root(leaves)
    assert len(root) == 32
    for i, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, i)
        assert all(len(p) == 32 for p in proof)
        assert len(proof) <= max(0, (n - 1).bit_length())
        assert verify_proof(root, leaf, i, n, proof)
        assert not verify_proof(root, leaf + b"x", i, n, proof)  # wrong leaf
        assert not verify_proof(keccak(root), leaf, i, n, proof)  # wrong root
        for j in range(n):  # wrong index (leaves are distinct)
            if j != i:
                assert not verify_proof(root, leaf, j, n, proof)
        assert not verify_proof(root, leaf, n, n, proof)  # out of range
        assert not verify_proof(root, leaf, -1, n, proof)
        if proof:
            assert not verify_proof(root, leaf, i, n, proof[:-1])  # truncated
            bad = [*proof]
            bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
            assert not verify_proof(root, leaf, i, n, bad)  # tampered sibling
            assert not verify_proof(root, leaf, i, n, [proof[0][:31], *proof[1:]])
        assert not verify_proof(root, leaf, i, n, [*proof, root])  # too long


def test_leaf_count_must_be_trusted() -> None:
    """Why verify_proof takes n_leaves from the caller: with a wrong count a genuine leaf
    can be shown at another position (here leaf c of [a, b, c] at index 1 of a 2-leaf tree)."""
    a, b, c = b"a", b"b", b"c"
    root = merkle_root([a, b, c])
    assert verify_proof(root, c, 2, 3, merkle_proof([a, b, c], 2))
    assert verify_proof(root, c, 1, 2, [N(L(a), L(b))])
    assert not verify_proof(root, c, 1, 3, [N(L(a), L(b))])


def test_errors() -> None:
    with pytest.raises(ValueError):
        merkle_root([])
    with pytest.raises(ValueError):
        merkle_proof([], 0)
    with pytest.raises(IndexError):
        merkle_proof([b"a"], 1)
    with pytest.raises(TypeError):
        merkle_root(["a"])  # type: ignore[list-item]
    assert not verify_proof(merkle_root([b"a"]), b"a", 0, 0, [])
