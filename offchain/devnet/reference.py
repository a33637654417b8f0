"""The same statistics computed in the clear over a whole file: the demo's reference answer.

Deliberately independent of ``offchain.encoding.query``'s aggregate arithmetic: it uses Python's
``statistics`` module on float values (``statistics.variance`` is exact for floats, ``correlation``
uses compensated sums) and ``bisect`` for histograms, so a bug in the MPC path's fixed-point or
moment formulas shows up as a mismatch instead of being reproduced.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Sequence
from decimal import Decimal

from offchain.encoding.query import QuerySpec, StatisticError


def plaintext_statistic(spec: QuerySpec,
                        rows: Sequence[Sequence[Decimal]]) -> int | float | list[int]:
    """The statistic of ``spec`` over ``rows`` (values of spec.columns per row).

    Raises StatisticError where the statistic is undefined (as
    ``offchain.encoding.query.statistic``).
    """
    if spec.kind == "count":
        return len(rows)
    if spec.kind == "histogram":
        edges = [float(e) for e in spec.edges]
        counts = [0] * (len(edges) - 1)
        for (x,) in rows:
            i = bisect.bisect_right(edges, float(x)) - 1
            if 0 <= i < len(counts):
                counts[i] += 1
        return counts
    try:
        if spec.kind == "pearson":
            a = [float(r[0]) for r in rows]
            b = [float(r[1]) for r in rows]
            return statistics.correlation(a, b)
        xs = [float(r[0]) for r in rows]
        if spec.kind == "sum":
            return math.fsum(xs)
        if spec.kind == "mean":
            return statistics.mean(xs)
        if spec.kind == "var":
            return statistics.variance(xs)
        return statistics.stdev(xs)
    except statistics.StatisticsError as exc:
        raise StatisticError(str(exc)) from exc
