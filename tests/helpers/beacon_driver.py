"""Drive randomness-beacon rounds of a real MPCMarket from Python, in-process (no node processes).

What honest nodes do, step by step, with the real primitives:

1. every participant draws a secret s_i and a salt in F_r and deals Pedersen shares of them
   (:func:`offchain.crypto.pedersen.deal`, threshold T of the round, evaluation points = the integer
   values of the participants' addresses); its on-chain commitment is
   :func:`offchain.crypto.pedersen.commitment_hash` of the T+1 commitment points;
2. every participant signs the EIP-712 ``BeaconCommit(roundId, participantsHash)`` over the
   ascending participant list Q and its commitments; one ``commitRound`` puts Q on chain;
3. every participant reveals (s_i, salt_i, restHash_i) in one batched ``reveal``;
4. after the reveal deadline, a withheld contribution is reconstructed from T+1 of the other
   participants' shares (:func:`offchain.crypto.pedersen.reconstruct`) and submitted with
   ``recover``.

:class:`RoundRun` holds the dealt contributions (secret material included: this is a test
utility), so tests can build tampered transactions from the honest ones. Blocks are mined with
``anvil_mine``; deadlines are block numbers and a transaction lands in ``latest + 1``.

Block-number caveat: anvil evaluates ``eth_estimateGas`` / ``eth_call`` on ``latest`` with
``block.number == latest`` while the transaction lands in ``latest + 1``. The market client
estimates before sending, so to act *after* a deadline D it must wait until ``latest > D``
(:func:`mine_past`); an eth_call on ``"pending"`` sees ``latest + 1`` and tests boundaries exactly.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3

from offchain.chain.beacon import BeaconClient, Opening, RoundStatus
from offchain.chain.market import MarketClient
from offchain.chain.tx import TxResult
from offchain.crypto.field import R
from offchain.crypto.pedersen import Dealing, commitment_hash, deal, reconstruct, rest_hash
from offchain.encoding.eip712 import Sig
from offchain.encoding.eip712.beacon import participants_hash, sign_beacon_commit

__all__ = [
    "Contribution",
    "RoundRun",
    "assign_job_committee",
    "expected_output",
    "mine",
    "mine_past",
    "mine_until",
    "pick_participants",
    "plan_round",
    "post_job_with_committee",
    "rpc",
    "run_round",
    "seed_job",
]


# ----------------------------------------------------------------------------- chain helpers


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    resp = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    if "error" in resp:
        raise RuntimeError(f"{method}: {resp['error']}")
    return resp["result"]


def mine(w3: Web3, blocks: int = 1) -> None:
    """Mine ``blocks`` empty blocks (anvil)."""
    if blocks > 0:
        rpc(w3, "anvil_mine", hex(blocks))


def mine_until(w3: Web3, block: int) -> None:
    """Mine until the latest block is ``block`` (no-op if it already is past it), so that the
    next transaction lands in ``block + 1``."""
    mine(w3, block - int(w3.eth.block_number))


def mine_past(w3: Web3, deadline: int) -> None:
    """Mine until ``latest > deadline``: both the client's gas estimate (on ``latest``) and the
    transaction (in ``latest + 1``) then run after ``deadline``."""
    mine_until(w3, deadline + 1)


def expected_output(chain_id: int, beacon_address: str, round_id: int, total: int) -> bytes:
    """``keccak256(abi.encode(chainid, beacon, roundId, total mod r))``: a round's output."""
    return keccak(
        abi_encode(
            ["uint256", "address", "uint256", "uint256"],
            [chain_id, to_checksum_address(beacon_address), round_id, total % R],
        )
    )


# ----------------------------------------------------------------------------- a round


@dataclass(frozen=True)
class Contribution:
    """One participant's dealt contribution: secret and salt in F_r, the Pedersen dealing
    (T+1 points and one share per participant), and its 32-byte on-chain commitment."""

    account: LocalAccount
    secret: int
    salt: int
    dealing: Dealing = field(repr=False)
    commitment: bytes
    rest: bytes

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def x(self) -> int:
        """The participant's evaluation point (its address as an integer)."""
        return int(self.account.address, 16)


