"""The job protocol's logic (no network): dealing, agreement on inputs, opening, reconstruction."""

from __future__ import annotations

from decimal import Decimal

import pytest
from eth_account import Account

from offchain.crypto.field import R
from offchain.encoding import eip712
from offchain.encoding.fixedpoint import MAX_TERMS
from offchain.encoding.query import local_aggregates, parse_query, statistic
from offchain.protocol.job import (
    CommitteeJob,
    JobSpec,
    ProtocolError,
    deal,
    input_commitment,
    lift_totals,
)
from offchain.wire.job_payloads import (
    PayloadError,
    SharePayload,
    SigModel,
    decode_payload,
    encode_payload,
)
from offchain.wire.transcript import Transcript

DUMMY_SIG = eip712.Sig(b"\x01" * 32, b"\x02" * 32, 27)


def addresses(n: int) -> list[str]:
    return sorted((Account.create().address for _ in range(n)), key=lambda a: int(a, 16))


def make_job(committee: list[str], t: int, min_providers: int, query: str) -> JobSpec:
    return JobSpec(job_id=7, dataset_id=eip712.dataset_id("d"), query=parse_query(query),
                   committee=tuple(committee), threshold=t, min_providers=min_providers,
                   deadline=2**40)


def run_rounds(job: JobSpec,
               provider_rows: dict[str, list[tuple[Decimal, ...]]]) -> dict[str, CommitteeJob]:
    """Every provider deals to every member; members exchange received lists and openings."""
    members = {m: CommitteeJob(job, m, frozenset(provider_rows)) for m in job.committee}
    for p, rows in provider_rows.items():
        contribution = deal(job, p, local_aggregates(job.query, rows))
        for i, m in enumerate(job.committee):
            members[m].add_input(p, contribution.shares[i], contribution.commitment, DUMMY_SIG)
    for m in members.values():
        assert m.round1_complete()
    for sender in members.values():
        view = dict(sender.freeze())
        for receiver in members.values():
            receiver.add_received(sender.me, view)
    for sender in members.values():
        agreed = sender.agreed_inputs()
        share = sender.sum_share(agreed)
        for receiver in members.values():
            receiver.add_open(sender.me, eip712.inputs_hash(agreed), share)
    return members


def test_committee_opens_the_total() -> None:
    committee, providers = addresses(3), addresses(5)
    job = make_job(committee, 1, 5, "var:x")
    rows = {p: [(Decimal(i) / 10 + k,) for i in range(1, 12)] for k, p in enumerate(providers)}
    members = run_rounds(job, rows)
    everything = [r for rs in rows.values() for r in rs]
    expected = local_aggregates(job.query, everything)
    for m in members.values():
        agreed = m.agreed_inputs()
        assert [p for p, _ in agreed] == sorted(providers, key=lambda a: int(a, 16))
        assert m.reconstruct(eip712.inputs_hash(agreed)) == expected
    assert statistic(job.query, expected) > 0


def test_equivocating_provider_gets_no_quorum_and_min_providers_enforced() -> None:
    """A provider telling members different commitments makes their input sets differ: no
    hash reaches the quorum, so nobody opens."""
    committee, providers = addresses(3), addresses(3)
    job = make_job(committee, 1, 2, "sum:x")
    members = {m: CommitteeJob(job, m, frozenset(providers)) for m in committee}
    for k, p in enumerate(providers):
        contribution = deal(job, p, [1, k + 1])
        for i, m in enumerate(committee):
            commitment = b"\xee" * 32 if (p == providers[1] and i == 0) else contribution.commitment
            members[m].add_input(p, contribution.shares[i], commitment, DUMMY_SIG)
    votes = {m: eip712.inputs_hash(members[m].freeze()) for m in committee}
    for m in members.values():
        for voter, h in votes.items():
            m.add_agreement(voter, h)
    assert members[committee[0]].agreement_quorum == 3
    assert not any(m.agreed_by_quorum(votes[m.me]) for m in members.values())

    strict = make_job(committee, 1, 4, "sum:x")
    member = CommitteeJob(strict, committee[0], frozenset(providers))
    with pytest.raises(ProtocolError, match="only 3 providers"):
        member.sum_share([(p, b"\x00" * 32) for p in providers])


def test_only_expected_providers_are_accepted() -> None:
    """Shares from a node that was not Active when the job was posted (Exiting, or registered
    later) are refused, so they cannot make the members' frozen views differ."""
    committee, providers = addresses(3), addresses(2)
    m = CommitteeJob(make_job(committee, 1, 1, "count"), committee[0], frozenset(providers))
    stranger = addresses(1)[0]
    with pytest.raises(ProtocolError, match="not an expected provider"):
        m.add_input(stranger, [1], b"\x01" * 32, DUMMY_SIG)
    with pytest.raises(ProtocolError, match="not an expected provider"):
        m.add_decline(stranger)
    assert m.my_received() == {}


