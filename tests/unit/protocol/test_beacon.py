"""The beacon round's off-chain logic (offchain.protocol.beacon), run in process for a whole
set of nodes: dealing, verification, provable complaints, agreeing on Q, openings, recovery."""

from __future__ import annotations

import pytest
from eth_account import Account

from offchain.crypto import pedersen
from offchain.crypto.field import R
from offchain.errors import ProtocolError
from offchain.protocol.beacon import (
    BeaconRound,
    address_eval_point,
    beacon_threshold,
    leader_of,
    round_output,
)

ACCOUNTS = sorted((Account.create() for _ in range(5)), key=lambda a: int(a.address, 16))
NODES = [a.address for a in ACCOUNTS]
SIG = bytes(65)  # signatures are checked by the node layer, not here


def deal_all(rounds: dict[str, BeaconRound], *, corrupt: tuple[str, str] | None = None) -> None:
    """Every node deals to every other; ``corrupt`` = (dealer, recipient) gets a bad share."""
    for dealer, st in rounds.items():
        for recipient, other in rounds.items():
            if recipient == dealer:
                continue
            s, r = st.share_for(recipient)
            if corrupt == (dealer, recipient):
                s = (s + 1) % R
            other.add_deal(dealer, st.points(), s, r, SIG)


def start(round_id: int = 7) -> dict[str, BeaconRound]:
    t = beacon_threshold(len(NODES))
    return {a: BeaconRound.start(round_id, t, a, NODES) for a in NODES}


def agree(rounds: dict[str, BeaconRound], leader: str) -> tuple[list[str], list[bytes]]:
    lead = rounds[leader]
    for a, st in rounds.items():
        lead.add_report(a, st.verified(), list(st.complaints.values()))
    q = lead.build_q()
    assert q is not None
    for a in q[0]:
        rounds[a].check_proposal(*q)
        rounds[a].set_committed(*q)
    return q


def test_threshold_and_leader_rules() -> None:
    assert [beacon_threshold(n) for n in (3, 4, 5, 7, 10, 16, 200)] == [1, 1, 1, 2, 3, 5, 31]
    assert leader_of(7, NODES) == NODES[7 % 5]
    assert leader_of(7, list(reversed(NODES))) == NODES[7 % 5]  # order of the input is ignored


def test_honest_round_everyone_in_q_and_output_is_the_hash_of_the_sum() -> None:
    rounds = start()
    deal_all(rounds)
    participants, commitments = agree(rounds, NODES[2])
    assert participants == NODES
    assert commitments == [rounds[a].commitment for a in NODES]
    for a in NODES:  # each opening verifies against the on-chain commitment, at every node
        secret, salt, rest = rounds[a].own_opening()
        for b in NODES:
            rounds[b].add_opening(a, secret, salt, rest)
    secrets_ = [rounds[a].secret for a in NODES]
    out = round_output(31337, NODES[0], 7, secrets_)
    assert out == round_output(31337, NODES[0], 7, list(reversed(secrets_)))
    assert out != round_output(31337, NODES[0], 8, secrets_)


def test_inconsistent_dealer_is_detected_provably_and_left_out_of_q() -> None:
    rounds = start()
    cheater, victim = NODES[1], NODES[3]
    deal_all(rounds, corrupt=(cheater, victim))
    complaint = rounds[victim].complaints[cheater]
    assert cheater not in rounds[victim].deals
    assert complaint.proves_cheating(rounds[victim].threshold)  # anybody can check it
    # a complaint against an honest share does not prove anything
    honest = rounds[victim].deals[NODES[0]]
    fake = complaint.__class__(NODES[0], victim,
                               tuple(pedersen.encode_point(p) for p in honest.points),
                               honest.share_s, honest.share_r, SIG)
    assert not fake.proves_cheating(rounds[victim].threshold)
    participants, _ = agree(rounds, NODES[0])
    assert cheater not in participants and victim in participants and len(participants) == 4
    # the victim refuses any proposal that includes the cheater
    with pytest.raises(ProtocolError, match="no verified share"):
        rounds[victim].check_proposal(NODES, [rounds[a].commitment for a in NODES])


def test_withheld_contribution_is_recovered_from_t_plus_1_shares() -> None:
    rounds = start()
    deal_all(rounds)
    agree(rounds, NODES[0])
    withholder, t = NODES[4], rounds[NODES[0]].threshold
    holder = rounds[NODES[0]]
    assert holder.try_recover(withholder) is None  # only its own share so far (t = 1)
    for other in NODES[1 : 1 + t]:
        s, r = rounds[other].recovery_share(withholder)
        holder.add_recovery_share(other, withholder, s, r)
    secret, salt, rest = holder.try_recover(withholder) or (0, 0, b"")
    assert (secret, salt) == (rounds[withholder].secret, rounds[withholder].salt)
    assert pedersen.check_opening(holder.commitment_of(withholder), secret, salt, rest)


def test_bad_recovery_share_and_bad_opening_are_rejected() -> None:
    rounds = start()
    deal_all(rounds)
    agree(rounds, NODES[0])
    holder, withholder, liar = rounds[NODES[0]], NODES[4], NODES[2]
    s, r = rounds[liar].recovery_share(withholder)
    with pytest.raises(ProtocolError, match="does not verify"):
        holder.add_recovery_share(liar, withholder, (s + 1) % R, r)
    secret, salt, rest = rounds[liar].own_opening()
    with pytest.raises(ProtocolError, match="does not match"):
        holder.add_opening(liar, (secret + 1) % R, salt, rest)


def test_nothing_is_revealed_before_the_commit() -> None:
    st = start()[NODES[0]]
    with pytest.raises(ProtocolError, match="before the round is committed"):
        st.own_opening()
    with pytest.raises(ProtocolError):
        st.share_for(Account.create().address)
    assert address_eval_point(NODES[0]) == int(NODES[0], 16)


def test_too_few_verified_nodes_gives_no_q() -> None:
    rounds = start()
    deal_all(rounds)
    lead = rounds[NODES[0]]
    for a in NODES[:2]:  # only 2 reports, 2T+1 = 3 needed
        lead.add_report(a, rounds[a].verified(), [])
    assert lead.build_q() is None
    with pytest.raises(ProtocolError, match="second report"):
        lead.add_report(NODES[0], {}, [])