@dataclass
class RoundRun:
    """A round's participant set Q (ascending), its contributions and signatures, and the
    transactions sent so far. ``sigs[i]`` is participants[i]'s BeaconCommit signature."""

    beacon: BeaconClient
    round_id: int
    threshold: int
    contributions: list[Contribution]
    sigs: list[Sig]
    commit_tx: TxResult | None = None
    reveal_txs: list[TxResult] = field(default_factory=list)
    recover_txs: list[TxResult] = field(default_factory=list)

    # -- views of Q
    @property
    def participants(self) -> list[str]:
        return [c.address for c in self.contributions]

    @property
    def commitments(self) -> list[bytes]:
        return [c.commitment for c in self.contributions]

    @property
    def accounts(self) -> list[LocalAccount]:
        return [c.account for c in self.contributions]

    def index_of(self, participant: LocalAccount | str) -> int:
        addr = participant if isinstance(participant, str) else participant.address
        return self.participants.index(to_checksum_address(addr))

    @property
    def total(self) -> int:
        """Sum of all contributions mod r (what the output commits to)."""
        return sum(c.secret for c in self.contributions) % R

    @property
    def expected_output(self) -> bytes:
        m = self.beacon.market
        return expected_output(m.chain_id, m.address, self.round_id, self.total)

    # -- openings
    def opening(self, i: int) -> Opening:
        """Participant i's own opening (what it reveals)."""
        c = self.contributions[i]
        return Opening(index=i, secret=c.secret, salt=c.salt, rest_hash=c.rest)

    def recovered_opening(
        self,
        i: int,
        holders: Sequence[int] | None = None,
        *,
        tamper: Mapping[int, tuple[int, int]] | None = None,
    ) -> Opening:
        """Participant i's opening reconstructed from the shares of ``holders`` (indices into
        Q; default: the first T+1 other participants). ``tamper`` adds (ds, dr) to the share
        of the given holder indices before reconstruction (a lying share holder)."""
        c = self.contributions[i]
        if holders is None:
            holders = [k for k in range(len(self.contributions)) if k != i][: self.threshold + 1]
        shares: dict[int, tuple[int, int]] = {}
        for k in holders:
            x = self.contributions[k].x
            s, r = c.dealing.shares[x]
            ds, dr = (tamper or {}).get(k, (0, 0))
            shares[x] = ((s + ds) % R, (r + dr) % R)
        secret, salt = reconstruct(shares, self.threshold)
        return Opening(index=i, secret=secret, salt=salt, rest_hash=c.rest)

    # -- deadlines (block numbers; valid once committed)
    def commit_block(self) -> int:
        return self.beacon.get_round(self.round_id).commit_block

    def reveal_deadline(self) -> int:
        return self.commit_block() + self.beacon.phase_blocks()

    def recovery_deadline(self) -> int:
        return self.commit_block() + 2 * self.beacon.phase_blocks()

    # -- transactions
    def commit(self, submitter: LocalAccount) -> TxResult:
        self.commit_tx = self.beacon.commit_round(
            submitter, self.round_id, self.participants, self.commitments, self.sigs
        )
        return self.commit_tx

    def reveal(self, submitter: LocalAccount, indices: Iterable[int] | None = None) -> TxResult:
        idx = range(len(self.contributions)) if indices is None else indices
        tx = self.beacon.reveal(
            submitter,
            self.round_id,
            self.participants,
            self.commitments,
            [self.opening(i) for i in idx],
        )
        self.reveal_txs.append(tx)
        return tx

    def recover(
        self,
        submitter: LocalAccount,
        indices: Iterable[int],
        holders: Sequence[int] | None = None,
    ) -> TxResult:
        """Recover the contributions ``indices`` from the holders' shares; the caller mines
        past the reveal deadline first (see :meth:`mine_to_recovery`)."""
        openings = []
        for i in indices:
            hs = holders
            if hs is None:
                hs = [k for k in range(len(self.contributions)) if k != i][: self.threshold + 1]
            openings.append(self.recovered_opening(i, hs))
        tx = self.beacon.recover(
            submitter, self.round_id, self.participants, self.commitments, openings
        )
        self.recover_txs.append(tx)
        return tx

    def mine_to_recovery(self) -> None:
        """Mine past the reveal deadline, so that recover() can be estimated and sent."""
        mine_past(self.beacon.market.w3, self.reveal_deadline())




