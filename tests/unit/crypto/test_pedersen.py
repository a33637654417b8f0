"""Pedersen VSS over BN254 G1 (offchain.crypto.pedersen): generators, curve arithmetic against
py_ecc,
dealing/verification/reconstruction, point (de)serialisation and the on-chain hash layout."""

from __future__ import annotations

import secrets
from itertools import combinations

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from fastecdsa.point import Point
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.crypto.field import R
from offchain.crypto.pedersen import (
    CURVE,
    H_DOMAIN,
    H_X,
    H_Y,
    IDENTITY,
    Dealing,
    G,
    H,
    P,
    check_opening,
    commit_point,
    commitment_hash,
    deal,
    decode_point,
    encode_point,
    reconstruct,
    rest_hash,
    verify_share,
)
from offchain.crypto.shamir import InconsistentSharesError, SharingError

FAST = settings(max_examples=25, deadline=None)
elements = st.integers(min_value=0, max_value=R - 1)
addresses = st.integers(min_value=1, max_value=2**160 - 1)


def on_curve(x: int, y: int) -> bool:
    return (y * y - x**3 - 3) % P == 0


@st.composite
def dealings(draw: st.DrawFn) -> tuple[int, int, int, list[int]]:
    threshold = draw(st.integers(min_value=1, max_value=4))
    n = draw(st.integers(min_value=threshold + 1, max_value=threshold + 3))
    xs = draw(st.lists(addresses, min_size=n, max_size=n, unique=True))
    return draw(elements), draw(elements), threshold, xs


def sample_xs(n: int) -> list[int]:
    xs: set[int] = set()
    while len(xs) < n:
        xs.add(1 + secrets.randbelow(2**160 - 1))
    return list(xs)


# ---------------------------------------------------------------- generators and curve