def test_split_input_sets_are_refused() -> None:
    """The first review's attack: corrupt C tells A a received list without P1 and B the full
    list, hoping A opens over S minus P1 and B over S (their difference is P1's vector). Each
    honest member votes for its own frozen set, whatever C reports: A and B both vote H(S).
    Whatever C votes, A and B reach the quorum for the same hash or not at all."""
    committee, providers = addresses(3), addresses(3)
    a, b, c = committee
    job = make_job(committee, 1, 2, "sum:x")
    members = {m: CommitteeJob(job, m, frozenset(providers)) for m in committee}
    for k, p in enumerate(providers):
        contribution = deal(job, p, [1, 100 * (k + 1)])
        for i, m in enumerate(committee):
            members[m].add_input(p, contribution.shares[i], contribution.commitment, DUMMY_SIG)
    full = dict(members[c].freeze())
    without_p1 = {p: h for p, h in full.items() if p != providers[0]}
    for m in (a, b):
        members[m].freeze()
    members[a].add_received(c, without_p1)
    members[b].add_received(c, full)
    assert members[a].view_differences() == [c]  # logged, not acted upon
    h_a = eip712.inputs_hash(members[a].agreed_inputs())
    h_b = eip712.inputs_hash(members[b].agreed_inputs())
    assert h_a == h_b  # C could not make the honest members' sets differ
    h_bad = eip712.inputs_hash(sorted(without_p1.items(), key=lambda pc: int(pc[0], 16)))
    for c_vote in (h_bad, h_a):
        for m in (a, b):
            members[m].agreements = {a: h_a, b: h_b, c: c_vote}
        opened = {m: members[m].agreed_by_quorum(h_a) for m in (a, b)}
        assert opened[a] == opened[b] == (c_vote == h_a)


def test_agreement_quorum_tolerates_a_crash_when_n_is_5() -> None:
    committee = addresses(5)
    job = make_job(committee, 1, 1, "count")
    m = CommitteeJob(job, committee[0], frozenset())
    assert m.agreement_quorum == 4  # floor((5 + 1) / 2) + 1
    h = b"\x01" * 32
    for member in committee[:3]:
        m.add_agreement(member, h)
    m.add_agreement(committee[3], b"\x02" * 32)
    assert not m.agreed_by_quorum(h)
    m.add_agreement(committee[4], h)
    assert m.agreed_by_quorum(h)


def test_late_share_does_not_change_the_frozen_view() -> None:
    committee, providers = addresses(3), addresses(2)
    job = make_job(committee, 1, 1, "count")
    m = CommitteeJob(job, committee[0], frozenset(providers))
    m.add_input(providers[0], [1], b"\x01" * 32, DUMMY_SIG)
    frozen = m.freeze()
    m.add_input(providers[1], [1], b"\x02" * 32, DUMMY_SIG)  # arrives after `received`
    assert m.my_received() == dict(frozen) and providers[1] not in m.my_received()


def test_wrong_opening_is_detected() -> None:
    committee, providers = addresses(4), addresses(2)
    job = make_job(committee, 1, 2, "count")
    members = run_rounds(job, {p: [(Decimal(1),)] for p in providers})
    m = members[committee[0]]
    agreed = m.agreed_inputs()
    h = eip712.inputs_hash(agreed)
    liar = committee[3]
    _, share = m.opens[liar]
    m.add_open(liar, h, [(share[0] + 1) % R])
    with pytest.raises(ProtocolError, match="inconsistent"):
        m.reconstruct(h)


def test_too_few_openings() -> None:
    committee, providers = addresses(3), addresses(2)
    job = make_job(committee, 2, 1, "count")
    members = run_rounds(job, {p: [(Decimal(1),)] for p in providers})
    m = members[committee[0]]
    h = eip712.inputs_hash(m.agreed_inputs())
    m.opens = dict(list(m.opens.items())[:2])
    with pytest.raises(ProtocolError, match="2 matching openings; need 3"):
        m.reconstruct(h)


def test_openings_needed_is_2t_plus_1() -> None:
    """With n=4, t=1 a member needs 3 consistent openings: 2 would not expose a liar."""
    committee, providers = addresses(4), addresses(2)
    job = make_job(committee, 1, 2, "count")
    members = run_rounds(job, {p: [(Decimal(1),)] for p in providers})
    m = members[committee[0]]
    h = eip712.inputs_hash(m.agreed_inputs())
    assert m.openings_needed == 3
    liar = committee[3]
    _, share = m.opens[liar]
    m.opens = {committee[0]: m.opens[committee[0]], liar: (h, [(share[0] + 5) % R])}
    with pytest.raises(ProtocolError, match="2 matching openings; need 3"):
        m.reconstruct(h)  # would have "reconstructed" a wrong count from 2 points
    m.add_open(committee[1], h, members[committee[1]].opens[committee[1]][1])
    with pytest.raises(ProtocolError, match="inconsistent"):
        m.reconstruct(h)
    m.opens.pop(liar)
    m.add_open(committee[2], h, members[committee[2]].opens[committee[2]][1])
    assert m.reconstruct(h) == [2]


