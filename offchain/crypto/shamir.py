"""Shamir secret sharing over F_R, vectorised over a vector of secrets.

Source: A. Shamir, "How to share a secret", Communications of the ACM 22(11), 1979.

Parameters: ``n >= 1`` parties, threshold ``t`` with ``0 <= t < n``. Each secret ``s`` is the
constant term of an independent, uniformly random polynomial ``f`` of degree ``<= t`` over F_R;
party ``i`` (0-based) receives ``f(i + 1)``.

Security (information-theoretic, semi-honest): any ``t + 1`` shares determine ``f`` and hence
``s``; any ``t`` or fewer shares are uniformly distributed in F_R^t whatever the secret, so they
reveal nothing about it. Each vector entry uses its own polynomial, so shares of different
entries are independent too. Public, i.e. leaked: the vector length ``L``, ``t`` and ``n``.
Not covered: a malicious dealer (nothing proves the shares lie on one polynomial) and malicious
share holders beyond detection at reconstruction time (see :func:`reconstruct_vector`).

Randomness: ``secrets.randbelow`` (the OS CSPRNG).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from secrets import randbelow

from offchain.crypto.field import R, lagrange_coefficients_at
from offchain.errors import MarketError


class SharingError(MarketError, ValueError):
    """Invalid sharing parameters or share data (bad t/n, missing shares, ragged vectors)."""


class InconsistentSharesError(SharingError):
    """An extra share does not lie on the polynomial interpolated from the basis shares.

    ``x`` is the x coordinate of the first share found off the polynomial, ``index`` the vector
    entry where it disagrees and ``basis`` the x coordinates used for interpolation. Note: this
    detects inconsistency but does not by itself identify the faulty party — if a basis share is
    the wrong one, an honest extra share is the one reported.
    """

    def __init__(self, x: int, index: int, basis: tuple[int, ...]) -> None:
        super().__init__(
            f"share at x={x} (entry {index}) is inconsistent with the degree-"
            f"{len(basis) - 1} polynomial through x={list(basis)}"
        )
        self.x = x
        self.index = index
        self.basis = basis


def _check_params(threshold: int, n: int | None = None) -> None:
    if type(threshold) is not int or threshold < 0:
        raise SharingError(f"threshold must be an int >= 0, got {threshold!r}")
    if n is not None:
        if type(n) is not int or n < 1:
            raise SharingError(f"n must be an int >= 1, got {n!r}")
        if threshold >= n:
            raise SharingError(f"threshold {threshold} must be < n = {n}")
        if n >= R:
            raise SharingError("n must be smaller than the field modulus")


def _check_vector(values: Sequence[int], what: str) -> None:
    for k, v in enumerate(values):
        if type(v) is not int or not 0 <= v < R:
            raise SharingError(f"{what}[{k}] = {v!r} is not a field element in [0, R)")


def share_vector(secrets: Sequence[int], threshold: int, n: int) -> list[list[int]]:
    """Split each entry of ``secrets`` into ``n`` Shamir shares with threshold ``threshold``.

    ``secrets``: length-L sequence of elements of F_R (ints in ``[0, R)``; use
    :func:`offchain.crypto.field.from_signed` for signed values). Returns a list of ``n`` share
    vectors,
    each of length L, elements of F_R; vector ``i`` is party ``i``'s share, i.e. the evaluations
    at ``x = i + 1``. Any ``threshold + 1`` vectors reconstruct; any ``threshold`` vectors are
    uniformly random and independent of ``secrets``.

    Raises :class:`SharingError` if ``n < 1``, ``threshold < 0``, ``threshold >= n`` or an entry
    is not a field element.
    """
    _check_params(threshold, n)
    _check_vector(secrets, "secrets")
    shares: list[list[int]] = [[0] * len(secrets) for _ in range(n)]
    for k, s in enumerate(secrets):
        # f(x) = s + a_1 x + ... + a_t x^t, coefficients uniform in F_R.
        coeffs = [s] + [randbelow(R) for _ in range(threshold)]
        for i in range(n):
            x = i + 1
            acc = 0
            for c in reversed(coeffs):  # Horner
                acc = (acc * x + c) % R
            shares[i][k] = acc
    return shares


def reconstruct_vector(shares: Mapping[int, Sequence[int]], threshold: int) -> list[int]:
    """Recover the secret vector from at least ``threshold + 1`` share vectors.

    ``shares`` maps x coordinates (party index + 1, ints in ``[1, R)``) to share vectors of a
    common length L (elements of F_R). The ``threshold + 1`` smallest x coordinates form the
    interpolation basis; the secrets are ``f(0)`` by Lagrange interpolation. Every further share
    is checked against the interpolated polynomial. Returns a list of L elements of F_R.

    Raises :class:`SharingError` if ``threshold < 0``, fewer than ``threshold + 1`` shares are
    given, an x coordinate is invalid, vectors have different lengths or contain non-elements;
    :class:`InconsistentSharesError` if an extra share is off the polynomial (with ``t + 1``
    shares exactly, nothing can be checked: any values are consistent).

    Leakage: the output is the secret; the error reveals which x coordinate disagreed.
    """
    _check_params(threshold)
    if len(shares) < threshold + 1:
        raise SharingError(f"need at least {threshold + 1} shares, got {len(shares)}")
    xs = sorted(shares)
    for x in xs:
        if type(x) is not int or not 0 < x < R:
            raise SharingError(f"share x coordinate {x!r} must be an int in [1, R)")
    length = len(shares[xs[0]])
    for x in xs:
        vec = shares[x]
        if len(vec) != length:
            raise SharingError(f"share at x={x} has length {len(vec)}, expected {length}")
        _check_vector(vec, f"shares[{x}]")
    basis = tuple(xs[: threshold + 1])
    lam0 = lagrange_coefficients_at(basis, 0)
    result = [sum(lam * shares[x][k] for lam, x in zip(lam0, basis, strict=True)) % R
              for k in range(length)]
    for extra in xs[threshold + 1:]:
        lam = lagrange_coefficients_at(basis, extra)
        vec = shares[extra]
        for k in range(length):
            expected = sum(c * shares[x][k] for c, x in zip(lam, basis, strict=True)) % R
            if expected != vec[k]:
                raise InconsistentSharesError(extra, k, basis)
    return result
