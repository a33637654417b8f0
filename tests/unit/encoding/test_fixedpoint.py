"""Decimal fixed-point encoding (offchain.encoding.fixedpoint)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.crypto.field import HALF_R, from_signed, to_signed
from offchain.encoding.fixedpoint import (
    MAX_ABS,
    MAX_ENCODED,
    MAX_TERMS,
    SCALE,
    SCALE_DIGITS,
    FixedPointError,
    check_no_wrap_bound,
    encode,
    parse_decimal,
    scaled_to_fraction,
)

FAST = settings(max_examples=200, deadline=None)


@st.composite
def literals(draw: st.DrawFn) -> tuple[str, Fraction]:
    """A decimal literal with at most 12 decimal places and its exact value (independent oracle).

    Written as sign, integer digits, fraction digits, and optionally re-expressed with an
    exponent that moves the point without changing the value or the number of places.
    """
    sign = draw(st.sampled_from(["", "+", "-"]))
    int_part = draw(st.integers(min_value=0, max_value=10**18 - 1))
    places = draw(st.integers(min_value=0, max_value=SCALE_DIGITS))
    frac = draw(st.integers(min_value=0, max_value=10**places - 1)) if places else 0
    value = Fraction(int_part * 10**places + frac, 10**places)
    if sign == "-":
        value = -value
    digits = f"{int_part}" + (f".{frac:0{places}d}" if places else "")
    style = draw(st.sampled_from(["plain", "exp"]))
    if style == "exp" and places:
        # 123.45 -> 12345e-2 (same value, same number of places)
        mantissa = f"{int_part}{frac:0{places}d}".lstrip("0") or "0"
        text = f"{sign}{mantissa}e-{places}"
    else:
        text = f"{sign}{digits}"
    return text, value


@FAST
@given(literals())
def test_round_trip_exact(case: tuple[str, Fraction]) -> None:
    text, value = case
    x = parse_decimal(text)
    assert Fraction(x) == value
    v = encode(x)
    assert abs(v) <= MAX_ENCODED
    assert v == value * SCALE  # exact: an integer
    assert scaled_to_fraction(v, 1) == value
    assert to_signed(from_signed(v)) == v


@FAST
@given(st.decimals(min_value=-(10**18) + 1, max_value=10**18 - 1, allow_nan=False,
                   allow_infinity=False))
def test_rounding_is_half_even_of_exact_product(x: Decimal) -> None:
    # Python's round() of a Fraction rounds half to even: an independent oracle.
    assert encode(x) == round(Fraction(x) * SCALE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.1", 10**11), ("1e-3", 10**9), ("2.5E+4", 25_000 * SCALE), (".25", SCALE // 4),
     ("-0", 0), ("1.", SCALE), ("0.0000000000005", 0), ("0.0000000000015", 2),
     ("0.0000000000025", 2), ("-0.0000000000025", -2), ("1e-1000000", 0),
     ("999999999999999999.9999999999995", 10**30), ("5" + "0" * 200 + "1e-213", 5)],
)
def test_examples(text: str, expected: int) -> None:
    assert encode(parse_decimal(text)) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", " 1", "1 ", "1\n", "nan", "NaN", "sNaN", "inf", "-Infinity", "1e", "e3", "1.2.3",
     "0x10", "1_000", "\u0661", "--1", "+", ".", "-.", "1,5", "1e18", "-1e18",
     "1000000000000000000", "1e99999999999999999999", "1" * 300, "1e+"],
)
def test_bad_text(text: str) -> None:
    with pytest.raises(FixedPointError):
        parse_decimal(text)


def test_error_messages_say_why() -> None:
    with pytest.raises(FixedPointError, match="empty"):
        parse_decimal("")
    with pytest.raises(FixedPointError, match="not a decimal number"):
        parse_decimal("abc")
    with pytest.raises(FixedPointError, match="bound"):
        parse_decimal("-1e18")
    with pytest.raises(FixedPointError, match="expected text"):
        parse_decimal(1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value", [0.1, 1, Decimal("NaN"), Decimal("Infinity"), Decimal(10**18), -MAX_ABS]
)
def test_encode_rejects(value: object) -> None:
    with pytest.raises(FixedPointError):
        encode(value)  # type: ignore[arg-type]


def test_scaled_to_fraction() -> None:
    assert scaled_to_fraction(3 * SCALE**2, 2) == 3
    assert scaled_to_fraction(7, 0) == 7
    assert scaled_to_fraction(-1, 1) == Fraction(-1, SCALE)
    for v, p in ((1, -1), (1, True), (1.0, 1)):
        with pytest.raises(FixedPointError):
            scaled_to_fraction(v, p)  # type: ignore[arg-type]


def test_aggregate_bound_has_no_wraparound() -> None:
    # The worst case the module documents: 2**40 squares of the largest encodable value.
    assert MAX_TERMS * MAX_ENCODED**2 < HALF_R
    worst = MAX_TERMS * MAX_ENCODED**2
    assert to_signed(from_signed(worst)) == worst
    assert to_signed(from_signed(-worst)) == -worst
    assert encode(Decimal("999999999999999999.9999999999999")) == MAX_ENCODED


def test_no_wrap_bound_check_raises() -> None:
    """The import-time invariant is a real check (it survives ``python -O``): it passes for the
    module's bounds and raises FixedPointError for bounds that would allow a wrap-around."""
    check_no_wrap_bound()
    check_no_wrap_bound(MAX_TERMS, MAX_ENCODED)
    with pytest.raises(FixedPointError, match="wrap-around"):
        check_no_wrap_bound(MAX_TERMS * 10**5, MAX_ENCODED)
    with pytest.raises(FixedPointError, match="wrap-around"):
        check_no_wrap_bound(MAX_TERMS, MAX_ENCODED * 10**3)