def test_wrong_share_vector_length_rejected() -> None:
    committee, provider = addresses(3), addresses(1)[0]
    job = make_job(committee, 1, 1, "var:x")
    m = CommitteeJob(job, committee[0], frozenset([provider]))
    with pytest.raises(ProtocolError, match="query needs 3"):
        m.add_input(provider, [1, 2], b"\x00" * 32, DUMMY_SIG)


def test_input_commitment_binds_the_vector() -> None:
    p = addresses(1)[0]
    salt = b"\x05" * 32
    assert input_commitment(1, p, salt, [1, 2]) != input_commitment(1, p, salt, [1, 3])
    assert input_commitment(1, p, salt, [1, 2]) != input_commitment(2, p, salt, [1, 2])


def test_payload_validation() -> None:
    good = SharePayload(shares=["0x1"], commitment="0x" + "00" * 32,
                        commitment_sig=SigModel.of(DUMMY_SIG))
    assert decode_payload("share", encode_payload(good)) == good
    for bad in (b'{"shares": ["0x1"]}', b"not json", b'{"shares":["' + hex(R).encode() + b'"],'
                b'"commitment":"0x' + b"00" * 32 + b'","commitment_sig":{"r":"0x' + b"01" * 32 +
                b'","s":"0x' + b"02" * 32 + b'","v":27}}'):
        with pytest.raises(PayloadError):
            decode_payload("share", bad)
    with pytest.raises(PayloadError, match="unknown message kind"):
        decode_payload("gossip", b"{}")


def test_transcript_root_is_order_independent() -> None:
    a, b = addresses(2)
    t1, t2 = Transcript(1, a), Transcript(1, a)
    msgs = [("share", b, a, b"\x01" * 32), ("open", a, b, b"\x02" * 32),
            ("received", b, a, b"\x03" * 32)]
    for kind, s, r, d in msgs:
        t1.record(kind, s, r, d, {})
    for kind, s, r, d in reversed(msgs):
        t2.record(kind, s, r, d, {})
    assert t1.root() == t2.root()
    with pytest.raises(ValueError, match="conflicting"):
        t1.record("share", b, a, b"\x09" * 32, {})
    t2.record("open", b, a, b"\x04" * 32, {})
    assert t1.root() != t2.root()
    root = t1.seal()  # signed: later messages no longer change what is kept
    t1.record("agree", b, a, b"\x05" * 32, {})
    assert t1.root() == root and len(t1.entries) == 3


def open_aggregates(job: JobSpec, aggregates: dict[str, list[int]]) -> CommitteeJob:
    """Providers deal the given aggregate vectors; every member opens; one member's state."""
    members = {m: CommitteeJob(job, m, frozenset(aggregates)) for m in job.committee}
    for p, vector in aggregates.items():
        contribution = deal(job, p, vector)
        for i, m in enumerate(job.committee):
            members[m].add_input(p, contribution.shares[i], contribution.commitment, DUMMY_SIG)
    for sender in members.values():
        agreed = sender.freeze()
        for receiver in members.values():
            receiver.add_open(sender.me, eip712.inputs_hash(agreed), sender.sum_share(agreed))
    return members[job.committee[0]]


def test_total_rows_beyond_max_terms_are_refused() -> None:
    """Each source holds at most MAX_TERMS rows, but two together may not exceed it either: the
    committee refuses the total with a ProtocolError (the job aborts), not an OverflowError."""
    committee, providers = addresses(3), addresses(2)
    job = make_job(committee, 1, 2, "sum:x")
    half = MAX_TERMS // 2
    at_bound = open_aggregates(job, {providers[0]: [half, 5], providers[1]: [half, -2]})
    h = eip712.inputs_hash(at_bound.agreed_inputs())
    assert at_bound.reconstruct(h) == [MAX_TERMS, 3]
    beyond = open_aggregates(job, {providers[0]: [half + 1, 5], providers[1]: [half, -2]})
    with pytest.raises(ProtocolError, match="total row count"):
        beyond.reconstruct(eip712.inputs_hash(beyond.agreed_inputs()))


def test_negative_or_wrapped_totals_are_refused() -> None:
    """A bogus (negative) row count, or an entry at the edge of the signed range, aborts too."""
    with pytest.raises(ProtocolError, match="total row count"):
        lift_totals([R - 1, 0])
    with pytest.raises(ProtocolError, match="wrapped around R"):
        lift_totals([1, R // 2 + 1])
    assert lift_totals([2, R - 3]) == [2, -3]
