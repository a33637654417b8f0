"""Properties of F_R arithmetic and of vectorised Shamir sharing (offchain.crypto.field,
.shamir)."""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.crypto.field import (
    HALF_R,
    R,
    batch_inv,
    from_signed,
    inv,
    lagrange_coefficients_at,
    lagrange_coefficients_at_zero,
    to_signed,
)
from offchain.crypto.shamir import (
    InconsistentSharesError,
    SharingError,
    reconstruct_vector,
    share_vector,
)

FAST = settings(max_examples=60, deadline=None)
elements = st.integers(min_value=0, max_value=R - 1)
nonzero = st.integers(min_value=1, max_value=R - 1)


def poly_eval(coeffs: list[int], x: int) -> int:
    return sum(c * pow(x, k, R) for k, c in enumerate(coeffs)) % R


# ---------------------------------------------------------------- field


def test_modulus_is_the_bn254_prime() -> None:
    assert R == 0x30644E72E131A029B85045B68181585D2833E84879B9709143E1F593F0000001
    assert HALF_R == (R - 1) // 2
    # Miller-Rabin with fixed bases (deterministic test, no randomness needed here)
    d, s = R - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, R)
        if x in (1, R - 1):
            continue
        for _ in range(s - 1):
            x = x * x % R
            if x == R - 1:
                break
        else:
            pytest.fail(f"R is composite (witness {a})")
    bn128 = pytest.importorskip("py_ecc.bn128")
    assert bn128.curve_order == R


@FAST
@given(nonzero)
def test_inv(a: int) -> None:
    assert a * inv(a) % R == 1
    assert inv(a + R) == inv(a)


def test_inv_zero() -> None:
    for z in (0, R, -R):
        with pytest.raises(ZeroDivisionError):
            inv(z)
    with pytest.raises(ZeroDivisionError):
        batch_inv([1, 0, 2])


@FAST
@given(st.lists(nonzero, max_size=8))
def test_batch_inv(values: list[int]) -> None:
    assert batch_inv(values) == [inv(v) for v in values]


@FAST
@given(st.data(), st.integers(min_value=1, max_value=8))
def test_lagrange_interpolates(data: st.DataObject, k: int) -> None:
    xs = data.draw(st.lists(nonzero, min_size=k, max_size=k, unique=True))
    coeffs = data.draw(st.lists(elements, min_size=k, max_size=k))
    point = data.draw(elements)
    ys = [poly_eval(coeffs, x) for x in xs]
    lam0 = lagrange_coefficients_at_zero(xs)
    assert sum(c * y for c, y in zip(lam0, ys, strict=True)) % R == coeffs[0]
    lam = lagrange_coefficients_at(xs, point)
    assert sum(c * y for c, y in zip(lam, ys, strict=True)) % R == poly_eval(coeffs, point)


@pytest.mark.parametrize("xs", [[], [1, 1], [0, 2], [1, R], [-1, 2], [1, True]])
def test_lagrange_rejects_bad_nodes(xs: list[int]) -> None:
    with pytest.raises(ValueError):
        lagrange_coefficients_at_zero(xs)


@FAST
@given(st.integers(min_value=-(HALF_R - 1), max_value=HALF_R - 1))
def test_signed_round_trip(v: int) -> None:
    e = from_signed(v)
    assert 0 <= e < R
    assert to_signed(e) == v


def test_signed_bounds() -> None:
    for v in (HALF_R, -HALF_R, R, -R, 2**300):
        with pytest.raises(OverflowError):
            from_signed(v)
    # The two elements no signed value maps to are reported as wrap-around.
    for e in (HALF_R, HALF_R + 1):
        with pytest.raises(OverflowError):
            to_signed(e)
    for e in (-1, R):
        with pytest.raises(ValueError):
            to_signed(e)
    assert to_signed(R - 1) == -1
    assert from_signed(-1) == R - 1


# ---------------------------------------------------------------- shamir


