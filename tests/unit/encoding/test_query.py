"""Query grammar, aggregate vectors, and statistics vs. the independent plaintext reference."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.devnet.reference import plaintext_statistic
from offchain.encoding.query import (
    QueryError,
    QuerySpec,
    StatisticError,
    local_aggregates,
    parse_query,
    statistic,
)


@pytest.mark.parametrize("text,kind,cols", [
    ("count", "count", ()),
    ("sum:a", "sum", ("a",)),
    ("mean: mean radius ", "mean", ("mean radius",)),
    ("var:x", "var", ("x",)),
    ("STD:x", "std", ("x",)),
    ("pearson:a,b", "pearson", ("a", "b")),
])
def test_parse_valid(text: str, kind: str, cols: tuple[str, ...]) -> None:
    spec = parse_query(text)
    assert (spec.kind, spec.columns) == (kind, cols)
    assert parse_query(str(spec)) == spec  # canonical form round-trips


def test_parse_histogram() -> None:
    spec = parse_query("histogram:r:0,10.5,20")
    assert spec.edges == (Decimal(0), Decimal("10.5"), Decimal(20))
    assert spec.n_aggregates == 3
    assert str(spec) == "histogram:r:0,10.5,20"


@pytest.mark.parametrize("text,msg", [
    ("median:x", "unknown query kind"),
    ("count:x", "takes no column"),
    ("mean:", "takes 1 column"),
    ("mean:a,b", "takes 1 column"),
    ("pearson:a", "takes 2 columns"),
    ("pearson:a,a", "two different"),
    ("histogram:x", "needs edges"),
    ("histogram:x:1", "at least 2 edges"),
    ("histogram:x:1,3,2", "strictly increasing"),
    ("histogram:x:1,1", "strictly increasing"),
    ("histogram:x:1,zz", "histogram edge"),
    ("histogram:x:" + ",".join(str(i) for i in range(70)), "bins; at most"),
    ("mean:a:b", "invalid column name"),
])
def test_parse_errors(text: str, msg: str) -> None:
    with pytest.raises(QueryError, match=msg):
        parse_query(text)


def rows_of(values: list[str]) -> list[tuple[Decimal, ...]]:
    return [(Decimal(v),) for v in values]


def test_exact_decimals() -> None:
    # Sneak returned 0.1 as 0.10000000000582077; our fixed point keeps decimals exact.
    spec = parse_query("mean:x")
    assert statistic(spec, local_aggregates(spec, rows_of(["0.1", "0.2"]))) == 0.15
    spec = parse_query("sum:x")
    assert statistic(spec, local_aggregates(spec, rows_of(["0.1"] * 3))) == 0.3


def test_histogram_left_closed() -> None:
    spec = parse_query("histogram:x:0,1,2")
    agg = local_aggregates(spec, rows_of(["0", "0.999", "1", "2", "-1", "1.5"]))
    assert agg == [6, 2, 2]  # 2 and -1 are outside [0, 2); 1 falls in [1, 2)
    assert statistic(spec, agg) == [2, 2]


@pytest.mark.parametrize("text,values,msg", [
    ("mean:x", [], "zero rows"),
    ("var:x", ["1"], "at least 2"),
    ("pearson:x,y", None, "constant column"),
])
def test_undefined_statistics(text: str, values: list[str] | None, msg: str) -> None:
    spec = parse_query(text)
    rows = rows_of(values) if values is not None else [(Decimal(1), Decimal(i)) for i in range(3)]
    with pytest.raises(StatisticError, match=msg):
        statistic(spec, local_aggregates(spec, rows))


def test_wrong_vector_length() -> None:
    with pytest.raises(StatisticError, match="needs 3 aggregates"):
        statistic(QuerySpec("var", ("x",)), [1, 2])


decimals = st.decimals(min_value=Decimal("-1e6"), max_value=Decimal("1e6"), places=6,
                       allow_nan=False, allow_infinity=False)


def exact_reference(text: str, rows: list[tuple[Decimal, ...]]) -> int | float | list[int] | None:
    """Two-pass statistics in exact rational arithmetic: a different formula from the one-pass
    moment sums the aggregates use. None where the statistic is undefined."""
    n = len(rows)
    kind = text.split(":")[0]
    if kind == "count":
        return n
    if kind == "histogram":
        edges = [Fraction(e) for e in text.split(":")[2].split(",")]
        return [sum(1 for (x,) in rows if lo <= x < hi) for lo, hi in itertools.pairwise(edges)]
    a = [Fraction(r[0]) for r in rows]
    if kind == "sum":
        return float(sum(a))
    mean_a = sum(a) / n
    if kind == "mean":
        return float(mean_a)
    ssa = sum((x - mean_a) ** 2 for x in a)
    if kind in ("var", "std"):
        var = ssa / (n - 1)
        return float(var) if kind == "var" else math.sqrt(var)
    b = [Fraction(r[1]) for r in rows]
    mean_b = sum(b) / n
    ssb = sum((y - mean_b) ** 2 for y in b)
    if ssa == 0 or ssb == 0:
        return None
    sab = sum((x - mean_a) * (y - mean_b) for x, y in zip(a, b, strict=True))
    with localcontext() as ctx:
        ctx.prec = 60
        r = Decimal(sab.numerator) / Decimal(sab.denominator) / (
            Decimal((ssa * ssb).numerator) / Decimal((ssa * ssb).denominator)).sqrt()
    return float(r)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(decimals, decimals), min_size=3, max_size=40),
       st.integers(min_value=1, max_value=4))
def test_split_aggregates_match_exact_statistic(rows: list[tuple[Decimal, Decimal]],
                                                parts: int) -> None:
    """Summing per-provider aggregate vectors (any split of the rows into providers) gives the
    exact statistic of the whole table, for every kind of query."""
    for text in ("count", "sum:a", "mean:a", "var:a", "std:a", "pearson:a,b",
                 "histogram:a:-1000,0,0.5,1000"):
        spec = parse_query(text)
        cols = [r if spec.kind == "pearson" else (r[0],) for r in rows]
        chunks = [cols[i::parts] for i in range(parts)]
        total = [sum(v) for v in zip(*(local_aggregates(spec, c) for c in chunks), strict=True)]
        expected = exact_reference(text, cols)
        if expected is None:
            with pytest.raises(StatisticError):
                statistic(spec, total)
            continue
        got = statistic(spec, total)
        if isinstance(expected, float):
            assert isinstance(got, float)
            assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-300), (text, got, expected)
        else:
            assert got == expected


def test_plaintext_reference_agrees_on_well_conditioned_data() -> None:
    rows = [(Decimal(i) / 7, Decimal(i * i) / 3 + 1) for i in range(1, 50)]
    for text in ("count", "sum:a", "mean:a", "var:a", "std:a", "pearson:a,b",
                 "histogram:a:0,2,4,8"):
        spec = parse_query(text)
        cols = [r if spec.kind == "pearson" else (r[0],) for r in rows]
        got = statistic(spec, local_aggregates(spec, cols))
        ref = plaintext_statistic(spec, cols)
        if isinstance(ref, float):
            assert isinstance(got, float) and math.isclose(got, ref, rel_tol=1e-12)
        else:
            assert got == ref
