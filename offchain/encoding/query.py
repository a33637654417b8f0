"""Query grammar, the aggregate vector each query needs, and the statistic computed from it.

Grammar (one string, posted on chain verbatim in its canonical form)::

    count
    sum:COL | mean:COL | var:COL | std:COL
    pearson:COL_A,COL_B
    histogram:COL:E0,E1,...,Ek        k >= 1 bins, strictly increasing edges,
                                      bin i is the left-closed interval [E(i-1), Ei)

A column name is any non-empty text without ``:`` or ``,`` (surrounding blanks are stripped).

Every query is answered from a small vector of *aggregates* (sufficient statistics) that is a sum
over all rows of all providers, so each provider computes its local vector and the committee only
has to add shares and open the total (see ``offchain/protocol``). Values are fixed-point encoded
(``offchain/fixedpoint``: integers scaled by SCALE = 10**12), so the aggregates are exact integers:

    =========  ==============================================  ========================
    query      aggregate vector (signed integers)              revealed when opened
    =========  ==============================================  ========================
    count      [n]                                             n
    sum, mean  [n, S1]                                         n and the sum
    var, std   [n, S1, S2]                                     n, sum, sum of squares
    pearson    [n, Sa, Sb, Saa, Sbb, Sab]                      both means and variances,
                                                               the covariance
    histogram  [n, c1, ..., ck]                                n (rows in and out of range)
                                                               and every bin count
    =========  ==============================================  ========================

with S1 = sum(x~), S2 = sum(x~^2), Sab = sum(a~ b~) where x~ = round(x * SCALE). Opening reveals
these totals over *all contributing providers together*, never a single provider's share of them
(unless only one provider contributes: jobs carry a minimum provider count for that reason).

The statistic is a deterministic function of the opened aggregates, computed with exact rational
arithmetic (``fractions.Fraction``) and rounded once to a float at the end, so anyone holding the
aggregates from the chain can recompute it bit for bit. For inputs with at most 12 decimal places,
``sum``/``mean``/``var`` are the correctly rounded float of the exact statistic; ``std`` and
``pearson`` involve one square root evaluated with 50 significant digits.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

from offchain.encoding.fixedpoint import SCALE, FixedPointError, encode, parse_decimal
from offchain.errors import MarketError

KINDS = ("count", "sum", "mean", "var", "std", "pearson", "histogram")
MAX_BINS = 62  # the contract accepts at most 64 aggregates per job
MAX_QUERY_BYTES = 256  # the contract's limit on the posted query string
_COLUMN = re.compile(r"^[^:,\s](?:[^:,]*[^:,\s])?$")


class QueryError(MarketError, ValueError):
    """The query text does not follow the grammar, or does not fit the data."""


class StatisticError(MarketError, ValueError):
    """The statistic is undefined for the opened aggregates (e.g. a mean over zero rows)."""


@dataclass(frozen=True)
class QuerySpec:
    """A parsed query.

    ``columns`` holds 0 (count), 1 or 2 (pearson) column names; ``edges`` holds the k+1 histogram
    edges (empty for other kinds).
    """

    kind: str
    columns: tuple[str, ...] = ()
    edges: tuple[Decimal, ...] = ()

    def __str__(self) -> str:
        """Canonical text of the query (what is posted on chain)."""
        if self.kind == "count":
            return "count"
        if self.kind == "histogram":
            edges = ",".join(_fmt_decimal(e) for e in self.edges)
            return f"histogram:{self.columns[0]}:{edges}"
        return f"{self.kind}:{','.join(self.columns)}"

    @property
    def n_aggregates(self) -> int:
        """Length L of the aggregate vector this query needs."""
        if self.kind == "histogram":
            return 1 + (len(self.edges) - 1)  # n, then one count per bin
        return {"count": 1, "sum": 2, "mean": 2, "var": 3, "std": 3, "pearson": 6}[self.kind]


def _fmt_decimal(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _column(name: str) -> str:
    name = name.strip()
    if not _COLUMN.match(name):
        raise QueryError(f"invalid column name {name!r}")
    return name


def parse_query(text: str) -> QuerySpec:
    """Parse query text into a :class:`QuerySpec`.

    Raises QueryError naming the problem: unknown kind, wrong number of columns, bad column name,
    fewer than 2 histogram edges, unsorted or repeated edges, more than MAX_BINS bins, a
    non-numeric edge, or a canonical form longer than MAX_QUERY_BYTES bytes.
    """
    text = text.strip()
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise QueryError(f"unknown query kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "count":
        if rest.strip():
            raise QueryError("'count' takes no column")
        spec = QuerySpec("count")
    elif kind == "histogram":
        col, sep, edges_text = rest.partition(":")
        if not sep:
            raise QueryError("histogram needs edges: histogram:COL:E0,E1,...,Ek")
        try:
            edges = tuple(parse_decimal(e) for e in edges_text.split(","))
        except FixedPointError as exc:
            raise QueryError(f"histogram edge: {exc}") from exc
        if len(edges) < 2:
            raise QueryError("histogram needs at least 2 edges (1 bin)")
        if len(edges) - 1 > MAX_BINS:
            raise QueryError(f"histogram has {len(edges) - 1} bins; at most {MAX_BINS}")
        for lo, hi in itertools.pairwise(edges):
            if not lo < hi:
                raise QueryError(
                    f"histogram edges must be strictly increasing: {_fmt_decimal(lo)} "
                    f"then {_fmt_decimal(hi)}"
                )
        spec = QuerySpec("histogram", (_column(col),), edges)
    else:
        cols = tuple(_column(c) for c in rest.split(",")) if rest.strip() else ()
        want = 2 if kind == "pearson" else 1
        if len(cols) != want:
            raise QueryError(f"'{kind}' takes {want} column{'s' if want > 1 else ''}")
        if kind == "pearson" and cols[0] == cols[1]:
            raise QueryError("pearson needs two different columns")
        spec = QuerySpec(kind, cols)
    if len(str(spec).encode()) > MAX_QUERY_BYTES:
        raise QueryError(f"query longer than {MAX_QUERY_BYTES} bytes")
    return spec


def local_aggregates(spec: QuerySpec, rows: Sequence[Sequence[Decimal]]) -> list[int]:
    """The aggregate vector (signed integers, length spec.n_aggregates) over one provider's rows.

    ``rows`` holds, per record, the values of ``spec.columns`` in order. Raises FixedPointError
    for a value outside the fixed-point range.
    """
    n = len(rows)
    if spec.kind == "count":
        return [n]
    if spec.kind == "histogram":
        edges = spec.edges
        counts = [0] * (len(edges) - 1)
        for (x,) in rows:
            for i in range(len(counts)):
                if edges[i] <= x < edges[i + 1]:
                    counts[i] += 1
                    break
        return [n, *counts]
    if spec.kind == "pearson":
        sa = sb = saa = sbb = sab = 0
        for a, b in rows:
            ea, eb = encode(a), encode(b)
            sa += ea
            sb += eb
            saa += ea * ea
            sbb += eb * eb
            sab += ea * eb
        return [n, sa, sb, saa, sbb, sab]
    s1 = s2 = 0
    for (x,) in rows:
        e = encode(x)
        s1 += e
        s2 += e * e
    return [n, s1] if spec.kind in ("sum", "mean") else [n, s1, s2]


def _sqrt(q: Fraction) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 50
        return (Decimal(q.numerator) / Decimal(q.denominator)).sqrt()


def statistic(spec: QuerySpec, aggregates: Sequence[int]) -> int | float | list[int]:
    """The statistic from the opened (total) aggregate vector.

    Returns an int for ``count``, a list of k ints for ``histogram``, a float otherwise.
    ``var``/``std`` are the sample (n-1) versions. Raises StatisticError when the vector has the
    wrong length or the statistic is undefined (no rows, fewer than 2 rows for a variance, a
    constant column in a correlation).
    """
    if len(aggregates) != spec.n_aggregates:
        raise StatisticError(
            f"{spec.kind} needs {spec.n_aggregates} aggregates, got {len(aggregates)}"
        )
    n = aggregates[0]
    if n < 0 or any(c < 0 for c in aggregates[1:] if spec.kind == "histogram"):
        raise StatisticError("negative count in the aggregates")
    if spec.kind == "count":
        return n
    if spec.kind == "histogram":
        return list(aggregates[1:])
    if spec.kind == "sum":
        return float(Fraction(aggregates[1], SCALE))
    if n == 0:
        raise StatisticError(f"{spec.kind} over zero rows is undefined")
    if spec.kind == "mean":
        return float(Fraction(aggregates[1], n * SCALE))
    if spec.kind in ("var", "std"):
        if n < 2:
            raise StatisticError("sample variance needs at least 2 rows")
        s1, s2 = aggregates[1], aggregates[2]
        var = Fraction(n * s2 - s1 * s1, n * (n - 1) * SCALE * SCALE)
        if var < 0:
            raise StatisticError("aggregates give a negative variance")
        return float(var) if spec.kind == "var" else float(_sqrt(var))
    _, sa, sb, saa, sbb, sab = aggregates
    cov = n * sab - sa * sb
    va, vb = n * saa - sa * sa, n * sbb - sb * sb
    if va <= 0 or vb <= 0:
        raise StatisticError("pearson r is undefined for a constant column")
    with localcontext() as ctx:
        ctx.prec = 50
        r = Decimal(cov) / _sqrt(Fraction(va * vb))
    return float(r)
