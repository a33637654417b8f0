"""Python client of the randomness beacon and committee drawing in the MPCMarket contract.

Wraps ``contracts/core/RandomnessBeacon.sol`` and ``JobMarket.assignCommittee`` through the same
transaction sender as :class:`~offchain.chain.market.MarketClient` (its public ``sender``;
reverts surface as ``ContractRevert`` with the custom error's name, e.g.
``BeaconRevealMismatch(0xAbc...)``).

Units: wei, blocks (phase lengths and deadlines are block numbers), 32-byte ``bytes`` hashes,
field elements of F_r as ints in [0, r).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3.logs import DISCARD

from offchain.chain.market import MarketClient
from offchain.chain.tx import TxResult
from offchain.encoding.eip712 import Sig
from offchain.types import RequestStatus, RoundStatus

__all__ = ["BeaconClient", "Opening", "RequestInfo", "RequestStatus", "RoundInfo", "RoundStatus"]


@dataclass(frozen=True)
class RoundInfo:
    """A stored round (``getRound``). Blocks are block numbers; masks have bit i for
    participants[i]; ``output`` is zero until Finalized; ``pot_wei`` in wei."""

    round_id: int
    open_block: int
    commit_block: int
    threshold: int
    participant_count: int
    settled_count: int
    status: RoundStatus
    revealed_mask: int
    recovered_mask: int
    participants_hash: bytes
    accumulator: int
    output: bytes
    pot_wei: int
    successor: int


@dataclass(frozen=True)
class RequestInfo:
    """A stored randomness request (``getRequest``)."""

    request_id: int
    requester: str
    round_id: int
    callback_gas_limit: int
    status: RequestStatus


@dataclass(frozen=True)
class Opening:
    """An opening of participant ``index``'s contribution: secret and salt in F_r and the
    32-byte hash of its commitment points C_1..C_T."""

    index: int
    secret: int
    salt: int
    rest_hash: bytes

    def to_tuple(self) -> tuple[int, int, int, bytes]:
        return (self.index, self.secret, self.salt, bytes(self.rest_hash))


class BeaconClient:
    """Beacon and committee calls on the market ``market`` (same contract, same sender)."""

    def __init__(self, market: MarketClient) -> None:
        self.market = market
        self.contract = market.contract
        self.sender = market.sender

    def _call(self, fn: Any) -> Any:
        with self.sender.reverts():
            return fn.call()

    # ------------------------------------------------------------------ transactions

    def request_randomness(self, account: LocalAccount, *, callback_gas_limit: int = 0,
                           fee_wei: int | None = None) -> tuple[int, int, TxResult]:
        """Buy one random value; returns (request id, round id, tx). ``fee_wei`` defaults to
        ``requestPriceWei(callback_gas_limit)`` plus 10% for a base fee that rises meanwhile
        (the excess goes to the round's revealers). Raises ContractRevert BeaconFeeTooLow /
        BeaconCallbackGasTooHigh / BeaconTooFewActiveNodes."""
        if fee_wei is None:
            price = self.request_price_wei(callback_gas_limit)
            base = self.randomness_fee_wei()
            fee = base + (price - base) * 11 // 10
        else:
            fee = fee_wei
        tx = self.sender.send("requestRandomness", account,
                           self.contract.functions.requestRandomness(callback_gas_limit),
                           value=fee)
        ev = self.contract.events.RandomnessRequested().process_receipt(tx.receipt,
                                                                       errors=DISCARD)
        if len(ev) != 1:
            raise RuntimeError(f"requestRandomness {tx.hash}: expected one RandomnessRequested")
        return int(ev[0]["args"]["requestId"]), int(ev[0]["args"]["roundId"]), tx

    def commit_round(self, account: LocalAccount, round_id: int, participants: Sequence[str],
                     commitments: Sequence[bytes], sigs: Sequence[Sig]) -> TxResult:
        """Put Q (ascending) with every member's BeaconCommit signature on chain."""
        fn = self.contract.functions.commitRound(
            round_id, [to_checksum_address(p) for p in participants],
            [bytes(c) for c in commitments], [s.to_tuple() for s in sigs])
        return self.sender.send("commitRound", account, fn)

    def reveal(self, account: LocalAccount, round_id: int, participants: Sequence[str],
               commitments: Sequence[bytes], openings: Sequence[Opening]) -> TxResult:
        """Open contributions during the reveal phase."""
        return self._open("reveal", account, round_id, participants, commitments, openings)

    def recover(self, account: LocalAccount, round_id: int, participants: Sequence[str],
                commitments: Sequence[bytes], openings: Sequence[Opening]) -> TxResult:
        """Submit reconstructed contributions during the recovery phase."""
        return self._open("recover", account, round_id, participants, commitments, openings)

    def _open(self, name: str, account: LocalAccount, round_id: int,
              participants: Sequence[str], commitments: Sequence[bytes],
              openings: Sequence[Opening]) -> TxResult:
        fn = self.contract.functions[name](
            round_id, [to_checksum_address(p) for p in participants],
            [bytes(c) for c in commitments], [o.to_tuple() for o in openings])
        # Whichever opening completes the round also finalizes it (output, slashes, rewards):
        # leave room for that even if other openings land between estimate and inclusion.
        return self.sender.send(name, account, fn, extra_gas=40_000 + 15_000 * len(participants))

    def fail_round(self, account: LocalAccount, round_id: int,
                   participants: Sequence[str] = (), commitments: Sequence[bytes] = ()
                   ) -> TxResult:
        """Declare a round Failed (after its commit or recovery deadline)."""
        fn = self.contract.functions.failRound(
            round_id, [to_checksum_address(p) for p in participants],
            [bytes(c) for c in commitments])
        return self.sender.send("failRound", account, fn)

    def fulfill(self, account: LocalAccount, request_id: int,
                gas_limit: int | None = None) -> TxResult:
        """Deliver a request's value to its consumer (callback with its gas limit).

        ``gas_limit``: the transaction's gas instead of an estimate. The call is first run by
        eth_call with that gas, so a limit too small for the callback raises ContractRevert
        ExactGasCallInsufficientGas before anything is sent."""
        return self.sender.send("fulfill", account, self.contract.functions.fulfill(request_id),
                             gas=gas_limit)

    def assign_committee(self, account: LocalAccount, job_id: int) -> tuple[list[str], TxResult]:
        """Draw and record job ``job_id``'s committee; returns (committee ascending, tx).
        Raises ContractRevert JobNotOpen / JobDeadlinePassed / JobCommitteeAlreadyAssigned /
        JobSeedNotReady / JobTooFewEligibleNodes."""
        tx = self.sender.send("assignCommittee", account,
                           self.contract.functions.assignCommittee(job_id))
        ev = self.contract.events.CommitteeAssigned().process_receipt(tx.receipt, errors=DISCARD)
        if len(ev) != 1:
            raise RuntimeError(f"assignCommittee {tx.hash}: expected one CommitteeAssigned")
        return [to_checksum_address(a) for a in ev[0]["args"]["committee"]], tx

    # ------------------------------------------------------------------ views

    def request_price_wei(self, callback_gas_limit: int) -> int:
        """``requestPriceWei``: the fee plus the callback gas at the current price (wei)."""
        return int(self._call(self.contract.functions.requestPriceWei(callback_gas_limit)))

    def randomness_fee_wei(self) -> int:
        return int(self._call(self.contract.functions.randomnessFeeWei()))

    def phase_blocks(self) -> int:
        return int(self._call(self.contract.functions.phaseBlocks()))

    def round_count(self) -> int:
        return int(self._call(self.contract.functions.roundCount()))

    def pending_round(self) -> int:
        return int(self._call(self.contract.functions.pendingRound()))

    def resolve_round(self, round_id: int) -> int:
        return int(self._call(self.contract.functions.resolveRound(round_id)))

    def get_round(self, round_id: int) -> RoundInfo:
        r = self._call(self.contract.functions.getRound(round_id))
        return RoundInfo(round_id, int(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]),
                         RoundStatus(r[5]), int(r[6]), int(r[7]), bytes(r[8]), int(r[9]),
                         bytes(r[10]), int(r[11]), int(r[12]))

    def get_request(self, request_id: int) -> RequestInfo:
        r = self._call(self.contract.functions.getRequest(request_id))
        return RequestInfo(request_id, to_checksum_address(r[0]), int(r[1]), int(r[2]),
                           RequestStatus(r[3]))

    def randomness_of(self, request_id: int) -> bytes:
        return bytes(self._call(self.contract.functions.randomnessOf(request_id)))

    def node_blocks(self, address: str) -> tuple[int, int]:
        """(registered block, exit block or 0) of ``address`` (as
        :meth:`~offchain.chain.registry.RegistryCalls.node_blocks`)."""
        return self.market.node_blocks(address)

    def active_node_count(self) -> int:
        return int(self._call(self.contract.functions.activeNodeCount()))

    def simulate_assign(self, job_id: int) -> list[str]:
        """The committee assignCommittee would record now (eth_call; reverts as the tx would)."""
        out = self._call(self.contract.functions.assignCommittee(job_id))
        return [to_checksum_address(a) for a in out]

    def draw_committee(self, candidates: Sequence[str], n: int, seed: bytes) -> list[str]:
        """The contract's sampling rule evaluated by eth_call (pure)."""
        out = self._call(self.contract.functions.drawCommittee(
            [to_checksum_address(c) for c in candidates], n, bytes(seed)))
        return [to_checksum_address(a) for a in out]

    def hash_beacon_commit(self, round_id: int, participants_hash: bytes) -> bytes:
        return bytes(self._call(self.contract.functions.hashBeaconCommit(round_id,
                                                                          participants_hash)))

    def events(self, name: str, from_block: int = 0,
               to_block: int | str = "latest") -> list[dict[str, Any]]:
        """Decoded logs named ``name`` (snake_case args, block_number, tx_hash, log_index)."""
        return self.market.events(name, from_block, to_block)
