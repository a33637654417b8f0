"""The committee rule recomputed in Python (offchain.protocol.committee): eligibility from
registry events, and the sampling (checked against the contract in tests/test_e2e.py and
tests/test_beacon_contract.py)."""

from __future__ import annotations

from collections import Counter

import pytest
from eth_account import Account

from offchain.protocol.committee import committee_seed, draw_committee, eligible_from_events

NODES = sorted((Account.create().address for _ in range(8)), key=lambda a: int(a, 16))


def ev(name: str, node: str, block: int) -> dict[str, object]:
    return {"event": name, "node": node, "block_number": block}


def test_eligibility_snapshot() -> None:
    a, b, c, d, e = NODES[:5]
    events = [ev("NodeRegistered", a, 1), ev("NodeRegistered", b, 2), ev("NodeRegistered", c, 3),
              ev("NodeExitRequested", b, 5), ev("NodeRegistered", d, 9),
              ev("NodeSlashed", c, 12), ev("NodeRegistered", e, 10),
              ev("JobPosted", a, 10)]
    assert eligible_from_events(events, 9) == [a, c]  # b exited at 5; d registered at 9 (not <)
    assert eligible_from_events(events, 10) == [a, c, d]  # e registered in block 10 itself
    assert eligible_from_events(events, 11) == [a, c, d, e]
    assert eligible_from_events(events, 12) == [a, d, e]  # slashed at 12: not eligible at 12
    # a node that exits and later registers again is eligible again
    again = [*events, ev("NodeExited", b, 20), ev("NodeRegistered", b, 21)]
    assert b in eligible_from_events(again, 22) and b not in eligible_from_events(again, 21)


def test_draw_is_deterministic_sorted_and_without_replacement() -> None:
    seed = committee_seed(bytes(range(32)), 5)
    drawn = draw_committee(NODES, 3, seed)
    assert drawn == draw_committee(list(NODES), 3, seed)
    assert drawn == sorted(drawn, key=lambda a: int(a, 16)) and len(set(drawn)) == 3
    assert set(draw_committee(NODES, 8, seed)) == set(NODES)
    with pytest.raises(ValueError, match="JobTooFewEligibleNodes"):
        draw_committee(NODES[:2], 3, seed)
    with pytest.raises(ValueError):
        committee_seed(b"short", 1)


def test_draw_is_uniform_over_seeds() -> None:
    """4000 seeds, 8 candidates, 3 drawn: each node's count is Binomial(4000, 3/8); a 5 sigma
    band (sigma = 30.6) fails by chance with probability about 8 * 6e-7."""
    counts: Counter[str] = Counter()
    for job in range(4000):
        counts.update(draw_committee(NODES, 3, committee_seed(bytes(32), job)))
    for node in NODES:
        assert abs(counts[node] - 1500) < 5 * 30.6, counts
