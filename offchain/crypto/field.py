"""Arithmetic in the BN254 scalar field F_R.

Field elements are Python ``int`` values in ``[0, R)``. Signed integers ``v`` with
``|v| < R // 2`` are embedded as ``v mod R`` (:func:`from_signed`) and recovered with the
centered lift (:func:`to_signed`). ``R`` is the order of the BN254 (alt_bn128) G1 group, the
same prime the EVM precompiles 0x06-0x08 work modulo (EIP-196/197).

Nothing here is secret-dependent in a way that matters for the protocol: the functions run in
variable time (Python big integers), which is acceptable because shares are only combined by
the parties who are entitled to see them.
"""

from __future__ import annotations

from collections.abc import Sequence

R = 21888242871839275222246405745257275088548364400416034343698204186575808495617
"""The BN254 scalar field modulus, a 254-bit prime (0x30644e72...f0000001).

Same value as ``py_ecc.bn128.curve_order`` and EIP-197's group order. (The first draft of the
interface spec printed a different, composite number ending in ...620225537; that is a typo.)
"""

HALF_R = R // 2
"""Bound for the signed embedding: signed values must satisfy ``|v| < HALF_R``."""


def check_element(a: int, what: str = "field element") -> None:
    """Check that ``a`` is an element of F_R in canonical form: an ``int`` (not a bool or an
    int subclass) in ``[0, R)``. Raises TypeError for another type, ValueError (naming
    ``what``) for a value outside the range; returns None otherwise."""
    if type(a) is not int:
        raise TypeError(f"{what} must be an int, got {type(a).__name__}")
    if not 0 <= a < R:
        raise ValueError(f"{what} {a} is outside [0, R)")


def inv(a: int) -> int:
    """Multiplicative inverse of ``a`` in F_R.

    ``a`` is reduced modulo R first. Raises ``ZeroDivisionError`` if ``a ≡ 0 (mod R)``.
    """
    a %= R
    if a == 0:
        raise ZeroDivisionError("0 has no inverse in F_R")
    return pow(a, -1, R)


def batch_inv(values: Sequence[int]) -> list[int]:
    """Inverses of all ``values`` with one modular exponentiation (Montgomery's trick).

    Returns a list of the same length. Raises ``ZeroDivisionError`` if any value is
    ``≡ 0 (mod R)``.
    """
    prefix: list[int] = []
    acc = 1
    for v in values:
        v %= R
        if v == 0:
            raise ZeroDivisionError("0 has no inverse in F_R")
        prefix.append(acc)
        acc = acc * v % R
    acc_inv = pow(acc, -1, R)
    out = [0] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = prefix[i] * acc_inv % R
        acc_inv = acc_inv * values[i] % R
    return out


def lagrange_coefficients_at(xs: Sequence[int], x: int) -> list[int]:
    """Lagrange basis polynomials for the nodes ``xs`` evaluated at the point ``x``.

    For distinct nodes ``x_0..x_k`` returns ``λ_i = Π_{j≠i} (x - x_j) / (x_i - x_j)``, so that
    any polynomial ``f`` of degree ``≤ k`` satisfies ``f(x) = Σ λ_i f(x_i)`` (all in F_R).

    ``xs`` must be a non-empty sequence of distinct ints in ``[1, R)``; ``x`` an int in
    ``[0, R)``. Raises ``ValueError`` otherwise.
    """
    nodes = list(xs)
    if not nodes:
        raise ValueError("need at least one interpolation node")
    for xi in nodes:
        if type(xi) is not int or not 0 < xi < R:
            raise ValueError(f"interpolation node {xi!r} must be an int in [1, R)")
    if len(set(nodes)) != len(nodes):
        raise ValueError("interpolation nodes must be distinct")
    if type(x) is not int or not 0 <= x < R:
        raise ValueError(f"evaluation point {x!r} must be an int in [0, R)")
    if x in nodes:
        return [1 if xi == x else 0 for xi in nodes]
    numerator_all = 1
    for xj in nodes:
        numerator_all = numerator_all * (x - xj) % R
    denominators = []
    for i, xi in enumerate(nodes):
        d = (x - xi) % R
        for j, xj in enumerate(nodes):
            if j != i:
                d = d * (xi - xj) % R
        denominators.append(d)
    return [numerator_all * d_inv % R for d_inv in batch_inv(denominators)]


def lagrange_coefficients_at_zero(xs: Sequence[int]) -> list[int]:
    """Lagrange coefficients ``λ_i`` with ``f(0) = Σ λ_i f(x_i)`` for ``deg f < len(xs)``.

    ``xs``: distinct nonzero x coordinates (ints in ``[1, R)``). Returns a list of
    ``len(xs)`` elements of F_R. Raises ``ValueError`` for an empty, repeated, zero or
    out-of-range node.
    """
    return lagrange_coefficients_at(xs, 0)


def from_signed(v: int) -> int:
    """Embed a signed integer into F_R: returns ``v mod R``.

    Raises ``OverflowError`` if ``|v| >= R // 2`` (such a value could not be recovered
    unambiguously by :func:`to_signed`), ``TypeError`` if ``v`` is not an int.
    """
    if type(v) is not int:
        raise TypeError(f"signed value must be an int, got {type(v).__name__}")
    if abs(v) >= HALF_R:
        raise OverflowError(f"|{v}| >= R//2: cannot be represented without wrap-around")
    return v % R


def to_signed(e: int) -> int:
    """Centered lift of a field element: ``e`` if ``e <= R//2`` else ``e - R``.

    Inverse of :func:`from_signed`. Raises ``ValueError`` if ``e`` is not in ``[0, R)`` and
    ``OverflowError`` if the lift is ``±R//2`` — the two elements no :func:`from_signed` value
    maps to, so seeing one means a computation wrapped around the modulus.
    """
    check_element(e)
    v = e if e <= HALF_R else e - R
    if abs(v) >= HALF_R:
        raise OverflowError(f"field element {e} lies outside the signed range |v| < R//2")
    return v