@st.composite
def sharing_cases(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    n = draw(st.integers(min_value=1, max_value=7))
    t = draw(st.integers(min_value=0, max_value=n - 1))
    secret = draw(st.lists(elements, max_size=4))
    return t, n, secret


@FAST
@given(sharing_cases())
def test_round_trip_every_subset(case: tuple[int, int, list[int]]) -> None:
    t, n, secret = case
    shares = share_vector(secret, t, n)
    assert len(shares) == n and all(len(s) == len(secret) for s in shares)
    assert all(0 <= e < R for s in shares for e in s)
    for subset in combinations(range(n), t + 1):
        assert reconstruct_vector({i + 1: shares[i] for i in subset}, t) == secret
    # all n at once: the n - t - 1 extra shares are checked and pass
    assert reconstruct_vector({i + 1: shares[i] for i in range(n)}, t) == secret


@FAST
@given(sharing_cases(), st.data())
def test_t_shares_are_consistent_with_any_secret(
    case: tuple[int, int, list[int]], data: st.DataObject
) -> None:
    """What a test can show about privacy, stated honestly.

    Perfect secrecy is a statement about distributions: for each fixed set of t parties, the
    map from the t random coefficients to their t shares is a bijection F_R^t -> F_R^t for
    every secret (a Vandermonde system), so the view is uniform whatever the secret. We check
    the consequence that is observable: for an arbitrary candidate secret s', the t observed
    shares plus (0, s') lie on exactly one polynomial of degree <= t, which yields a complete,
    valid sharing of s' agreeing with the observed shares. So the observed shares exclude no
    secret. Sampling cannot prove uniformity; the bijection argument does.
    """
    t, n, secret = case
    shares = share_vector(secret, t, n)
    seen = sorted(data.draw(st.permutations(range(n)))[:t])
    candidate = data.draw(st.lists(elements, min_size=len(secret), max_size=len(secret)))
    nodes = [0] + [i + 1 for i in seen]
    # The unique polynomial through (0, s'_k) and the t observed (x_i, y_i), evaluated by a
    # plain Lagrange formula (independent of the code under test; node 0 is allowed here).
    forged: list[list[int]] = []
    for party in range(n):
        x = party + 1
        row = []
        for k in range(len(secret)):
            ys = [candidate[k]] + [shares[i][k] for i in seen]
            row.append(_interpolate(nodes, ys, x))
        forged.append(row)
    for i in seen:
        assert forged[i] == shares[i]
    assert reconstruct_vector({p + 1: forged[p] for p in range(n)}, t) == candidate


def _interpolate(nodes: list[int], ys: list[int], x: int) -> int:
    total = 0
    for i, (xi, yi) in enumerate(zip(nodes, ys, strict=True)):
        num, den = 1, 1
        for j, xj in enumerate(nodes):
            if j != i:
                num = num * (x - xj) % R
                den = den * (xi - xj) % R
        total += yi * num * inv(den)
    return total % R


def test_shares_are_fresh_randomness() -> None:
    a = share_vector([5, 5], 2, 4)
    b = share_vector([5, 5], 2, 4)
    assert a != b  # probability of equality is R**-4
    assert a[0][0] != a[0][1]  # independent polynomial per entry


def test_threshold_zero_is_replication() -> None:
    assert share_vector([7, 8], 0, 3) == [[7, 8]] * 3


@FAST
@given(sharing_cases(), st.data())
def test_tampered_share_detected(case: tuple[int, int, list[int]], data: st.DataObject) -> None:
    t, n, secret = case
    if n < t + 2 or not secret:
        return  # no extra share to check against
    shares = share_vector(secret, t, n)
    bad = data.draw(st.integers(min_value=0, max_value=n - 1))
    k = data.draw(st.integers(min_value=0, max_value=len(secret) - 1))
    delta = data.draw(st.integers(min_value=1, max_value=R - 1))
    shares[bad][k] = (shares[bad][k] + delta) % R
    with pytest.raises(InconsistentSharesError) as err:
        reconstruct_vector({i + 1: shares[i] for i in range(n)}, t)
    assert err.value.index == k
    if bad + 1 not in err.value.basis:
        assert err.value.x == bad + 1


@pytest.mark.parametrize(
    ("secret", "t", "n"),
    [([1], 0, 0), ([1], 1, 1), ([1], -1, 3), ([1], 3, 3), ([R], 1, 3), ([-1], 1, 3),
     ([True], 1, 3), ([1], True, 3)],
)
def test_share_rejects_bad_parameters(secret: list[int], t: int, n: int) -> None:
    with pytest.raises(SharingError):
        share_vector(secret, t, n)


def test_reconstruct_rejects_bad_input() -> None:
    shares = share_vector([1, 2], 1, 3)
    cases = [
        ({1: shares[0]}, 1),  # too few
        ({0: shares[0], 2: shares[1]}, 1),  # x = 0
        ({1: shares[0], 2: shares[1][:1]}, 1),  # ragged
        ({1: shares[0], 2: [R, 0]}, 1),  # not an element
        ({1: shares[0], 2: shares[1]}, -1),  # bad threshold
    ]
    for mapping, t in cases:
        with pytest.raises(SharingError):
            reconstruct_vector(mapping, t)
