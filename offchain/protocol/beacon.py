"""One participant's state in a randomness-beacon round (pure logic: no network, no chain).

The round (see ``contracts/core/RandomnessBeacon.sol`` for the on-chain half):

1. **Deal.** Every node Active when the round opened draws a contribution ``s`` and a salt in
   F_r with ``secrets`` and deals Pedersen shares of (s, salt) with threshold T to every Active
   node (evaluation point of a node = the integer value of its address), each share signed by the
   dealer (EIP-712 ``BeaconShare``). Its commitment is ``pedersen.commitment_hash`` of the T+1
   commitment points.
2. **Verify and report.** A recipient checks its share against the dealer's points
   (``pedersen.verify_share``). A share that fails is kept as a *complaint*: with the dealer's
   signature on it, it proves to anybody that the dealer cheated. Each node reports to the
   round's leader which (dealer, commitment) pairs it verified, plus its complaints.
3. **Agree on Q.** The leader removes provable cheaters, then repeatedly drops the node with the
   most missing "verified" relations until every member of Q verified every other member (so
   each contribution in Q has |Q| - 1 >= 2T verified holders, of whom at least T+1 are honest
   when at most T are faulty). It needs |Q| >= 2T+1. Every member of Q checks the proposal
   against its own view before signing it (EIP-712 ``BeaconCommit``); the leader submits Q with
   all signatures (``commitRound``). The output is fixed from then on.
4. **Reveal / recover.** Members send their openings (s, salt, restHash) to each other; one
   batch goes on chain. For a contribution still missing after the reveal phase, members publish
   their shares of it; T+1 shares that verify against its points reconstruct it
   (``pedersen.reconstruct``), checked against its commitment before it is submitted.

Leakage: before the reveal, a coalition of at most T nodes holds at most T shares of any honest
contribution and learns nothing about it (Pedersen VSS is perfectly hiding); the leader learns
only commitments. The output ``keccak256(abi.encode(chainid, beacon, roundId, sum s_i mod r))``
is therefore unpredictable to such a coalition until Q is on chain, and fixed afterwards.
Source: Pedersen, CRYPTO'91 (VSS); the complaint handling follows Gennaro–Jarecki–Krawczyk–Rabin,
"Secure distributed key generation for discrete-log based cryptosystems" (J. Cryptology 2007).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak
from fastecdsa.point import Point

from offchain.crypto import pedersen
from offchain.crypto.field import R
from offchain.errors import ProtocolError
from offchain.types import FieldElement

__all__ = [
    "BeaconRound",
    "Complaint",
    "ReceivedDeal",
    "address_eval_point",
    "beacon_threshold",
    "leader_of",
    "round_output",
]


def beacon_threshold(active_nodes: int) -> int:
    """T = max(1, floor((N - 1) / 3)) for N Active nodes, capped so that 2T+1 <= 64 (the
    contract's rule at round opening)."""
    t = max(1, (active_nodes - 1) // 3)
    return min(t, 31)


def leader_of(round_id: int, active: Sequence[str]) -> str:
    """The round's leader: the (round_id mod N)-th of the ascending Active nodes, so that a
    dead leader costs one round (the next round has another leader)."""
    ordered = sorted(active, key=lambda a: int(a, 16))
    return ordered[round_id % len(ordered)]


def round_output(chain_id: int, beacon: str, round_id: int, secrets_: Sequence[int]) -> bytes:
    """``keccak256(abi.encode(chainid, beacon, roundId, sum(secrets) mod r))`` — the value the
    contract computes at finalization (32 bytes)."""
    total = sum(secrets_) % R
    return keccak(abi_encode(["uint256", "address", "uint256", "uint256"],
                             [chain_id, beacon, round_id, total]))


def address_eval_point(address: str) -> FieldElement:
    """Pedersen evaluation point of a node in a beacon round: its address as an integer (160 bits,
    nonzero, < r; unlike the job protocol's 1-based committee index,
    :meth:`offchain.protocol.job.JobSpec.job_eval_point`)."""
    return FieldElement(int(address, 16))


@dataclass(frozen=True)
class ReceivedDeal:
    """A dealer's share for this node that verified against the dealer's points."""

    points: tuple[Point, ...]
    commitment: bytes
    share_s: int
    share_r: int


@dataclass(frozen=True)
class Complaint:
    """A signed share that fails the Pedersen check: proof that ``dealer`` cheated. The
    dealer's ``BeaconShare`` signature is checked by the caller before one is recorded."""

    dealer: str
    recipient: str
    points: tuple[tuple[int, int], ...]
    share_s: int
    share_r: int
    sig: bytes  # 65-byte r || s || v

    def proves_cheating(self, threshold: int) -> bool:
        """True if the share really fails against the (well-formed, T+1) points."""
        if len(self.points) != threshold + 1:
            return True  # a wrong-length vector is itself a protocol violation
        try:
            pts = [pedersen.decode_point(x, y) for x, y in self.points]
        except ValueError:
            return True
        return not pedersen.verify_share(pts, address_eval_point(self.recipient), self.share_s,
                                         self.share_r)


@dataclass
class BeaconRound:
    """State of one node in round ``round_id``. ``active`` = nodes Active at the opening block,
    ascending; ``threshold`` = the round's T from the RoundOpened event."""

    round_id: int
    threshold: int
    me: str
    active: tuple[str, ...]
    secret: int = field(repr=False, default=0)
    salt: int = field(repr=False, default=0)
    dealing: pedersen.Dealing | None = field(repr=False, default=None)
    commitment: bytes = b""
    deals: dict[str, ReceivedDeal] = field(default_factory=dict)
    complaints: dict[str, Complaint] = field(default_factory=dict)
    reports: dict[str, tuple[dict[str, bytes], list[Complaint]]] = field(default_factory=dict)
    commit_sigs: dict[str, bytes] = field(default_factory=dict)
    proposal: tuple[list[str], list[bytes]] | None = None
    participants: list[str] = field(default_factory=list)
    commitments: list[bytes] = field(default_factory=list)
    openings: dict[str, tuple[int, int, bytes]] = field(default_factory=dict, repr=False)
    recovery_shares: dict[str, dict[int, tuple[int, int]]] = field(default_factory=dict,
                                                                   repr=False)

    @classmethod
    def start(cls, round_id: int, threshold: int, me: str,
              active: Sequence[str]) -> BeaconRound:
        """Draw this node's contribution and salt (``secrets.randbelow(r)``) and deal it.
        Raises ProtocolError if this node is not Active or there are fewer than 2T+1 nodes."""
        ordered = tuple(sorted(set(active), key=lambda a: int(a, 16)))
        if me not in ordered:
            raise ProtocolError(f"{me} is not Active in round {round_id}")
        if len(ordered) < 2 * threshold + 1:
            raise ProtocolError(f"round {round_id}: {len(ordered)} Active nodes, need "
                                f"{2 * threshold + 1}")
        st = cls(round_id, threshold, me, ordered)
        st.secret, st.salt = secrets.randbelow(R), secrets.randbelow(R)
        st.dealing = pedersen.deal(st.secret, st.salt, threshold,
                                   [address_eval_point(a) for a in ordered])
        st.commitment = pedersen.commitment_hash(st.dealing.commitments)
        own = st.dealing.shares[address_eval_point(me)]
        st.deals[me] = ReceivedDeal(st.dealing.commitments, st.commitment, own[0], own[1])
        return st

    # ---------------------------------------------------------------- dealing
    def points(self) -> list[tuple[int, int]]:
        """Own commitment points, encoded (public)."""
        assert self.dealing is not None
        return [pedersen.encode_point(p) for p in self.dealing.commitments]

    def share_for(self, recipient: str) -> tuple[int, int]:
        """(f(x), g(x)) for ``recipient`` — secret, for that recipient only."""
        assert self.dealing is not None
        if recipient not in self.active:
            raise ProtocolError(f"{recipient} is not a node of round {self.round_id}")
        return self.dealing.shares[address_eval_point(recipient)]

    def add_deal(self, dealer: str, points: Sequence[tuple[int, int]], share_s: int,
                 share_r: int, sig: bytes) -> bool:
        """Record ``dealer``'s (signature-checked) share for this node. Returns True if it
        verifies; False if it does not, in which case a provable Complaint is kept.
        Raises ProtocolError for a dealer outside the round or a second deal."""
        if dealer not in self.active or dealer == self.me:
            raise ProtocolError(f"{dealer} is not a dealer of round {self.round_id}")
        if dealer in self.deals or dealer in self.complaints:
            raise ProtocolError(f"second deal from {dealer}")
        complaint = Complaint(dealer, self.me, tuple((int(x), int(y)) for x, y in points),
                              share_s, share_r, sig)
        if complaint.proves_cheating(self.threshold):
            self.complaints[dealer] = complaint
            return False
        pts = tuple(pedersen.decode_point(x, y) for x, y in points)
        self.deals[dealer] = ReceivedDeal(pts, pedersen.commitment_hash(pts), share_s, share_r)
        return True

    def verified(self) -> dict[str, bytes]:
        """dealer -> commitment of every deal this node verified (its own included)."""
        return {d: deal.commitment for d, deal in self.deals.items()}

    # ---------------------------------------------------------------- leader: agreeing on Q
    def add_report(self, reporter: str, verified: Mapping[str, bytes],
                   complaints: Sequence[Complaint]) -> None:
        """Leader: record a node's report. Complaints must already be signature-checked."""
        if reporter not in self.active:
            raise ProtocolError(f"report from {reporter}, not a node of round {self.round_id}")
        if reporter in self.reports:
            raise ProtocolError(f"second report from {reporter}")
        self.reports[reporter] = (dict(verified), list(complaints))

    def build_q(self) -> tuple[list[str], list[bytes]] | None:
        """Leader: the largest set found greedily in which everyone verified everyone, without
        provable cheaters; None if it has fewer than 2T+1 members."""
        own = {r: v.get(r) for r, (v, _) in self.reports.items()}
        cheaters = {c.dealer for _, cs in self.reports.values() for c in cs
                    if c.proves_cheating(self.threshold)}
        q = {r for r, c in own.items() if c is not None and r not in cheaters}

        def ok(a: str, b: str) -> bool:  # a holds a verified share of b's contribution
            got = self.reports[a][0].get(b)
            return got is not None and hmac.compare_digest(got, own[b] or b"")

        while q:
            missing = {a: sum(1 for b in q if b != a and not ok(a, b))
                       + sum(1 for b in q if b != a and not ok(b, a)) for a in q}
            worst = max(q, key=lambda a: (missing[a], int(a, 16)))
            if missing[worst] == 0:
                break
            q.discard(worst)
        if len(q) < 2 * self.threshold + 1:
            return None
        members = sorted(q, key=lambda a: int(a, 16))
        commitments = [own[m] or b"" for m in members]
        self.proposal = (members, commitments)
        return self.proposal

    # ---------------------------------------------------------------- member: checking Q
    def check_proposal(self, participants: Sequence[str],
                       commitments: Sequence[bytes]) -> None:
        """Member: accept a proposed Q only if it is ascending, includes this node with its own
        commitment, and every other member's commitment is one this node verified a share of.
        Raises ProtocolError otherwise (the node then does not sign)."""
        if len(participants) != len(commitments):
            raise ProtocolError("proposal: lengths differ")
        if len(participants) < 2 * self.threshold + 1:
            raise ProtocolError("proposal: fewer than 2T+1 participants")
        if list(participants) != sorted(set(participants), key=lambda a: int(a, 16)):
            raise ProtocolError("proposal: participants not strictly ascending")
        for p, c in zip(participants, commitments, strict=True):
            deal = self.deals.get(p)
            if deal is None or not hmac.compare_digest(deal.commitment, c):
                raise ProtocolError(f"proposal: no verified share of {p} under that commitment")
        if self.me not in participants:
            raise ProtocolError("proposal: this node is not in Q")

    # ---------------------------------------------------------------- after the commit
    def set_committed(self, participants: Sequence[str], commitments: Sequence[bytes]) -> None:
        """Q as recorded on chain (from the RoundCommitted event)."""
        self.participants = list(participants)
        self.commitments = list(commitments)

    def own_opening(self) -> tuple[int, int, bytes]:
        """(secret, salt, restHash) of this node's contribution — revealed only after the
        commit."""
        assert self.dealing is not None
        if not self.participants:
            raise ProtocolError("refusing to reveal before the round is committed")
        return self.secret, self.salt, pedersen.rest_hash(self.dealing.commitments)

    def commitment_of(self, participant: str) -> bytes:
        try:
            return self.commitments[self.participants.index(participant)]
        except ValueError:
            raise ProtocolError(f"{participant} is not in Q") from None

    def add_opening(self, participant: str, secret: int, salt: int, rest: bytes) -> None:
        """Record an opening that matches the participant's on-chain commitment; raises
        ProtocolError if it does not."""
        if not pedersen.check_opening(self.commitment_of(participant), secret, salt, rest):
            raise ProtocolError(f"opening of {participant} does not match its commitment")
        self.openings[participant] = (secret, salt, rest)

    def recovery_share(self, dealer: str) -> tuple[int, int]:
        """This node's verified share of ``dealer``'s contribution (published only when the
        dealer withheld its reveal)."""
        deal = self.deals.get(dealer)
        if deal is None:
            raise ProtocolError(f"no verified share of {dealer}")
        return deal.share_s, deal.share_r

    def add_recovery_share(self, holder: str, dealer: str, share_s: int, share_r: int) -> None:
        """Record ``holder``'s published share of ``dealer``'s contribution if it verifies
        against the dealer's points (which this node holds); raises ProtocolError otherwise."""
        deal = self.deals.get(dealer)
        if deal is None or dealer not in self.participants or holder not in self.participants:
            raise ProtocolError(f"recovery share of {dealer} from {holder} not expected")
        if not pedersen.verify_share(deal.points, address_eval_point(holder), share_s, share_r):
            raise ProtocolError(f"recovery share of {dealer} from {holder} does not verify")
        self.recovery_shares.setdefault(dealer, {})[address_eval_point(holder)] = (share_s, share_r)

    def try_recover(self, dealer: str) -> tuple[int, int, bytes] | None:
        """(secret, salt, restHash) of ``dealer`` reconstructed from T+1 verified shares and
        checked against its commitment, or None if too few shares are in."""
        deal = self.deals.get(dealer)
        shares = dict(self.recovery_shares.get(dealer, {}))
        if deal is not None:
            shares.setdefault(address_eval_point(self.me), (deal.share_s, deal.share_r))
        if deal is None or len(shares) < self.threshold + 1:
            return None
        secret, salt = pedersen.reconstruct(shares, self.threshold)
        rest = pedersen.rest_hash(deal.points)
        if not pedersen.check_opening(self.commitment_of(dealer), secret, salt, rest):
            raise ProtocolError(f"reconstruction of {dealer} does not match its commitment")
        return secret, salt, rest