def test_h_is_recomputed_by_try_and_increment() -> None:
    for ctr in range(1000):
        digest = keccak(b"MPCMarket/pedersen/H" + ctr.to_bytes(4, "big"))
        x = int.from_bytes(digest, "big") % P
        rhs = (x**3 + 3) % P
        if pow(rhs, (P - 1) // 2, P) == 1:
            y = pow(rhs, (P + 1) // 4, P)
            if y % 2 == 1:
                y = P - y
            break
    else:  # pragma: no cover
        pytest.fail("no square found")
    assert H_DOMAIN == b"MPCMarket/pedersen/H"
    assert (x, y) == (H_X, H_Y)
    assert on_curve(H_X, H_Y) and H_Y % 2 == 0
    assert encode_point(H) == (H_X, H_Y)
    assert H != G and H != IDENTITY
    assert R * H == IDENTITY


def test_g_and_curve_parameters() -> None:
    assert encode_point(G) == (1, 2)
    assert CURVE.p == P and CURVE.q == R and CURVE.a == 0 and CURVE.b == 3
    assert P % 4 == 3
    assert R * G == IDENTITY and (R + 1) * G == G
    assert encode_point(IDENTITY) == (0, 0)
    assert 0 * G == IDENTITY and G - G == IDENTITY and G + IDENTITY == G


def test_scalar_multiplication_agrees_with_py_ecc() -> None:
    bn = pytest.importorskip("py_ecc.optimized_bn128")

    def ref(pt: tuple[object, object, object]) -> tuple[int, int]:
        if bn.is_inf(pt):
            return (0, 0)
        x, y = bn.normalize(pt)
        return (int(x), int(y))

    ref_h = (bn.FQ(H_X), bn.FQ(H_Y), bn.FQ(1))
    assert bn.is_on_curve(ref_h, bn.b)
    scalars = [0, 1, 2, 3, R - 2, R - 1, *(secrets.randbelow(R) for _ in range(6))]
    for k in scalars:
        assert encode_point(k * G) == ref(bn.multiply(bn.G1, k)), k
        assert encode_point(k * H) == ref(bn.multiply(ref_h, k)), k
    for a, b in zip(scalars, reversed(scalars), strict=True):
        expected = bn.add(bn.multiply(bn.G1, a), bn.multiply(ref_h, b))
        assert encode_point(commit_point(a, b)) == ref(expected), (a, b)


# ---------------------------------------------------------------- deal / verify


@FAST
@given(dealings())
def test_deal_verify_reconstruct_round_trip(params: tuple[int, int, int, list[int]]) -> None:
    secret, salt, threshold, xs = params
    d = deal(secret, salt, threshold, xs)
    assert isinstance(d, Dealing)
    assert len(d.commitments) == threshold + 1 and d.threshold == threshold
    assert list(d.shares) == xs
    assert d.commitments[0] == commit_point(secret, salt)
    for x, (s, r) in d.shares.items():
        assert 0 <= s < R and 0 <= r < R
        assert verify_share(d.commitments, x, s, r)
    subset = sorted(xs)[-(threshold + 1):]  # the largest; reconstruct(all) uses the smallest
    got = reconstruct({x: d.shares[x] for x in subset}, threshold)
    assert got == (secret, salt)
    assert reconstruct(d.shares, threshold) == (secret, salt)
    assert check_opening(commitment_hash(d.commitments), *got, rest_hash(d.commitments))


@FAST
@given(dealings(), st.data())
def test_tampered_share_fails(params: tuple[int, int, int, list[int]], data: st.DataObject) -> None:
    secret, salt, threshold, xs = params
    d = deal(secret, salt, threshold, xs)
    x = data.draw(st.sampled_from(xs))
    other = data.draw(st.sampled_from([y for y in xs if y != x]))
    s, r = d.shares[x]
    assert verify_share(d.commitments, x, s, r)
    assert not verify_share(d.commitments, x, (s + 1) % R, r)
    assert not verify_share(d.commitments, x, s, (r + 1) % R)
    assert not verify_share(d.commitments, x, r, s)
    assert not verify_share(d.commitments, other, s, r)  # share presented for the wrong x


def test_tampered_commitments_fail() -> None:
    threshold = 3
    xs = sample_xs(5)
    d = deal(12345, 67890, threshold, xs)
    x = xs[2]
    s, r = d.shares[x]
    cs = list(d.commitments)
    assert verify_share(cs, x, s, r)
    for k in range(len(cs)):
        bad = cs.copy()
        bad[k] = bad[k] + G
        assert not verify_share(bad, x, s, r), k
    assert not verify_share(cs[:-1], x, s, r)  # dropped top coefficient
    assert not verify_share([*cs, H], x, s, r)  # extra coefficient
    assert not verify_share(list(reversed(cs)), x, s, r)
    assert not verify_share([], x, s, r)


def test_verify_share_rejects_malformed_values_without_raising() -> None:
    xs = sample_xs(3)
    d = deal(7, 8, 1, xs)
    x = xs[0]
    s, r = d.shares[x]
    # s + R denotes the same scalar, so only the range check can reject it.
    bad_values: list[object] = [-1, R, s + R, -R + s, 2**256, "1", 1.0, None, True]
    for v in bad_values:
        assert verify_share(d.commitments, x, v, r) is False  # type: ignore[arg-type]
        assert verify_share(d.commitments, x, s, v) is False  # type: ignore[arg-type]
    for bad_x in [0, -1, R, R + x, "1"]:
        with pytest.raises(SharingError):
            verify_share(d.commitments, bad_x, s, r)  # type: ignore[arg-type]


def test_deal_rejects_bad_parameters() -> None:
    xs = sample_xs(4)
    for threshold in [0, -1, True, 1.0]:
        with pytest.raises(SharingError, match="threshold"):
            deal(1, 2, threshold, xs)  # type: ignore[arg-type]
    for bad in [[*xs[:3], xs[0]], [0, *xs[:3]], [R, *xs[:3]], [-5, *xs[:3]]]:
        with pytest.raises(SharingError, match="evaluation point"):
            deal(1, 2, 1, bad)
    with pytest.raises(SharingError, match="at least"):
        deal(1, 2, 3, xs[:3])
    for secret, salt in [(R, 0), (-1, 0), (0, R), (0, -1)]:
        with pytest.raises(ValueError, match="outside"):
            deal(secret, salt, 1, xs)
    with pytest.raises(TypeError):
        deal("1", 2, 1, xs)  # type: ignore[arg-type]
    assert deal(R - 1, R - 1, 3, xs).commitments[0] == -(G + H)


def test_dealing_repr_hides_shares() -> None:
    xs = sample_xs(2)
    d = deal(5, 6, 1, xs)
    text = repr(d)
    assert "shares" not in text
    assert all(str(v) not in text for pair in d.shares.values() for v in pair)


# ---------------------------------------------------------------- reconstruct


def test_reconstruct_from_every_t_plus_1_subset() -> None:
    threshold, n = 2, 5
    xs = sample_xs(n)
    secret, salt = R - 3, 424242
    d = deal(secret, salt, threshold, xs)
    com, rest = commitment_hash(d.commitments), rest_hash(d.commitments)
    for subset in combinations(xs, threshold + 1):
        got = reconstruct({x: d.shares[x] for x in subset}, threshold)
        assert got == (secret, salt)
        assert check_opening(com, *got, rest)
    with pytest.raises(SharingError, match="at least"):
        reconstruct({x: d.shares[x] for x in xs[:threshold]}, threshold)
    with pytest.raises(SharingError, match="threshold"):
        reconstruct(d.shares, 0)


def test_reconstruct_with_bad_share() -> None:
    threshold = 2
    xs = sample_xs(4)
    secret, salt = 99, 100
    d = deal(secret, salt, threshold, xs)
    com, rest = commitment_hash(d.commitments), rest_hash(d.commitments)
    basis = sorted(xs)[: threshold + 1]
    s, r = d.shares[basis[1]]
    for bad in [((s + 1) % R, r), (s, (r + 1) % R)]:
        shares = {x: d.shares[x] for x in basis}
        shares[basis[1]] = bad
        assert not verify_share(d.commitments, basis[1], *bad)
        got = reconstruct(shares, threshold)  # exactly T+1: nothing to cross-check
        assert got != (secret, salt)
        assert not check_opening(com, *got, rest)
        shares[sorted(xs)[-1]] = d.shares[sorted(xs)[-1]]  # an extra share exposes it
        with pytest.raises(InconsistentSharesError):
            reconstruct(shares, threshold)


# ---------------------------------------------------------------- points


@FAST
@given(st.integers(min_value=1, max_value=R - 1))
def test_encode_decode_round_trip(k: int) -> None:
    pt = k * G
    x, y = encode_point(pt)
    assert 0 <= x < P and 0 <= y < P and on_curve(x, y)
    back = decode_point(x, y)
    assert isinstance(back, Point) and back == pt


def test_decode_point_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="identity"):
        decode_point(0, 0)
    for x, y in [(1, 3), (H_X, H_Y + 1), (2, 2), (0, 1)]:
        with pytest.raises(ValueError, match="not on the BN254 curve"):
            decode_point(x, y)
    # (P + 1, 2) reduces to G modulo P but is not canonical; negative/huge/non-int too.
    bad: list[tuple[object, object]] = [
        (P + 1, 2),
        (1, P + 2),
        (-1, 2),
        (1, -2),
        (2**256, 2),
        (1.0, 2),
        ("1", 2),
    ]
    for bx, by in bad:
        with pytest.raises(ValueError, match=r"\[0, P\)"):
            decode_point(bx, by)  # type: ignore[arg-type]
    assert decode_point(1, P - 2) == -G


def test_commit_point() -> None:
    assert commit_point(0, 0) == IDENTITY
    assert commit_point(1, 0) == G and commit_point(0, 1) == H
    assert commit_point(3, 4) == 3 * G + 4 * H
    for bad in [(R, 0), (0, R), (-1, 0)]:
        with pytest.raises(ValueError, match="outside"):
            commit_point(*bad)


# ---------------------------------------------------------------- hashes and openings


def abi_hash(*words: int | bytes) -> bytes:
    types = ["uint256" if isinstance(w, int) else "bytes32" for w in words]
    return keccak(abi_encode(types, list(words)))


def test_hash_layout_matches_abi_encode() -> None:
    xs = sample_xs(4)
    d = deal(31337, 271828, 3, xs)
    cs = d.commitments
    rest_words = [w for c in cs[1:] for w in encode_point(c)]
    rest = rest_hash(cs)
    assert rest == abi_hash(*rest_words)
    com = commitment_hash(cs)
    assert len(com) == 32 and len(rest) == 32
    assert com == abi_hash(*encode_point(cs[0]), rest)
    assert rest_hash([G]) == keccak(b"")
    assert commitment_hash([G]) == abi_hash(1, 2, keccak(b""))
    # Identity encodes as (0, 0), as the precompiles return it.
    assert commitment_hash([IDENTITY, G]) == abi_hash(0, 0, abi_hash(1, 2))
    with pytest.raises(ValueError, match="empty"):
        commitment_hash([])
    with pytest.raises(ValueError, match="empty"):
        rest_hash([])


def test_commitment_hash_changes_with_any_point() -> None:
    d = deal(1, 2, 4, sample_xs(5))
    cs = list(d.commitments)
    base = commitment_hash(cs)
    seen = {base}
    for k in range(len(cs)):
        for delta in (G, H):
            bad = cs.copy()
            bad[k] = bad[k] + delta
            h = commitment_hash(bad)
            assert h not in seen
            seen.add(h)
    assert commitment_hash(cs[:-1]) != base
    assert commitment_hash([*cs, G]) != base


def test_check_opening_rejections() -> None:
    d = deal(5, 6, 1, sample_xs(2))
    com, rest = commitment_hash(d.commitments), rest_hash(d.commitments)
    assert check_opening(com, 5, 6, rest)
    assert check_opening(bytearray(com), 5, 6, bytearray(rest))  # type: ignore[arg-type]
    assert not check_opening(com, 6, 5, rest)
    assert not check_opening(com, 5, 7, rest)
    assert not check_opening(com, 5 + R, 6, rest)  # same point, but not canonical
    assert not check_opening(com, 5, 6 + R, rest)
    assert not check_opening(com, -1, 6, rest)
    assert not check_opening(com, 5, 6, keccak(b"x"))
    assert not check_opening(com, 5, 6, rest[:31])
    assert not check_opening(com, 5, 6, rest + b"\x00")
    assert not check_opening(com[:31], 5, 6, rest)
    assert not check_opening(keccak(com), 5, 6, rest)
