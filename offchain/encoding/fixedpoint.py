"""Decimal fixed-point encoding of data values as signed integers (then field elements).

A value ``x`` is encoded as the integer ``round_half_even(x * SCALE)`` with ``SCALE = 10**12``.
Values with at most ``SCALE_DIGITS = 12`` decimal places are therefore encoded exactly; values
with more are rounded to the nearest multiple of ``10**-12`` (ties to even). Nothing goes through
binary floating point, so ``0.1`` stays exactly ``0.1``.

Why no aggregate wraps around R (see :mod:`offchain.crypto.field`): inputs satisfy ``|x| < MAX_ABS =
10**18``, so ``|encode(x)| <= MAX_ENCODED = 10**30``. A product of two encoded values (power 2,
scale ``SCALE**2``) is at most ``10**60`` in absolute value, and a sum of up to ``MAX_TERMS =
2**40`` such terms is at most ``2**40 * 10**60 ≈ 1.1e72 < R // 2 ≈ 1.09e76``. Sums of plain
values (power 1) are far smaller still. So every such aggregate, computed in F_R, lifts back to
the exact signed integer (:func:`offchain.crypto.field.to_signed`). The margin is checked at
import (:func:`check_no_wrap_bound` raises :class:`FixedPointError` if the bounds are ever
changed so that it no longer holds). ``MAX_TERMS`` bounds the rows of *all* providers together:
each data source holds at most that many rows, and the committee refuses a reconstructed total
whose row count exceeds it (:meth:`offchain.protocol.job.CommitteeJob.reconstruct`).
"""

from __future__ import annotations

import re
from decimal import MAX_EMAX, MIN_EMIN, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from fractions import Fraction

from offchain.crypto.field import HALF_R
from offchain.errors import MarketError

SCALE_DIGITS = 12
"""Decimal places kept exactly."""

SCALE = 10**SCALE_DIGITS
"""Encoded integer per unit of value."""

MAX_ABS = Decimal(10**18)
"""Exclusive bound on the absolute value of an input."""

MAX_ENCODED = 10**30
"""Bound on ``|encode(x)|`` for ``|x| < MAX_ABS`` (rounding can reach it, not exceed it)."""

MAX_TERMS = 2**40
"""Number of power-2 terms whose sum is guaranteed not to wrap around R."""

MAX_TEXT_LENGTH = 256
"""Longest accepted input text, in characters."""

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# Enough precision for any integer below 10**31 and an exponent range wide enough for any
# parsed literal, so quantize() rounds exactly once (no double rounding).
_CTX = Context(prec=64, Emax=MAX_EMAX, Emin=MIN_EMIN, rounding=ROUND_HALF_EVEN)


class FixedPointError(MarketError, ValueError):
    """A value cannot be parsed or encoded as fixed point, or the fixed-point bounds are unsound
    (the message says what and why)."""


def check_no_wrap_bound(max_terms: int = MAX_TERMS, max_encoded: int = MAX_ENCODED) -> None:
    """Check that a sum of ``max_terms`` products of two encoded values (each ``|v| <=
    max_encoded``) stays below ``HALF_R`` in absolute value, so no aggregate wraps around R.

    Raises :class:`FixedPointError` if ``max_terms * max_encoded**2 >= HALF_R``. Called at import
    with the module's bounds (a ``raise``, not an ``assert``: it also runs under ``python -O``).
    """
    if not max_terms * max_encoded**2 < HALF_R:
        raise FixedPointError(f"fixed-point bounds would allow wrap-around: {max_terms} terms of "
                              f"|v| <= {max_encoded}**2 reach R // 2")


check_no_wrap_bound()


def parse_decimal(text: str) -> Decimal:
    """Parse a decimal literal strictly.

    Accepts an optional sign, ASCII digits with an optional decimal point, and an optional
    exponent (``"12"``, ``"-0.5"``, ``".25"``, ``"1e-3"``, ``"2.5E+4"``). Rejects, with
    :class:`FixedPointError`: non-strings, empty text, surrounding whitespace, NaN, infinities,
    non-ASCII digits, underscores, text longer than ``MAX_TEXT_LENGTH``, anything else that is
    not a number, and values with ``|x| >= MAX_ABS`` (``10**18``). The result is exact (no
    rounding happens here).
    """
    if not isinstance(text, str):
        raise FixedPointError(f"expected text, got {type(text).__name__}")
    if not text:
        raise FixedPointError("empty value")
    if len(text) > MAX_TEXT_LENGTH:
        raise FixedPointError(f"value text longer than {MAX_TEXT_LENGTH} characters")
    if not _NUMBER.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise FixedPointError(
            f"{shown!r} is not a decimal number (expected e.g. 12, -0.5, 1e-3; "
            "no whitespace, NaN or infinity)"
        )
    try:
        value = Decimal(text)
    except InvalidOperation as exc:  # exponent beyond what decimal can represent
        raise FixedPointError(f"exponent of {text[:40]!r} is out of range") from exc
    _check_range(value)
    return value


def _check_range(x: Decimal) -> None:
    if not x.is_finite():
        raise FixedPointError(f"{x} is not a finite number")
    if x.copy_abs().compare_total(MAX_ABS) >= 0:
        raise FixedPointError(f"|{x}| is not below the bound {MAX_ABS} (10**18)")


def encode(x: Decimal) -> int:
    """Encode ``x`` as the signed integer ``round_half_even(x * SCALE)``.

    Exact for values with at most 12 decimal places. The result satisfies
    ``|result| <= MAX_ENCODED``. Raises :class:`FixedPointError` if ``x`` is not a finite
    ``Decimal`` with ``|x| < MAX_ABS``.
    """
    if not isinstance(x, Decimal):
        raise FixedPointError(f"expected Decimal, got {type(x).__name__}")
    _check_range(x)
    sign, digits, exponent = x.as_tuple()
    assert isinstance(exponent, int)
    scaled = Decimal((sign, digits, exponent + SCALE_DIGITS))  # exact x * SCALE
    try:
        rounded = scaled.quantize(Decimal(1), rounding=ROUND_HALF_EVEN, context=_CTX)
    except InvalidOperation as exc:  # pragma: no cover - excluded by the range check
        raise FixedPointError(f"cannot encode {x}") from exc
    return int(rounded)


def scaled_to_fraction(v: int, power: int) -> Fraction:
    """Exact rational value ``v / SCALE**power`` of an aggregate carrying ``power`` scales.

    ``power`` is 1 for sums of encoded values, 2 for sums of products of two encoded values,
    0 for plain counts. Raises :class:`FixedPointError` if ``v`` is not an int or ``power`` is
    not an int ``>= 0``.
    """
    if type(v) is not int:
        raise FixedPointError(f"value must be an int, got {type(v).__name__}")
    if type(power) is not int or power < 0:
        raise FixedPointError(f"power must be an int >= 0, got {power!r}")
    return Fraction(v, SCALE**power)
