"""Pedersen verifiable secret sharing over the BN254 (alt_bn128) G1 group.

Source: T. P. Pedersen, "Non-interactive and information-theoretic secure verifiable secret
sharing", CRYPTO '91 (LNCS 576). The curve is the one behind the EVM precompiles 0x06/0x07
(EIP-196): ``y^2 = x^3 + 3`` over F_P, generator ``G = (1, 2)``, prime group order ``R``
(:data:`offchain.crypto.field.R`) and cofactor 1, so every affine point on the curve lies in G1.

Shapes and fields:

* scalars (secrets, salts, share values, polynomial coefficients, evaluation points) are
  elements of F_R, i.e. Python ``int`` values in ``[0, R)``;
* points are :class:`fastecdsa.point.Point` objects on :data:`CURVE` (BN254 G1). The identity
  ("point at infinity") is ``0 * G``; it serialises to ``(0, 0)``, as in the precompiles.

Scheme: to share ``secret`` with threshold ``T`` the dealer picks random polynomials
``f(X) = Σ a_k X^k`` and ``g(X) = Σ b_k X^k`` of degree ``≤ T`` with ``f(0) = secret`` and
``g(0) = salt``, publishes ``C_k = a_k G + b_k H`` for ``k = 0..T`` and gives the holder of
evaluation point ``x`` the pair ``(f(x), g(x))``. A holder checks
``f(x) G + g(x) H == Σ_k x^k C_k``. The 32-byte :func:`commitment_hash` of the vector is what
goes on chain; :func:`check_opening` is the off-chain mirror of the contract's opening check.

Security / leakage:

* the commitments are perfectly (information-theoretically) hiding and computationally binding
  under the discrete-logarithm assumption in G1 — a dealer who could open a commitment two ways
  would learn ``log_G(H)``. The DL in BN254 G1 is estimated at roughly 100-bit security
  (it reduces via the pairing to F_P^12, where the exTNFS attacks apply);
* any ``T`` shares, even together with all commitments, reveal nothing about the secret; any
  ``T + 1`` shares that verify against a length-``T + 1`` commitment vector determine it
  (callers must check that length: a longer vector lets the dealer use a higher degree);
* public: ``T`` (the vector length), the evaluation points and the number of shares;
* arithmetic is variable-time (Python ints, fastecdsa's backend is not documented as
  constant-time); acceptable because the values are only handled by parties entitled to them;
* randomness: ``secrets.randbelow`` (the OS CSPRNG).

Why evaluation points are addresses: the holder of a share is identified by the 160-bit integer
value of its Ethereum address, which the contract sees as ``msg.sender``. Addresses are
distinct for distinct participants, never 0 for a real account, and ``< 2**160 < R``, so they
are valid distinct nonzero interpolation nodes with no reduction modulo ``R``; no index
registry (whose order someone could influence) is needed. Any distinct nonzero elements of F_R
are accepted, though.

Generators: ``G = (1, 2)``; ``H`` is derived by try-and-increment from keccak-256 (see
:data:`H_X`), so nobody knows ``log_G(H)``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from secrets import randbelow

from eth_utils.crypto import keccak
from fastecdsa.curve import Curve
from fastecdsa.point import Point

from offchain.crypto.field import R, check_element
from offchain.crypto.shamir import SharingError, reconstruct_vector

P = 21888242871839275222246405745257275088696311157297823662689037894645226208583
"""The BN254 base field modulus (``P ≡ 3 mod 4``); point coordinates are in ``[0, P)``."""

CURVE_B = 3
"""BN254 G1 is ``y^2 = x^3 + CURVE_B`` over F_P."""

CURVE = Curve("BN254", P, 0, CURVE_B, R, 1, 2)
"""BN254 / alt_bn128 G1 as a fastecdsa curve (EIP-196 parameters)."""

G: Point = CURVE.G
"""Generator ``(1, 2)`` of G1."""

H_DOMAIN = b"MPCMarket/pedersen/H"
"""Domain-separation prefix for the derivation of :data:`H`."""

H_X = 0x0AD60F0BDE053FA84253C242302A2E760D8989580A1E13E3C9DF88C572D598FD
"""x coordinate of :data:`H`.

