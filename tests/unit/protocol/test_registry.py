"""The registry replayed from its events (offchain.protocol.registry): the one rule behind the
committee's eligibility, the auditor's past registrations, the node's directory and the API's
node list."""

from __future__ import annotations

from typing import Any

from eth_account import Account

from offchain.protocol.registry import REGISTRY_EVENTS, RegistryState, replay_registry
from offchain.types import NodeStatus

A, B, C = sorted((Account.create().address for _ in range(3)), key=lambda a: int(a, 16))
KEY = b"\x07" * 32


def ev(name: str, node: str, block: int, **kw: Any) -> dict[str, Any]:
    return {"event": name, "node": node.lower(), "block_number": block, **kw}


EVENTS = [
    ev("NodeRegistered", A, 2, stake_wei=100, enc_key=KEY, endpoint="http://a"),
    ev("NodeRegistered", B, 3, stake_wei=50, enc_key=KEY, endpoint="http://b"),
    {"event": "JobPosted", "job_id": 1, "block_number": 3},
    ev("NodeEndpointUpdated", A, 4, endpoint="http://a2"),
    ev("NodeSlashed", A, 5, amount_wei=30, exit_at=0),
    ev("NodeExitRequested", A, 6, exit_at=0),  # (reverts on chain) the first exit is kept
    ev("NodeExitRequested", C, 6, exit_at=0),  # not registered: changes nothing
    ev("NodeExited", B, 8),
    ev("NodeRegistered", B, 9, stake_wei=70, enc_key=KEY, endpoint="http://b2"),
]


def test_entries_as_of_a_block() -> None:
    at4 = replay_registry(EVENTS, 4)
    a = at4.get(A)
    assert a is not None and a.endpoint == "http://a2" and a.enc_key == KEY
    assert (a.stake_wei, a.status, a.registered_block, a.exit_block) == (
        100, NodeStatus.ACTIVE, 2, None)
    assert at4.active() == {A, B}

    at6 = replay_registry(EVENTS, 6)
    a = at6.get(A)
    assert a is not None and not a.active
    assert (a.stake_wei, a.status, a.exit_block) == (70, NodeStatus.EXITING, 5)  # first exit
    assert at6.get(C) is None and at6.active() == {B}

    assert replay_registry(EVENTS, 8).get(B) is None
    b = replay_registry(EVENTS).get(B)  # re-registered: a new entry
    assert b is not None and (b.stake_wei, b.endpoint, b.registered_block) == (70, "http://b2", 9)


def test_registration_and_eligibility() -> None:
    assert replay_registry(EVENTS, 1).registration(A) == (0, NodeStatus.NONE)
    assert replay_registry(EVENTS, 5).registration(A.lower()) == (70, NodeStatus.EXITING)
    assert replay_registry(EVENTS, 3).eligible(3) == [A]  # B registered in block 3 itself
    assert replay_registry(EVENTS, 4).eligible(4) == [A, B]
    assert replay_registry(EVENTS, 5).eligible(5) == [B]  # slashed in block 5
    assert replay_registry(EVENTS, 9).eligible(9) == []
    assert replay_registry(EVENTS, 10).eligible(10) == [B]


def test_apply_keeps_a_seeded_state_current() -> None:
    state = RegistryState()
    applied = [state.apply(e) for e in EVENTS]
    assert applied == [e["event"] in REGISTRY_EVENTS for e in EVENTS]
    assert state.nodes == replay_registry(EVENTS).nodes
    assert state.active() == {B}
