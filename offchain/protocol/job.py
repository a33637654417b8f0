"""The job protocol's logic, free of any network or chain access.

Roles (a node can be both):

* **Provider** — computes its local aggregate vector a_p (``offchain.encoding.query``), commits to
it
  (InputCommitment, signed with EIP-712) and deals a Shamir sharing of a_p with threshold t to
  the n committee members: member i (committee sorted by address, 1-based) gets the evaluations
  at x = i. One message per member, so the round count does not depend on the number of providers.

* **Committee member** — after collecting the providers' shares, four all-to-all exchanges among
  the n members:

  1. ``share``/``decline`` from every provider (wait until every expected provider answered, or a
     collection timeout);
  2. ``received``: the (provider, commitment) pairs it holds, frozen at that moment (its S);
     differences are logged, nothing more;
     ``agree``: the hash of its S; a member goes on only once a Byzantine quorum of members
     reported the same hash (see ``agreement_quorum``), so all honest members that open do so
     over one and the same S;
  3. ``open``: if |S| >= the job's minimum providers, its share of sum_{p in S} a_p (additively
     homomorphic: the sum of shares is a share of the sum); from min(n, 2t+1) mutually consistent
     such shares every member reconstructs the total by Lagrange interpolation (t+1 would
     determine it; the rest are there to detect a wrong share, see ``openings_needed``);
  4. ``signature``: an EIP-712 ResultCommitment over (job id, resultHash, inputsHash,
     transcriptRoot); any member holding t+1 matching signatures can finalize on chain.

Leakage: a coalition of at most t members sees only t shares of each provider's vector, which are
uniformly random and independent of it (Shamir 1979); what becomes public is the total aggregate
vector over S (see ``offchain.encoding.query`` for what each query's vector reveals), the set S and
the
providers' input commitments (salted hashes). Members refuse to open when |S| is below the job's
minimum, so a lone provider's vector is never opened by an honest member.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from eth_abi.abi import encode as abi_encode
from eth_utils.crypto import keccak

from offchain.crypto.field import R, from_signed, to_signed
from offchain.crypto.shamir import reconstruct_vector, share_vector
from offchain.encoding import eip712
from offchain.encoding.fixedpoint import MAX_TERMS
from offchain.encoding.query import QuerySpec
from offchain.errors import ProtocolError
from offchain.types import FieldElement

__all__ = [
    "CommitteeJob",
    "JobSpec",
    "ProtocolError",
    "ProviderContribution",
    "ProviderInput",
    "deal",
    "input_commitment",
    "lift_totals",
]


@dataclass(frozen=True)
class JobSpec:
    """A posted job as the committee sees it (from the JobPosted event); not the stored job
    (:class:`offchain.chain.market.StoredJob`).

    ``committee`` is sorted ascending by address (the contract enforces it); member i has the
    Shamir evaluation point x = i + 1. ``deadline`` is a unix time in seconds.
    """

    job_id: int
    dataset_id: bytes
    query: QuerySpec
    committee: tuple[str, ...]
    threshold: int
    min_providers: int
    deadline: int

    def job_eval_point(self, member: str) -> FieldElement:
        """Shamir evaluation point of ``member`` in this job: its committee index + 1 (1-based;
        unlike the beacon's :func:`offchain.protocol.beacon.address_eval_point`). ValueError if
        ``member`` is not in the committee."""
        return FieldElement(self.committee.index(member) + 1)


def input_commitment(job_id: int, provider: str, salt: bytes, aggregates: Sequence[int]) -> bytes:
    """keccak256(abi.encode(jobId, provider, salt, int256[] aggregates)): hiding (256-bit salt)
    and binding commitment to a provider's local aggregate vector for one job."""
    return keccak(abi_encode(["uint256", "address", "bytes32", "int256[]"],
                             [job_id, provider, salt, list(aggregates)]))


def lift_totals(values: Sequence[int]) -> list[int]:
    """The signed total aggregate vector from its reconstruction in F_R.

    Entry 0 of every query's vector is the row count n over all contributing providers
    (``offchain.encoding.query``). The fixed-point range analysis guarantees no wrap-around only
    for at most ``MAX_TERMS`` rows in total (``offchain.encoding.fixedpoint``), and each data
    source bounds only its own rows, so the total is checked here. Raises ProtocolError if n is
    not in [0, MAX_TERMS] (too many rows, or a provider dealt a bogus count) or if any entry
    lies outside the signed range (a wrap-around): the member then does not sign and the job
    aborts.
    """
    if not values:
        raise ProtocolError("empty aggregate vector")
    rows = values[0]
    if not 0 <= rows <= MAX_TERMS:
        raise ProtocolError(f"total row count {rows} (in F_R) is outside [0, MAX_TERMS = 2**40]: "
                            "the aggregates could have wrapped around R")
    try:
        return [to_signed(v) for v in values]
    except OverflowError as exc:
        raise ProtocolError(f"an aggregate wrapped around R: {exc}") from exc


@dataclass(frozen=True)
class ProviderContribution:
    """What a provider sends: shares[i] goes to committee[i]."""

    commitment: bytes
    salt: bytes
    shares: list[list[int]]


def deal(job: JobSpec, provider: str, aggregates: Sequence[int]) -> ProviderContribution:
    """Commit to ``aggregates`` (signed ints) and deal Shamir shares of them (elements of F_R):
    a list of n share vectors of length L, one per committee member."""
    salt = secrets.token_bytes(32)
    shares = share_vector([from_signed(a) for a in aggregates], job.threshold,
                          len(job.committee))
    return ProviderContribution(input_commitment(job.job_id, provider, salt, aggregates),
                                salt, shares)


@dataclass
class ProviderInput:
    """One provider's validated round-1 message as held by a member."""

    shares: list[int]
    commitment: bytes
    sig: eip712.Sig


@dataclass
class CommitteeJob:
    """A committee member's state for one job. All inputs are assumed already authenticated
    (envelope signature, registry membership) and shape-checked (payload models)."""

    job: JobSpec
    me: str
    expected_providers: frozenset[str]
    inputs: dict[str, ProviderInput] = field(default_factory=dict)
    declined: set[str] = field(default_factory=set)
    received: dict[str, dict[str, bytes]] = field(default_factory=dict)
    frozen: dict[str, bytes] | None = None
    agreements: dict[str, bytes] = field(default_factory=dict)
    opens: dict[str, tuple[bytes, list[int]]] = field(default_factory=dict)
    signatures: dict[str, tuple[bytes, bytes, bytes, eip712.Sig]] = field(default_factory=dict)

    # -- round 1 -----------------------------------------------------------------------------
    def add_input(self, provider: str, shares: list[int], commitment: bytes,
                  sig: eip712.Sig) -> None:
        """Accept a provider's share vector. ProtocolError if the provider is not one of the
        job's expected providers (the registry's Active nodes when the job was posted: every
        member uses the same set, so a late or stray contribution cannot split their views) or
        the vector's length is not the query's L."""
        if provider not in self.expected_providers:
            raise ProtocolError(f"{provider} is not an expected provider of this job")
        if len(shares) != self.job.query.n_aggregates:
            raise ProtocolError(f"{provider} sent {len(shares)} shares, the query needs "
                                f"{self.job.query.n_aggregates}")
        self.inputs[provider] = ProviderInput(shares, commitment, sig)

    def add_decline(self, provider: str) -> None:
        if provider not in self.expected_providers:
            raise ProtocolError(f"{provider} is not an expected provider of this job")
        self.declined.add(provider)

    def round1_complete(self) -> bool:
        """True once every expected provider has sent a share or a decline."""
        return self.expected_providers <= (set(self.inputs) | self.declined)

    def my_received(self) -> dict[str, bytes]:
        """The (provider -> commitment) pairs this member holds; once frozen, the snapshot it
        announced (shares arriving later are ignored, or this member's S could drift away from
        what the others agreed on)."""
        if self.frozen is not None:
            return dict(self.frozen)
        return {p: i.commitment for p, i in self.inputs.items()}

    def freeze(self) -> list[tuple[str, bytes]]:
        """Freeze and return this member's (provider, commitment) pairs, ascending."""
        self.frozen = self.my_received()
        return sorted(self.frozen.items(), key=lambda pc: int(pc[0], 16))

    # -- round 2 -----------------------------------------------------------------------------
    def add_received(self, member: str, pairs: dict[str, bytes]) -> None:
        self.received[member] = pairs

    def agreed_inputs(self) -> list[tuple[str, bytes]]:
        """S: this member's frozen (provider, commitment) pairs, ascending by provider address
        (the contract's order). The member votes for the hash of exactly this set; whether the
        committee opens over it is decided by the quorum of matching votes (see
        :attr:`agreement_quorum`), never by dropping providers another member claims to lack,
        so a corrupt member can neither exclude a chosen honest provider nor veto by
        reporting a different list."""
        return sorted(self.my_received().items(), key=lambda pc: int(pc[0], 16))

    def view_differences(self) -> list[str]:
        """For the log: members whose reported (provider, commitment) pairs differ from ours."""
        mine = self.my_received()
        return sorted(m for m, view in self.received.items() if m != self.me and view != mine)

    @property
    def agreement_quorum(self) -> int:
        """floor((n + t) / 2) + 1 matching inputs hashes before a member opens. Two such quorums
        share more than t members, hence an honest one, so no two honest members ever open
        over different input sets (which would reveal the difference between the sums)."""
        return (len(self.job.committee) + self.job.threshold) // 2 + 1

    def add_agreement(self, member: str, inputs_hash: bytes) -> None:
        self.agreements[member] = inputs_hash

    def votes_for(self, inputs_hash: bytes) -> int:
        """How many members reported ``inputs_hash``."""
        return sum(1 for h in self.agreements.values() if h == inputs_hash)

    def agreed_by_quorum(self, inputs_hash: bytes) -> bool:
        """Whether at least :attr:`agreement_quorum` members reported ``inputs_hash``."""
        return self.votes_for(inputs_hash) >= self.agreement_quorum

    # -- round 3 -----------------------------------------------------------------------------
    def sum_share(self, agreed: Sequence[tuple[str, bytes]]) -> list[int]:
        """This member's share of the total over ``agreed``: elementwise sum mod R.
        ProtocolError if |agreed| is below the job's minimum number of providers."""
        if len(agreed) < self.job.min_providers:
            raise ProtocolError(f"only {len(agreed)} providers contributed; the job needs "
                                f"{self.job.min_providers}")
        total = [0] * self.job.query.n_aggregates
        for provider, _ in agreed:
            for k, s in enumerate(self.inputs[provider].shares):
                total[k] = (total[k] + s) % R
        return total

    def add_open(self, member: str, inputs_hash: bytes, sum_shares: list[int]) -> None:
        if len(sum_shares) != self.job.query.n_aggregates:
            raise ProtocolError(f"{member} opened {len(sum_shares)} values, expected "
                                f"{self.job.query.n_aggregates}")
        self.opens[member] = (inputs_hash, sum_shares)

    def matching_opens(self, inputs_hash: bytes) -> dict[int, list[int]]:
        """Evaluation point -> opened share vector, for members that opened over the same S."""
        return {self.job.job_eval_point(m): v for m, (h, v) in self.opens.items()
                if h == inputs_hash}

    @property
    def openings_needed(self) -> int:
        """Openings a member must hold before it trusts (and signs) a reconstruction:
        min(n, 2t+1). With 2t+1 mutually consistent shares, at least t+1 come from honest
        members; those fix the degree-t polynomial, so a wrong share from any of the <= t
        corrupt members is inconsistent and detected. With only t+1 shares there is no
        redundancy and one wrong share would silently change the result."""
        return min(len(self.job.committee), 2 * self.job.threshold + 1)

    def reconstruct(self, inputs_hash: bytes) -> list[int]:
        """The total aggregate vector (signed ints) from the matching opens.

        Uses every matching share and checks they all lie on one degree-t polynomial.
        ProtocolError when fewer than :attr:`openings_needed` members opened over the same
        inputs, on inconsistent shares (some member sent a wrong value), or when the total is
        outside the fixed-point no-wrap range (see :func:`lift_totals`).
        """
        points = self.matching_opens(inputs_hash)
        if len(points) < self.openings_needed:
            raise ProtocolError(f"{len(points)} matching openings; need {self.openings_needed}")
        try:
            values = reconstruct_vector(points, self.job.threshold)
        except ValueError as exc:
            raise ProtocolError(f"openings are inconsistent: {exc}") from exc
        return lift_totals(values)

    # -- round 4 -----------------------------------------------------------------------------
    def add_signature(self, member: str, result_hash: bytes, inputs_hash: bytes,
                      transcript_root: bytes, sig: eip712.Sig) -> None:
        self.signatures[member] = (result_hash, inputs_hash, transcript_root, sig)

    def matching_signatures(self, result_hash: bytes,
                            inputs_hash: bytes) -> list[tuple[str, bytes, eip712.Sig]]:
        """(member, transcript root, sig) agreeing with ours, ascending by member address."""
        out = [(m, root, sig) for m, (rh, ih, root, sig) in self.signatures.items()
               if rh == result_hash and ih == inputs_hash]
        return sorted(out, key=lambda t: int(t[0], 16))