Derivation (try-and-increment; the first counter, 0, already succeeds): for ``ctr = 0, 1, ...``
let ``x = int(keccak256(H_DOMAIN || ctr as 4 bytes big-endian)) mod P`` and
``rhs = x^3 + 3 mod P``; if ``rhs`` is a square (Euler's criterion) take
``y = rhs^((P+1)/4) mod P``, replace it by ``P - y`` if odd, and stop. Because ``x`` is the
output of a hash, nobody knows the discrete logarithm of ``H`` to base ``G``.
"""

H_Y = 0x17BC53EB26C2DA0BA80350BA09B910CD8A6E61EEB45EA668A5051FABDA18C382
"""y coordinate of :data:`H` (the even square root)."""

H: Point = Point(H_X, H_Y, CURVE)
"""Second generator of G1, with unknown discrete logarithm to base :data:`G`."""

IDENTITY: Point = 0 * G
"""The identity of G1 (point at infinity); encoded as ``(0, 0)``."""


@dataclass(frozen=True)
class Dealing:
    """Output of :func:`deal`.

    ``commitments``: ``T + 1`` points of BN254 G1, ``C_k = a_k G + b_k H``. Public.
    ``shares``: maps each evaluation point ``x`` (element of F_R) to ``(f(x), g(x))``, two
    elements of F_R. Secret: each entry goes only to the holder of ``x``. Excluded from ``repr``
    so that logging a dealing does not leak shares.
    """

    commitments: tuple[Point, ...]
    shares: dict[int, tuple[int, int]] = field(repr=False)

    @property
    def threshold(self) -> int:
        """``T``: the polynomial degree bound; ``T + 1`` shares reconstruct."""
        return len(self.commitments) - 1


def _is_element(v: object) -> bool:
    return type(v) is int and 0 <= v < R


def _check_threshold(threshold: int) -> None:
    if type(threshold) is not int or threshold < 1:
        raise SharingError(f"threshold must be an int >= 1, got {threshold!r}")


def _eval_poly(coeffs: Sequence[int], x: int) -> int:
    acc = 0
    for c in reversed(coeffs):  # Horner
        acc = (acc * x + c) % R
    return acc


def _eval_commitments(commitments: Sequence[Point], x: int) -> Point:
    acc = commitments[-1]
    for c in reversed(commitments[:-1]):  # Horner in the group: Σ_k x^k C_k
        acc = x * acc + c
    return acc


def commit_point(secret: int, salt: int) -> Point:
    """Pedersen commitment ``secret * G + salt * H`` (a point of BN254 G1).

    ``secret``, ``salt``: elements of F_R. Raises ``TypeError`` if one is not an int,
    ``ValueError`` if one is outside ``[0, R)``. Perfectly hiding if ``salt`` is uniform;
    binding under discrete log.
    """
    check_element(secret, "secret")
    check_element(salt, "salt")
    return secret * G + salt * H


def deal(secret: int, salt: int, threshold: int, xs: Sequence[int]) -> Dealing:
    """Share ``secret`` (blinded by ``salt``) among the holders of the evaluation points ``xs``.

    ``secret``, ``salt``: elements of F_R (``salt`` should be uniformly random for hiding).
    ``threshold``: ``T >= 1``; any ``T + 1`` shares reconstruct, any ``T`` reveal nothing.
    ``xs``: distinct nonzero elements of F_R (in practice the integer values of the holders'
    Ethereum addresses), at least ``T + 1`` of them. Returns a :class:`Dealing` with ``T + 1``
    commitments and one share per ``x`` (in the order of ``xs``); all other coefficients are
    uniform in F_R.

    Raises :class:`~offchain.crypto.shamir.SharingError` (a ``ValueError``) if ``threshold < 1``, an
    ``x`` is not an int in ``[1, R)``, ``xs`` has duplicates or fewer than ``T + 1`` entries;
    ``TypeError``/``ValueError`` if ``secret`` or ``salt`` is not an element of F_R.
    """
    check_element(secret, "secret")
    check_element(salt, "salt")
    _check_threshold(threshold)
    points = list(xs)
    for x in points:
        if not _is_element(x) or x == 0:
            raise SharingError(f"evaluation point {x!r} must be an int in [1, R)")
    if len(set(points)) != len(points):
        raise SharingError("evaluation points must be distinct")
    if len(points) < threshold + 1:
        raise SharingError(
            f"need at least threshold + 1 = {threshold + 1} evaluation points, got {len(points)}"
        )
    f = [secret] + [randbelow(R) for _ in range(threshold)]
    g = [salt] + [randbelow(R) for _ in range(threshold)]
    commitments = tuple(a * G + b * H for a, b in zip(f, g, strict=True))
    shares = {x: (_eval_poly(f, x), _eval_poly(g, x)) for x in points}
    return Dealing(commitments=commitments, shares=shares)


def verify_share(commitments: Sequence[Point], x: int, share_s: int, share_r: int) -> bool:
    """Check ``share_s * G + share_r * H == Σ_k x^k C_k`` (right side by Horner in G1).

    ``commitments``: the dealer's points ``C_0..C_T``; ``x``: the holder's evaluation point
    (element of F_R, nonzero); ``share_s``, ``share_r``: the received share ``(f(x), g(x))``.
    Returns ``False`` — never raises — for share values that are not ints in ``[0, R)`` and for
    an empty commitment vector, since both come from the (possibly malicious) dealer. Raises
    ``SharingError`` if ``x`` is not an int in ``[1, R)`` (the caller's own value).

    The caller must also check that ``len(commitments) == T + 1`` and that
    ``commitment_hash(commitments)`` equals the on-chain value; this function does neither.
    """
    if not _is_element(x) or x == 0:
        raise SharingError(f"evaluation point {x!r} must be an int in [1, R)")
    if not (_is_element(share_s) and _is_element(share_r)) or len(commitments) == 0:
        return False
    return share_s * G + share_r * H == _eval_commitments(commitments, x)


def reconstruct(shares: Mapping[int, tuple[int, int]], threshold: int) -> tuple[int, int]:
    """Recover ``(secret, salt) = (f(0), g(0))`` from at least ``threshold + 1`` shares.

    ``shares`` maps evaluation points (distinct ints in ``[1, R)``) to ``(f(x), g(x))``
    (elements of F_R). The ``T + 1`` smallest ``x`` form the Lagrange basis; every further share
    is checked against the interpolated polynomials (via
    :func:`offchain.crypto.shamir.reconstruct_vector`). Shares should be verified with
    :func:`verify_share` first: with exactly ``T + 1`` shares a bad one is not detected here and
    yields a wrong pair (which then fails :func:`check_opening`).

    Raises :class:`~offchain.crypto.shamir.SharingError` if ``threshold < 1``, fewer than ``T + 1``
    shares are given or an ``x``/value is invalid;
    :class:`~offchain.crypto.shamir.InconsistentSharesError` if an extra share is off the
    polynomial.
    """
    _check_threshold(threshold)
    secret, salt = reconstruct_vector({x: list(v) for x, v in shares.items()}, threshold)
    return secret, salt


def encode_point(point: Point) -> tuple[int, int]:
    """Affine coordinates ``(x, y)`` of a point of BN254 G1, ints in ``[0, P)``.

    The identity encodes as ``(0, 0)``, the EIP-196 convention (what the precompiles return).
    """
    if point == IDENTITY:
        return (0, 0)
    return (point.x, point.y)


def decode_point(x: int, y: int) -> Point:
    """Parse a point received from a peer: inverse of :func:`encode_point` minus the identity.

    Raises ``ValueError`` if ``x`` or ``y`` is not an int in ``[0, P)``, if ``(x, y)`` is
    ``(0, 0)`` (the identity, never a valid commitment) or not on ``y^2 = x^3 + 3``. Since the
    cofactor is 1, any point on the curve is in G1; no subgroup check is needed.
    """
    for name, v in (("x", x), ("y", y)):
        if type(v) is not int or not 0 <= v < P:
            raise ValueError(f"point coordinate {name}={v!r} must be an int in [0, P)")
    if x == 0 and y == 0:
        raise ValueError("the identity (0, 0) is not accepted as a point")
    if (y * y - (x * x * x + CURVE_B)) % P != 0:
        raise ValueError(f"({x}, {y}) is not on the BN254 curve y^2 = x^3 + 3")
    try:
        return Point(x, y, CURVE)
    except ValueError as exc:  # pragma: no cover - the checks above already exclude this
        raise ValueError(f"({x}, {y}) is not a valid BN254 G1 point: {exc}") from exc


def _abi_words(*words: int) -> bytes:
    return b"".join(w.to_bytes(32, "big") for w in words)


def rest_hash(commitments: Sequence[Point]) -> bytes:
    """``keccak256(abi.encode(C1.x, C1.y, ..., CT.x, CT.y))`` (32 bytes); skips ``C_0``.

    Coordinates as by :func:`encode_point`; with ``T = 0`` it is ``keccak256(b"")``. Raises
    ``ValueError`` if ``commitments`` is empty.
    """
    if len(commitments) == 0:
        raise ValueError("commitment vector is empty")
    return keccak(_abi_words(*(w for c in commitments[1:] for w in encode_point(c))))


def _opening_hash(c0: Point, rest: bytes) -> bytes:
    return keccak(_abi_words(*encode_point(c0)) + rest)


def commitment_hash(commitments: Sequence[Point]) -> bytes:
    """``keccak256(abi.encode(C0.x, C0.y, rest_hash(commitments)))``: 32 bytes, stored on chain.

    Binds the whole commitment vector (under collision resistance of keccak-256). Raises
    ``ValueError`` if ``commitments`` is empty.
    """
    rest = rest_hash(commitments)  # raises on an empty vector
    return _opening_hash(commitments[0], rest)


def check_opening(commitment: bytes, secret: int, salt: int, rest: bytes) -> bool:
    """Whether ``(secret, salt)`` opens the on-chain ``commitment`` given the 32-byte ``rest``.

    True iff ``keccak256(abi.encode(X, Y, rest)) == commitment`` for
    ``(X, Y) = commit_point(secret, salt)``, compared with ``hmac.compare_digest``. Returns
    ``False`` — never raises — if ``secret`` or ``salt`` is not an int in ``[0, R)`` (so an
    opening is unique: ``secret + R`` is rejected) or ``rest`` is not 32 bytes.
    """
    if not (_is_element(secret) and _is_element(salt)):
        return False
    if not isinstance(rest, bytes | bytearray) or len(rest) != 32:
        return False
    if not isinstance(commitment, bytes | bytearray):
        return False
    expected = _opening_hash(commit_point(secret, salt), bytes(rest))
    return hmac.compare_digest(expected, bytes(commitment))