def plan_round(
    beacon: BeaconClient,
    round_id: int,
    participants: Sequence[LocalAccount],
    *,
    threshold: int | None = None,
    domain: dict[str, Any] | None = None,
) -> RoundRun:
    """Deal every participant's contribution and collect the BeaconCommit signatures for
    ``round_id`` (nothing is sent). ``threshold`` defaults to the round's stored T; secrets and
    salts come from the ``secrets`` module, as the nodes draw them."""
    t = beacon.get_round(round_id).threshold if threshold is None else threshold
    accounts = sorted(participants, key=lambda a: int(a.address, 16))
    xs = [int(a.address, 16) for a in accounts]
    contributions = []
    for acct in accounts:
        secret, salt = secrets.randbelow(R), secrets.randbelow(R)
        dealing = deal(secret, salt, t, xs)
        contributions.append(
            Contribution(
                account=acct,
                secret=secret,
                salt=salt,
                dealing=dealing,
                commitment=commitment_hash(dealing.commitments),
                rest=rest_hash(dealing.commitments),
            )
        )
    dom = beacon.market.domain() if domain is None else domain
    p_hash = participants_hash(
        [c.address for c in contributions], [c.commitment for c in contributions]
    )
    sigs = [sign_beacon_commit(c.account, dom, round_id, p_hash) for c in contributions]
    return RoundRun(beacon, round_id, t, contributions, sigs)


def run_round(
    beacon: BeaconClient,
    round_id: int,
    participants: Sequence[LocalAccount],
    submitter: LocalAccount,
    *,
    withhold: Collection[str] = frozenset(),
    recover: bool = True,
    domain: dict[str, Any] | None = None,
) -> RoundRun:
    """Run round ``round_id`` with ``participants``: deal, sign, commit, reveal all but the
    ``withhold`` addresses, and (if ``recover`` and something was withheld) mine past the
    reveal deadline and recover the withheld contributions from T+1 other participants'
    shares (those of the first T+1 revealers). Every transaction is sent by ``submitter``."""
    run = plan_round(beacon, round_id, participants, domain=domain)
    held = {to_checksum_address(a) for a in withhold}
    unknown = held - set(run.participants)
    if unknown:
        raise ValueError(f"withheld addresses are not participants: {sorted(unknown)}")
    revealers = [i for i, p in enumerate(run.participants) if p not in held]
    if held and recover and len(revealers) < run.threshold + 1:
        raise ValueError(
            f"{len(revealers)} revealers hold too few shares to recover (T = {run.threshold})"
        )
    run.commit(submitter)
    if revealers:
        run.reveal(submitter, revealers)
    if held and recover:
        run.mine_to_recovery()
        withheld = sorted(run.index_of(p) for p in held)
        run.recover(submitter, withheld, holders=revealers[: run.threshold + 1])
    return run


def pick_participants(
    beacon: BeaconClient,
    round_id: int,
    candidates: Iterable[LocalAccount],
    count: int | None = None,
) -> list[LocalAccount]:
    """The first ``count`` (default 2T+1 of the round) Active accounts among ``candidates``."""
    need = 2 * beacon.get_round(round_id).threshold + 1 if count is None else count
    out: list[LocalAccount] = []
    for acct in candidates:
        if len(out) == need:
            break
        if beacon.market.is_active(acct.address):
            out.append(acct)
    if len(out) < need:
        raise RuntimeError(f"round {round_id}: need {need} Active participants, found {len(out)}")
    return out


# ----------------------------------------------------------------------------- jobs


def seed_job(
    beacon: BeaconClient,
    job_id: int,
    candidates: Sequence[LocalAccount],
    submitter: LocalAccount,
) -> RoundRun | None:
    """Run the round serving job ``job_id`` (its seed round or that round's successor) with
    the first 2T+1 Active ``candidates``, unless it is Finalized already (then None)."""
    round_id = beacon.resolve_round(beacon.market.get_job(job_id).seed_round)
    if beacon.get_round(round_id).status is RoundStatus.FINALIZED:
        return None
    participants = pick_participants(beacon, round_id, candidates)
    return run_round(beacon, round_id, participants, submitter)


def assign_job_committee(
    beacon: BeaconClient,
    job_id: int,
    candidates: Sequence[LocalAccount],
    submitter: LocalAccount,
) -> list[str]:
    """Seed job ``job_id`` (see :func:`seed_job`) and record its committee; returns it
    (ascending addresses)."""
    seed_job(beacon, job_id, candidates, submitter)
    committee, _ = beacon.assign_committee(submitter, job_id)
    return committee


def post_job_with_committee(
    market: MarketClient,
    buyer: LocalAccount,
    candidates: Sequence[LocalAccount],
    submitter: LocalAccount,
    **post: Any,
) -> tuple[int, list[str]]:
    """Post a job (``post``: the keyword arguments of :meth:`MarketClient.post_job`), run its
    beacon round with Active ``candidates`` and assign its committee; returns (job id,
    committee addresses ascending)."""
    job_id, _ = market.post_job(buyer, **post)
    return job_id, assign_job_committee(
        BeaconClient(market), job_id, candidates, submitter
    )
