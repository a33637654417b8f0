"""The randomness beacon and committee drawing of MPCMarket on a real anvil: every external
beacon / committee function, its success path and each named failure path.

Rounds are driven in-process by tests/beacon_driver.py (real Pedersen dealings over BN254, real
EIP-712 BeaconCommit signatures). The session deployment has 14 Active nodes, so its rounds have
T = (14 - 1) // 3 = 4 and need 2T + 1 = 9 participants; phases are 20 blocks.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from offchain.chain.beacon import BeaconClient, Opening, RequestStatus, RoundStatus
from offchain.chain.market import MarketClient, NodeStatus
from offchain.chain.tx import DEFAULT_TIP_WEI, ErrorDecoder, TxResult, TxSender
from offchain.crypto.field import R
from offchain.devnet.compile import CompiledContract, compile_contracts
from offchain.encoding.eip712 import SECP256K1_N, Sig, committee_hash
from offchain.encoding.eip712.beacon import (
    beacon_commit_digest,
    participants_hash,
    sign_beacon_commit,
)
from tests.helpers.beacon_driver import (
    RoundRun,
    expected_output,
    mine,
    mine_past,
    mine_until,
    pick_participants,
    plan_round,
    post_job_with_committee,
    run_round,
    seed_job,
)
from tests.helpers.env import (
    EXIT_DELAY_S,
    MIN_PAYMENT_WEI,
    MIN_STAKE_WEI,
    Env,
    callback_gas,
    reverts,
)

SEED_TAG = keccak(b"MPCMarket.committee")  # JobMarket.COMMITTEE_SEED_TAG

PHASE = 20  # deploy_market's default phase_blocks
FEE = 10**15  # deploy_market's default randomness_fee_wei
PAID = FEE + 60_000 * 10**10  # a DiceConsumer roll: fee + 60k callback gas at 10 gwei (>= price)
SLASH = 10**17  # deploy_market's default beacon_slash_wei
KEY = b"\x42" * 32
COMMIT_PLUS_REVEAL_GAS_MAX_5 = 300_000  # commitRound + one batched reveal, 5 participants


# ============================================================================ helpers


@pytest.fixture(scope="module")
def artifacts() -> dict[str, CompiledContract]:
    return compile_contracts(include_tests=True)


def open_round(env: Env, account: LocalAccount | None = None, **kw: Any) -> tuple[int, int]:
    """Buy a random value (opens or joins the Open round): (request id, round id)."""
    req, rid, _ = env.beacon.request_randomness(account or env.buyer, **kw)
    return req, rid


def plan(env: Env, round_id: int, accounts: Sequence[LocalAccount] | None = None) -> RoundRun:
    if accounts is None:
        accounts = pick_participants(env.beacon, round_id, env.nodes)
    return plan_round(env.beacon, round_id, accounts)


def committed(env: Env, round_id: int | None = None) -> RoundRun:
    """A committed round (a fresh one by default) with its first 2T+1 Active nodes."""
    if round_id is None:
        _, round_id = open_round(env)
    run = plan(env, round_id)
    run.commit(env.outsider)
    return run


def small_market(env: Env, n_nodes: int, **kw: Any) -> tuple[BeaconClient, list[LocalAccount]]:
    """A fresh deployment with the first ``n_nodes`` session nodes registered."""
    market = env.fresh_market(**kw)
    nodes = env.nodes[:n_nodes]
    for i, node in enumerate(nodes):
        market.register(node, KEY, f"http://n{i}", MIN_STAKE_WEI)
    return BeaconClient(market), nodes


def post(market: MarketClient, buyer: LocalAccount, size: int = 3, **kw: Any) -> int:
    args: dict[str, Any] = {
        "dataset_id": keccak(text="d"),
        "query": "q",
        "committee_size": size,
        "threshold": 1,
        "min_providers": 1,
        "timeout_s": 600,
        "payment_wei": MIN_PAYMENT_WEI,
    }
    args.update(kw)
    job_id, _ = market.post_job(buyer, **args)
    return job_id


def request_count(env: Env) -> int:
    return int(env.market.contract.functions.requestCount().call())


def next_block_call(env: Env, fn: Any) -> None:
    """eth_call of ``fn`` in the pending block (``block.number`` = latest + 1, where the next
    transaction lands): exact deadline checks. Raises ContractRevert."""
    try:
        fn.call({"from": env.outsider.address}, block_identifier="pending")
    except ContractLogicError as exc:
        raise ErrorDecoder(env.market.abi).from_exception(exc) from None


def value_of(output: bytes, request_id: int) -> bytes:
    return keccak(abi_encode(["bytes32", "uint256"], [output, request_id]))


class Consumer:
    """A deployed consumer contract (examples/DiceConsumer or a test double)."""

    def __init__(self, env: Env, artifact: CompiledContract) -> None:
        self.env = env
        self.sender = TxSender(
            env.w3, ErrorDecoder([*env.market.abi, *artifact.abi]), DEFAULT_TIP_WEI
        )
        factory = env.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = self.sender.send("deploy", env.buyer, factory.constructor(env.market.address))
        self.address = to_checksum_address(tx.receipt["contractAddress"])
        self.contract = env.w3.eth.contract(address=self.address, abi=artifact.abi)

    def send(self, name: str, *args: Any, value: int = 0) -> TxResult:
        fn = self.contract.functions[name](*args)
        return self.sender.send(name, self.env.buyer, fn, value=value)

    def request_id(self, tx: TxResult) -> int:
        [ev] = self.env.market.contract.events.RandomnessRequested().process_receipt(
            tx.receipt, errors=DISCARD
        )
        assert ev["args"]["requester"] == self.address
        return int(ev["args"]["requestId"])


def fulfilled_event(env: Env, tx: TxResult) -> dict[str, Any]:
    [ev] = env.market.contract.events.RandomnessFulfilled().process_receipt(
        tx.receipt, errors=DISCARD
    )
    return dict(ev["args"])


# -- the committee rule, implemented independently of the contract


def node_history(env: Env, beacon: BeaconClient | None = None) -> dict[str, tuple[int, int]]:
    """(registered block, exit block or 0) of every registered node, replayed from the
    NodeRegistered / NodeExitRequested / NodeSlashed / NodeExited events, and checked against
    the contract's nodeBlocks view."""
    b = beacon or env.beacon
    names = ("NodeRegistered", "NodeExitRequested", "NodeSlashed", "NodeExited")
    events = sorted(
        ((name, e) for name in names for e in b.events(name)),
        key=lambda ne: (ne[1]["block_number"], ne[1]["log_index"]),
    )
    state: dict[str, tuple[int, int]] = {}
    for name, e in events:
        node, block = e["node"], e["block_number"]
        if name == "NodeRegistered":
            state[node] = (block, 0)
        elif name == "NodeExited":
            del state[node]
        elif state[node][1] == 0:  # exit requested, or slashed while Active: exiting from here
            state[node] = (state[node][0], block)
    for node, blocks in state.items():
        assert b.node_blocks(node) == blocks, node
    return state


def eligible_at(env: Env, snapshot: int, beacon: BeaconClient | None = None) -> list[str]:
    """Nodes registered before ``snapshot`` and not exiting at it, ascending."""
    out = [
        node
        for node, (reg, ex) in node_history(env, beacon).items()
        if reg < snapshot and (ex == 0 or ex > snapshot)
    ]
    return sorted(out, key=lambda a: int(a, 16))


def draw(candidates: Sequence[str], n: int, seed: bytes) -> list[str]:
    """Partial Fisher-Yates with keccak256(abi.encode(seed, i)) % (m - i), then sorted."""
    pool = list(candidates)
    m = len(pool)
    for i in range(n):
        word = keccak(abi_encode(["bytes32", "uint256"], [seed, i]))
        j = i + int.from_bytes(word, "big") % (m - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:n], key=lambda a: int(a, 16))


def expected_committee(env: Env, job_id: int, beacon: BeaconClient | None = None) -> list[str]:
    b = beacon or env.beacon
    job = b.market.get_job(job_id)
    rnd = b.get_round(b.resolve_round(job.seed_round))
    seed = keccak(abi_encode(["bytes32", "bytes32", "uint256"], [SEED_TAG, rnd.output, job_id]))
    return draw(eligible_at(env, rnd.commit_block, b), job.committee_size, seed)


# ============================================================================ requestRandomness


def test_request_randomness_opens_and_joins_a_round(env: Env) -> None:
    block = env.w3.eth.block_number
    assert (env.beacon.round_count(), env.beacon.pending_round(), request_count(env)) == (
        0,
        0,
        0,
    )
    req1, rid, tx1 = env.beacon.request_randomness(env.buyer, callback_gas_limit=0)
    paid = FEE + 123 * 10**10  # more than the callback's 123 gas at 2 x base fee + 1 gwei
    req2, rid2, tx2 = env.beacon.request_randomness(
        env.outsider, callback_gas_limit=123, fee_wei=paid
    )
    base_fee = int(env.w3.eth.get_block(tx2.block_number)["baseFeePerGas"])
    callback_fee = 123 * (2 * base_fee + 10**9)
    assert (req1, req2, rid, rid2) == (1, 2, 1, 1)
    assert (env.beacon.round_count(), env.beacon.pending_round(), request_count(env)) == (
        1,
        1,
        2,
    )
    [opened] = env.beacon.events("RoundOpened", block + 1)
    assert opened == {
        "block_number": tx1.block_number,
        "tx_hash": tx1.hash,
        "log_index": 0,
        "round_id": 1,
        "open_block": tx1.block_number,
        "commit_deadline": tx1.block_number + PHASE,
        "threshold": 4,
        "active_nodes": 14,
    }
    requested = env.beacon.events("RandomnessRequested", block + 1)
    assert [(e["request_id"], e["requester"], e["round_id"]) for e in requested] == [
        (1, env.buyer.address, 1),
        (2, env.outsider.address, 1),
    ]
    assert [(e["callback_gas_limit"], e["fee_wei"]) for e in requested] == [
        (0, FEE),
        (123, paid),
    ]
    rnd = env.beacon.get_round(1)
    assert (rnd.status, rnd.threshold, rnd.open_block) == (RoundStatus.OPEN, 4, tx1.block_number)
    # the callback's gas is set aside for whoever delivers it; the rest goes to the revealers
    assert rnd.pot_wei == FEE + paid - callback_fee
    req = env.beacon.get_request(2)
    assert (req.requester, req.round_id, req.callback_gas_limit, req.status) == (
        env.outsider.address,
        1,
        123,
        RequestStatus.PENDING,
    )
    assert env.beacon.get_request(3).status is RequestStatus.NONE


def test_request_randomness_fee_too_low(env: Env) -> None:
    with reverts("BeaconFeeTooLow", FEE - 1, FEE):
        env.beacon.request_randomness(env.buyer, fee_wei=FEE - 1)
    with reverts("BeaconFeeTooLow", 0, FEE):
        env.beacon.request_randomness(env.buyer, fee_wei=0)


def test_request_randomness_callback_gas_too_high(env: Env) -> None:
    with reverts("BeaconCallbackGasTooHigh", 2_000_001, 2_000_000):
        env.beacon.request_randomness(env.buyer, callback_gas_limit=2_000_001)
    req, _, _ = env.beacon.request_randomness(env.buyer, callback_gas_limit=2_000_000)
    assert env.beacon.get_request(req).callback_gas_limit == 2_000_000


@pytest.mark.parametrize("n_nodes", [0, 2])
def test_request_randomness_too_few_active_nodes(env: Env, n_nodes: int) -> None:
    beacon, _ = small_market(env, n_nodes)
    with reverts("BeaconTooFewActiveNodes", n_nodes, 3):
        beacon.request_randomness(env.buyer)
    assert beacon.round_count() == 0


def test_round_threshold_follows_the_active_node_count(env: Env) -> None:
    """T = max(1, (N - 1) // 3) for N Active nodes at opening."""
    for n_nodes, t in ((3, 1), (4, 1), (6, 1), (7, 2), (10, 3)):
        beacon, _ = small_market(env, n_nodes)
        _, rid, _ = beacon.request_randomness(env.buyer)
        assert beacon.get_round(rid).threshold == t, n_nodes
    assert env.beacon.get_round(open_round(env)[1]).threshold == 4  # N = 14


# ============================================================================ commitRound


def test_commit_round_success(env: Env) -> None:
    _, rid = open_round(env)
    run = plan(env, rid)
    p_hash = participants_hash(run.participants, run.commitments)
    digest = beacon_commit_digest(env.market.domain(), rid, p_hash)
    assert env.beacon.hash_beacon_commit(rid, p_hash) == digest
    tx = run.commit(env.outsider)
    [ev] = env.beacon.events("RoundCommitted", tx.block_number)
    assert ev["participants"] == run.participants and ev["commitments"] == run.commitments
    assert ev["reveal_deadline"] == tx.block_number + PHASE
    rnd = env.beacon.get_round(rid)
    assert (rnd.status, rnd.commit_block, rnd.participant_count) == (
        RoundStatus.COMMITTED,
        tx.block_number,
        9,
    )
    assert rnd.participants_hash == p_hash and rnd.settled_count == 0
    assert env.beacon.pending_round() == 0
    # New demand now opens the next round.
    assert open_round(env)[1] == rid + 1


def test_commit_round_unknown_round(env: Env) -> None:
    run = plan_round(env.beacon, 99, env.nodes[:9], threshold=4)
    with reverts("BeaconUnknownRound", 99):
        run.commit(env.outsider)


def test_commit_round_late_and_second_commit(env: Env) -> None:
    _, rid = open_round(env)
    run = plan(env, rid)
    deadline = env.beacon.get_round(rid).open_block + PHASE
    commit = env.market.contract.functions.commitRound(
        rid, run.participants, run.commitments, [sig.to_tuple() for sig in run.sigs]
    )
    mine_until(env.w3, deadline - 1)
    next_block_call(env, commit)  # a commit in the deadline block would pass
    mine(env.w3)
    with reverts("BeaconCommitPhaseClosed", rid):  # one block later it does not
        next_block_call(env, commit)
    mine(env.w3)
    with reverts("BeaconCommitPhaseClosed", rid):
        run.commit(env.outsider)
    # The next request opens a new round; a commit in its last block is in time.
    _, rid2 = open_round(env)
    assert rid2 == rid + 1
    run2 = plan(env, rid2)
    mine_until(env.w3, env.beacon.get_round(rid2).open_block + PHASE - 1)
    tx = run2.commit(env.outsider)
    assert tx.block_number == env.beacon.get_round(rid2).open_block + PHASE
    with reverts("BeaconCommitPhaseClosed", rid2):  # a second commit
        plan(env, rid2).commit(env.outsider)


def test_commit_round_length_mismatch(env: Env) -> None:
    _, rid = open_round(env)
    run = plan(env, rid)
    b = env.beacon
    with reverts("BeaconLengthMismatch"):
        b.commit_round(env.outsider, rid, run.participants, run.commitments[:-1], run.sigs)
    with reverts("BeaconLengthMismatch"):
        b.commit_round(env.outsider, rid, run.participants, run.commitments, run.sigs[:-1])
    run.commit(env.outsider)


def test_commit_round_too_few_and_too_many_participants(env: Env) -> None:
    _, rid = open_round(env)
    with reverts("BeaconTooFewParticipants", 8, 9):
        plan(env, rid, env.nodes[:8]).commit(env.outsider)
    fake = [to_checksum_address(i.to_bytes(20, "big")) for i in range(1, 66)]
    sig = Sig(bytes(32), bytes(32), 27)
    with reverts("BeaconTooManyParticipants", 65, 64):
        env.beacon.commit_round(env.outsider, rid, fake, [bytes(32)] * 65, [sig] * 65)
    plan(env, rid, env.nodes[:10]).commit(env.outsider)  # more than 2T+1 is fine
    assert env.beacon.get_round(rid).participant_count == 10


def _signed(env: Env, rid: int, accounts: Sequence[LocalAccount], order: Sequence[int]) -> tuple:
    """Participants in the given order (not sorted), with matching commitments and valid
    signatures over exactly that list."""
    run = plan(env, rid, accounts)
    parts = [run.participants[i] for i in order]
    comms = [run.commitments[i] for i in order]
    p_hash = participants_hash(parts, comms)
    dom = env.market.domain()
    by_addr = {a.address: a for a in accounts}
    sigs = [sign_beacon_commit(by_addr[p], dom, rid, p_hash) for p in parts]
    return parts, comms, sigs


def test_commit_round_duplicate_and_unsorted_participants(env: Env) -> None:
    _, rid = open_round(env)
    accounts = env.nodes[:9]
    parts, comms, sigs = _signed(env, rid, accounts, [0, 1, 2, 2, 3, 4, 5, 6, 7])
    with reverts("BeaconDuplicateCommit", parts[2]):
        env.beacon.commit_round(env.outsider, rid, parts, comms, sigs)
    parts, comms, sigs = _signed(env, rid, accounts, [0, 1, 2, 3, 5, 4, 6, 7, 8])
    with reverts("BeaconParticipantsNotSorted", 5):
        env.beacon.commit_round(env.outsider, rid, parts, comms, sigs)
    plan(env, rid).commit(env.outsider)


def test_commit_round_unregistered_and_exiting_participants(env: Env) -> None:
    _, rid = open_round(env)
    stranger = env.unregistered[0]
    with reverts("RegistryNotRegistered", stranger.address):
        plan(env, rid, [*env.nodes[:8], stranger]).commit(env.outsider)
    exiting = env.nodes[3]
    env.market.request_exit(exiting)  # after the round opened: it may not take part
    with reverts("RegistryNotActive", exiting.address):
        plan(env, rid, env.nodes[:9]).commit(env.outsider)
    run = plan(env, rid)  # the first 9 Active nodes
    assert exiting.address not in run.participants
    run.commit(env.outsider)


def test_commit_round_invalid_signatures(env: Env) -> None:
    _, rid = open_round(env)
    run = plan(env, rid)
    dom = env.market.domain()
    p_hash = participants_hash(run.participants, run.commitments)
    victim = run.participants[3]
    good = run.sigs[3]
    twin_s = (SECP256K1_N - int.from_bytes(good.s, "big")).to_bytes(32, "big")
    high_s = Sig(good.r, twin_s, 55 - good.v)
    bad_sigs = [
        sign_beacon_commit(Account.create(), dom, rid, p_hash),  # somebody else
        sign_beacon_commit(run.accounts[3], dom, rid + 1, p_hash),  # another round
        sign_beacon_commit(run.accounts[3], dom, rid, keccak(b"other set")),  # another Q
        run.sigs[4],  # its neighbour's signature
        high_s,  # malleable twin
        Sig(good.r, good.s, 29),
    ]
    for bad in bad_sigs:
        sigs = [*run.sigs[:3], bad, *run.sigs[4:]]
        with reverts("BeaconInvalidCommitSignature", victim):
            env.beacon.commit_round(env.outsider, rid, run.participants, run.commitments, sigs)
    run.commit(env.outsider)
    assert env.beacon.get_round(rid).status is RoundStatus.COMMITTED


# ============================================================================ reveal


def test_reveal_in_batches_finalizes_with_the_sum_of_all_secrets(env: Env) -> None:
    req, rid = open_round(env)
    run = committed(env, rid)
    tx1 = run.reveal(env.outsider, [0, 4, 8])
    rnd = env.beacon.get_round(rid)
    assert (rnd.status, rnd.settled_count, rnd.revealed_mask) == (
        RoundStatus.COMMITTED,
        3,
        0b100010001,
    )
    assert rnd.accumulator == sum(run.contributions[i].secret for i in (0, 4, 8)) % R
    assert rnd.output == bytes(32)
    with reverts("BeaconRoundNotFinal", rid):
        env.beacon.randomness_of(req)
    tx2 = run.reveal(env.outsider, [7, 1, 2, 3, 5, 6])  # any order
    rnd = env.beacon.get_round(rid)
    assert rnd.status is RoundStatus.FINALIZED
    assert rnd.output == run.expected_output
    assert rnd.revealed_mask == 0x1FF and rnd.recovered_mask == 0 and rnd.settled_count == 9
    opened = env.beacon.events("ContributionOpened", tx1.block_number)
    assert [(e["participant"], e["secret"], e["recovered"]) for e in opened] == [
        (run.participants[i], run.contributions[i].secret, False)
        for i in (0, 4, 8, 7, 1, 2, 3, 5, 6)
    ]
    [fin] = env.beacon.events("RoundFinalized", tx2.block_number)
    assert (fin["round_id"], fin["output"], fin["revealed_mask"], fin["recovered_mask"]) == (
        rid,
        run.expected_output,
        0x1FF,
        0,
    )
    # The request's fee went to the 9 revealers.
    assert fin["reward_per_revealer_wei"] == FEE // 9
    rewards = [env.market.get_node(p).rewards_wei for p in run.participants]
    assert rewards == [FEE // 9 + FEE % 9] + [FEE // 9] * 8
    assert env.beacon.randomness_of(req) == value_of(run.expected_output, req)
    assert run.expected_output == expected_output(31337, env.market.address, rid, run.total)


def test_reveal_in_one_batch_gas_and_output(env: Env) -> None:
    run = committed(env)
    tx = run.reveal(env.outsider)
    assert env.beacon.get_round(run.round_id).output == run.expected_output
    assert tx.gas_used < 400_000, tx.gas_used  # 9 openings (2 ecMul + 1 ecAdd each)


def test_reveal_not_committed_or_unknown(env: Env) -> None:
    _, rid = open_round(env)
    run = plan(env, rid)
    with reverts("BeaconRoundNotCommitted", rid):
        run.reveal(env.outsider)
    with reverts("BeaconUnknownRound", 99):
        env.beacon.reveal(env.outsider, 99, run.participants, run.commitments, [run.opening(0)])
    run.commit(env.outsider)
    run.reveal(env.outsider)
    with reverts("BeaconRoundNotCommitted", rid):  # Finalized
        run.reveal(env.outsider, [0])


def test_reveal_phase_closed(env: Env) -> None:
    run = committed(env)
    deadline = run.reveal_deadline()
    mine_until(env.w3, deadline - 1)
    tx = run.reveal(env.outsider, range(8))  # lands in the last block of the reveal phase
    assert tx.block_number == deadline
    reveal = env.market.contract.functions.reveal(
        run.round_id, run.participants, run.commitments, [run.opening(8).to_tuple()]
    )
    with reverts("BeaconRevealPhaseClosed", run.round_id, deadline):
        next_block_call(env, reveal)
    mine(env.w3)
    with reverts("BeaconRevealPhaseClosed", run.round_id, deadline):
        run.reveal(env.outsider, [8])


def _rejected(env: Env, run: RoundRun, bad: list[Opening], error: tuple) -> None:
    with reverts(*error):
        env.beacon.reveal(env.outsider, run.round_id, run.participants, run.commitments, bad)


def test_reveal_rejections_leave_the_round_intact(env: Env) -> None:
    """Each rejected reveal reverts as a whole; the honest openings still finalize the round with
    the output of the sum of all committed secrets."""
    run = committed(env)
    rid, b = run.round_id, env.beacon
    o = run.opening
    p = run.participants
    with reverts("BeaconParticipantsMismatch"):
        b.reveal(env.outsider, rid, p[::-1], run.commitments[::-1], [o(0)])
    with reverts("BeaconParticipantsMismatch"):
        b.reveal(env.outsider, rid, p, [*run.commitments[:-1], bytes(32)], [o(0)])
    _rejected(env, run, [o(0), Opening(9, 1, 1, bytes(32))], ("BeaconInvalidIndex", 9))
    _rejected(env, run, [Opening(2**64, 1, 1, bytes(32))], ("BeaconInvalidIndex", 2**64))
    _rejected(env, run, [], ("BeaconNothingToOpen", rid))
    c = run.contributions[3]
    _rejected(env, run, [Opening(3, c.secret + R, c.salt, c.rest)], ("BeaconNotAFieldElement",))
    _rejected(env, run, [Opening(3, c.secret, c.salt + R, c.rest)], ("BeaconNotAFieldElement",))
    for wrong in (
        Opening(3, (c.secret + 1) % R, c.salt, c.rest),  # another secret
        Opening(3, c.secret, (c.salt + 1) % R, c.rest),  # another salt
        Opening(3, c.secret, c.salt, keccak(c.rest)),  # another T-point vector
        Opening(3, *o(4).to_tuple()[1:]),  # participant 4's opening under index 3
    ):
        _rejected(env, run, [o(0), wrong], ("BeaconRevealMismatch", p[3]))
    run.reveal(env.outsider, [0, 1, 2, 1, 3, 4])  # a duplicate in a batch is skipped
    assert env.beacon.get_round(rid).settled_count == 5
    _rejected(env, run, [o(4)], ("BeaconNothingToOpen", rid))  # all opened in an earlier tx
    # Already-opened entries are skipped, not fatal: a front-run opening cannot make an honest
    # batch revert (and its sender miss its own reveal).
    tx = run.reveal(env.outsider, [4, 5, 5, 6, 7, 8])
    opened = env.beacon.events("ContributionOpened", tx.block_number)
    assert [e["participant"] for e in opened] == p[5:9]
    assert env.beacon.get_round(rid).output == run.expected_output


# ============================================================================ recover


def test_recover_not_open_and_closed(env: Env) -> None:
    run = committed(env)
    run.reveal(env.outsider, range(8))
    deadline, closing = run.reveal_deadline(), run.recovery_deadline()
    assert closing == deadline + PHASE
    with reverts("BeaconRecoveryNotOpen", run.round_id, deadline):
        run.recover(env.outsider, [8])
    recover = env.market.contract.functions.recover(
        run.round_id, run.participants, run.commitments, [run.recovered_opening(8).to_tuple()]
    )
    mine_until(env.w3, deadline - 1)
    with reverts("BeaconRecoveryNotOpen", run.round_id, deadline):  # in the last reveal block
        next_block_call(env, recover)
    mine(env.w3)
    next_block_call(env, recover)  # the first recovery block
    mine_until(env.w3, closing - 1)
    next_block_call(env, recover)  # the last one
    mine(env.w3)
    with reverts("BeaconRecoveryPhaseClosed", run.round_id, closing):
        next_block_call(env, recover)
    mine(env.w3)
    with reverts("BeaconRecoveryPhaseClosed", run.round_id, closing):
        run.recover(env.outsider, [8])
    with reverts("BeaconUnknownRound", 99):
        env.beacon.recover(env.outsider, 99, [], [], [])


def test_recover_with_a_lying_share_holder_is_rejected(env: Env) -> None:
    run = committed(env)
    run.reveal(env.outsider, range(1, 9))
    run.mine_to_recovery()
    holders = [1, 2, 3, 4, 5]  # T + 1 = 5 shares
    for tamper in ({2: (1, 0)}, {5: (0, 7)}, {1: (R - 1, R - 1)}):
        bad = run.recovered_opening(0, holders, tamper=tamper)
        with reverts("BeaconRecoveryMismatch", run.participants[0]):
            env.beacon.recover(env.outsider, run.round_id, run.participants, run.commitments, [bad])
    # Opened as a reveal would be, the honest reconstruction from other holders goes through.
    good = run.recovered_opening(0, [8, 7, 6, 5, 4])
    assert (good.secret, good.salt) == (run.contributions[0].secret, run.contributions[0].salt)
    env.beacon.recover(env.outsider, run.round_id, run.participants, run.commitments, [good])
    assert env.beacon.get_round(run.round_id).output == run.expected_output


def test_recovery_keeps_the_output_and_slashes_the_withholders(env: Env) -> None:
    """T = 4 of the 9 participants withhold their reveals. The 5 revealers' shares reconstruct
    every withheld contribution, the output is exactly that of the sum of ALL committed secrets
    (withholding cannot steer it), and each withholder loses beaconSlashWei of stake and is
    made Exiting; the pot (the request fee + the slashes) goes to the revealers."""
    req, rid = open_round(env)
    accounts = pick_participants(env.beacon, rid, env.nodes)
    withheld = [accounts[i].address for i in (1, 4, 6, 7)]
    balance = env.balance(env.market.address)
    block = env.w3.eth.block_number
    run = run_round(env.beacon, rid, accounts, env.outsider, withhold=withheld)
    rnd = env.beacon.get_round(rid)
    assert rnd.status is RoundStatus.FINALIZED
    assert rnd.output == run.expected_output
    assert env.beacon.randomness_of(req) == value_of(run.expected_output, req)
    recovered_mask = sum(1 << run.index_of(a) for a in withheld)
    assert rnd.recovered_mask == recovered_mask and rnd.revealed_mask == 0x1FF ^ recovered_mask
    [recover_tx] = run.recover_txs
    assert recover_tx.block_number == run.reveal_deadline() + 2  # see mine_past
    opened = env.beacon.events("ContributionOpened", recover_tx.block_number)
    assert [(e["participant"], e["recovered"]) for e in opened] == [(a, True) for a in withheld]

    ts = int(env.w3.eth.get_block(recover_tx.block_number)["timestamp"])
    slashed = env.beacon.events("NodeSlashed", block + 1)
    assert [(e["node"], e["amount_wei"], e["exit_at"]) for e in slashed] == [
        (a, SLASH, ts + EXIT_DELAY_S) for a in withheld
    ]
    for a in withheld:
        node = env.market.get_node(a)
        assert (node.stake_wei, node.status, node.rewards_wei) == (
            MIN_STAKE_WEI - SLASH,
            NodeStatus.EXITING,
            0,
        )
        assert env.beacon.node_blocks(a)[1] == recover_tx.block_number
    pot = FEE + 4 * SLASH
    [fin] = env.beacon.events("RoundFinalized", recover_tx.block_number)
    assert fin["reward_per_revealer_wei"] == pot // 5
    revealers = [p for p in run.participants if p not in withheld]
    rewards = [env.market.get_node(p).rewards_wei for p in revealers]
    assert rewards == [pot // 5 + pot % 5] + [pot // 5] * 4
    assert env.beacon.get_round(rid).pot_wei == 0
    assert env.beacon.active_node_count() == 10
    assert env.balance(env.market.address) == balance  # the fee and slashes became rewards


def test_recover_by_anyone_in_several_transactions(env: Env) -> None:
    run = committed(env)
    run.reveal(env.outsider, [0, 2, 3, 4, 6, 8])
    run.mine_to_recovery()
    run.recover(env.unregistered[5], [5])  # an outsider holding 5 shares
    rnd = env.beacon.get_round(run.round_id)
    assert rnd.status is RoundStatus.COMMITTED and rnd.settled_count == 7
    with reverts("BeaconNothingToOpen", run.round_id):
        run.recover(env.outsider, [5])
    run.recover(env.outsider, [7, 1], holders=[0, 2, 3, 4, 6])
    rnd = env.beacon.get_round(run.round_id)
    assert rnd.recovered_mask == 0b10100010 and rnd.output == run.expected_output


# ============================================================================ failRound


def test_fail_round_not_failable(env: Env) -> None:
    with reverts("BeaconUnknownRound", 99):
        env.beacon.fail_round(env.outsider, 99)
    fns = env.market.contract.functions
    _, rid = open_round(env)
    mine_until(env.w3, env.beacon.get_round(rid).open_block + PHASE - 1)
    with reverts("BeaconRoundNotFailable", rid):  # in the commit deadline block
        next_block_call(env, fns.failRound(rid, [], []))
    with reverts("BeaconRoundNotFailable", rid):
        env.beacon.fail_round(env.outsider, rid)
    run = committed(env, rid)  # in the deadline block
    run.reveal(env.outsider, range(4))
    fail = fns.failRound(rid, run.participants, run.commitments)
    mine_until(env.w3, run.recovery_deadline() - 1)
    with reverts("BeaconRoundNotFailable", rid):  # in the recovery deadline block
        next_block_call(env, fail)
    with reverts("BeaconRoundNotFailable", rid):
        env.beacon.fail_round(env.outsider, rid, run.participants, run.commitments)
    mine(env.w3)
    next_block_call(env, fail)  # one block later it can fail
    done = committed(env, open_round(env)[1])
    done.reveal(env.outsider)
    with reverts("BeaconRoundNotFailable", done.round_id):
        env.beacon.fail_round(env.outsider, done.round_id, done.participants, done.commitments)


def test_fail_round_without_commit_moves_requests_and_jobs_to_a_successor(env: Env) -> None:
    req, rid = open_round(env)
    job_id, _ = env.post()
    assert env.market.get_job(job_id).seed_round == rid
    with reverts("JobSeedNotReady", rid):
        env.beacon.assign_committee(env.outsider, job_id)
    mine_past(env.w3, env.beacon.get_round(rid).open_block + PHASE)
    tx = env.beacon.fail_round(env.outsider, rid)
    [failed] = env.beacon.events("RoundFailed", tx.block_number)
    assert (failed["round_id"], failed["successor"], failed["missing_mask"]) == (rid, rid + 1, 0)
    [opened] = env.beacon.events("RoundOpened", tx.block_number)
    assert opened["round_id"] == rid + 1 and opened["open_block"] == tx.block_number
    old, new = env.beacon.get_round(rid), env.beacon.get_round(rid + 1)
    assert (old.status, old.successor, old.pot_wei) == (RoundStatus.FAILED, rid + 1, 0)
    assert (new.status, new.pot_wei) == (RoundStatus.OPEN, FEE)
    assert env.beacon.resolve_round(rid) == rid + 1 and env.beacon.pending_round() == rid + 1
    with reverts("BeaconRoundNotFinal", rid + 1):
        env.beacon.randomness_of(req)
    with reverts("BeaconRoundNotFailable", rid):
        env.beacon.fail_round(env.outsider, rid)
    with reverts("BeaconCommitPhaseClosed", rid):
        plan(env, rid).commit(env.outsider)
    with reverts("JobSeedNotReady", rid + 1):
        env.beacon.assign_committee(env.outsider, job_id)

    run = seed_job(env.beacon, job_id, env.nodes, env.outsider)
    assert run is not None and run.round_id == rid + 1
    assert env.beacon.randomness_of(req) == value_of(run.expected_output, req)
    committee, atx = env.beacon.assign_committee(env.outsider, job_id)
    [ev] = env.beacon.events("CommitteeAssigned", atx.block_number)
    assert ev["round_id"] == rid + 1 and ev["committee"] == committee
    assert committee == expected_committee(env, job_id)
    ftx = env.beacon.fulfill(env.outsider, req)
    assert fulfilled_event(env, ftx)["roundId"] == rid + 1


def test_fail_round_after_recovery_slashes_every_non_opener(env: Env) -> None:
    """5 of 9 participants withhold: the 4 revealers hold only 4 < T + 1 shares of each missing
    contribution, so nothing can be recovered. After the recovery deadline the round fails
    visibly, the 5 are slashed (and Exiting) and - because the round's output was fixed at its
    commit and may be known to the withholders - it is NOT re-drawn: no successor, no value for
    its request, no committee for its job (refunded at the deadline); the pot goes to the next
    round opened."""
    req, rid = open_round(env)
    job_id, _ = env.post(9)
    accounts = pick_participants(env.beacon, rid, env.nodes)
    withheld = [accounts[i].address for i in (0, 2, 3, 5, 8)]
    with pytest.raises(ValueError, match="too few shares"):  # the driver refuses (sends nothing)
        run_round(env.beacon, rid, accounts, env.outsider, withhold=withheld)
    run = run_round(env.beacon, rid, accounts, env.outsider, withhold=withheld, recover=False)
    run_parts, run_comms = run.participants, run.commitments
    rnd = env.beacon.get_round(rid)
    assert rnd.status is RoundStatus.COMMITTED and rnd.settled_count == 4
    mine_past(env.w3, rnd.commit_block + 2 * PHASE)
    with reverts("BeaconParticipantsMismatch"):
        env.beacon.fail_round(env.outsider, rid, run_parts[1:], run_comms[1:])
    with reverts("BeaconParticipantsMismatch"):
        env.beacon.fail_round(env.outsider, rid)  # a committed round needs its Q
    block = env.w3.eth.block_number
    tx = env.beacon.fail_round(env.outsider, rid, run_parts, run_comms)
    missing = sum(1 << run_parts.index(a) for a in withheld)
    [failed] = env.beacon.events("RoundFailed", tx.block_number)
    assert (failed["successor"], failed["missing_mask"]) == (0, missing)
    assert env.beacon.events("RoundOpened", tx.block_number) == []  # no re-draw
    slashed = env.beacon.events("NodeSlashed", block + 1)
    assert [(e["node"], e["amount_wei"]) for e in slashed] == [(a, SLASH) for a in withheld]
    for a in withheld:
        assert env.market.get_node(a).status is NodeStatus.EXITING
        assert env.market.get_node(a).stake_wei == MIN_STAKE_WEI - SLASH
    for p in run_parts:
        assert env.market.get_node(p).rewards_wei == 0  # a failed round pays nobody
    old = env.beacon.get_round(rid)
    assert (old.status, old.successor, old.pot_wei) == (RoundStatus.FAILED, 0, 0)
    assert env.beacon.resolve_round(rid) == rid
    with reverts("BeaconRoundNotFinal", rid):
        env.beacon.randomness_of(req)
    with reverts("JobSeedRoundFailed", rid):
        env.beacon.assign_committee(env.outsider, job_id)
    with reverts("BeaconRoundNotFailable", rid):
        env.beacon.fail_round(env.outsider, rid, run_parts, run_comms)
    # the next round opened inherits the pot (fee + slashes); 9 Active nodes left: T = 2
    _, rid2 = open_round(env)
    succ = env.beacon.get_round(rid2)
    assert rid2 == rid + 1 and succ.pot_wei == FEE + 5 * SLASH + FEE and succ.threshold == 2
    assert env.beacon.active_node_count() == 9
    # the job is refunded once its deadline passes
    env.advance(601)
    assert env.market.reclaim_escrow(env.buyer, job_id).gas_used > 0


def test_fail_round_also_slashes_withholders_whose_contribution_was_recovered(env: Env) -> None:
    """Withholding is slashed whether the round then finalizes or fails: 5 of 9 withhold, 2 of
    them are recovered (by share holders) but 3 stay missing, so the round fails; all 5
    withholders are slashed, not only the 3 missing ones."""
    _, rid = open_round(env)
    run = committed(env, rid)
    withheld = [0, 2, 3, 5, 8]
    run.reveal(env.outsider, [1, 4, 6, 7])
    run.mine_to_recovery()
    run.recover(env.outsider, [2, 5], holders=[0, 1, 3, 4, 6])  # shares of 5 holders
    mine_past(env.w3, run.recovery_deadline())
    block = env.w3.eth.block_number
    tx = env.beacon.fail_round(env.outsider, rid, run.participants, run.commitments)
    [failed] = env.beacon.events("RoundFailed", tx.block_number)
    assert failed["missing_mask"] == (1 << 0) | (1 << 3) | (1 << 8)
    slashed = env.beacon.events("NodeSlashed", block + 1)
    assert [e["node"] for e in slashed] == [run.participants[i] for i in withheld]
    for i in withheld:
        node = env.market.get_node(run.participants[i])
        assert (node.status, node.stake_wei) == (NodeStatus.EXITING, MIN_STAKE_WEI - SLASH)
    assert env.beacon.get_round(rid).successor == 0
    _, rid2 = open_round(env)
    assert env.beacon.get_round(rid2).pot_wei == FEE + 5 * SLASH + FEE


# ============================================================================ fulfill


def test_fulfill_to_an_account_without_callback(env: Env) -> None:
    with reverts("BeaconUnknownRequest", 99):
        env.beacon.fulfill(env.outsider, 99)
    with reverts("BeaconUnknownRequest", 99):
        env.beacon.randomness_of(99)
    req, rid = open_round(env)
    with reverts("BeaconRoundNotFinal", rid):
        env.beacon.fulfill(env.outsider, req)
    run = committed(env, rid)
    with reverts("BeaconRoundNotFinal", rid):
        env.beacon.fulfill(env.outsider, req)
    run.reveal(env.outsider)
    tx = env.beacon.fulfill(env.outsider, req)
    ev = fulfilled_event(env, tx)
    value = value_of(run.expected_output, req)
    assert (ev["requestId"], ev["roundId"], ev["value"], ev["callbackOk"]) == (
        req,
        rid,
        value,
        True,
    )
    assert env.beacon.get_request(req).status is RequestStatus.FULFILLED
    assert env.beacon.randomness_of(req) == value
    with reverts("BeaconRequestNotPending", req):
        env.beacon.fulfill(env.outsider, req)


def test_dice_consumer_rolls(env: Env, artifacts: dict[str, CompiledContract]) -> None:
    dice = Consumer(env, artifacts["DiceConsumer"])
    assert dice.contract.functions.beacon().call() == env.market.address
    rolls = [dice.request_id(dice.send("roll", value=PAID)) for _ in range(3)]
    with reverts("BeaconFeeTooLow"):  # the fee alone does not pay for the callback's 60k gas
        dice.send("roll", value=FEE)
    rid = env.beacon.get_request(rolls[0]).round_id
    assert {env.beacon.get_request(r).round_id for r in rolls} == {rid}
    assert env.beacon.get_request(rolls[0]).callback_gas_limit == 60_000
    with reverts("RandomnessConsumerOnlyBeacon", env.buyer.address):
        dice.send("onRandomness", rolls[0], bytes(32))
    run = committed(env, rid)
    run.reveal(env.outsider)
    faces = []
    deliverer = env.unregistered[3]
    for req in rolls:
        before = env.market.get_node(deliverer.address).rewards_wei
        tx = env.beacon.fulfill(deliverer, req)
        # the deliverer is credited the callback gas the requester paid for (pull payment)
        base_fee = int(env.w3.eth.get_block(
            env.beacon.events("RandomnessRequested", 0)[req - 1]["block_number"])["baseFeePerGas"])
        assert (env.market.get_node(deliverer.address).rewards_wei - before
                == 60_000 * (2 * base_fee + 10**9))
        ev = fulfilled_event(env, tx)
        assert ev["callbackOk"] is True
        value = value_of(run.expected_output, req)
        face = int.from_bytes(value, "big") % 6 + 1
        assert dice.contract.functions.faceOf(req).call() == face
        assert 1 <= face <= 6
        [rolled] = dice.contract.events.Rolled().process_receipt(tx.receipt, errors=DISCARD)
        assert (rolled["args"]["requestId"], rolled["args"]["face"]) == (req, face)
        assert rolled["args"]["roller"] == env.buyer.address
        assert env.beacon.get_request(req).status is RequestStatus.FULFILLED
        faces.append(face)
    assert len({value_of(run.expected_output, r) for r in rolls}) == 3


def test_fulfill_needs_gas_for_the_whole_callback(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    """A submitter cannot starve the callback: below the gas the callback needs, fulfill
    reverts ExactGasCallInsufficientGas; at the smallest gas limit that goes through, the
    consumer still receives exactly its callbackGasLimit and succeeds."""
    dice = Consumer(env, artifacts["DiceConsumer"])
    req = dice.request_id(dice.send("roll", value=PAID))
    committed(env, env.beacon.get_request(req).round_id).reveal(env.outsider)
    with reverts("ExactGasCallInsufficientGas") as e:
        env.beacon.fulfill(env.outsider, req, gas_limit=90_000)
    assert e.value.error_args[1] == 60_000 + 60_000 // 63 + 10_000

    fn = env.market.contract.functions.fulfill(req)

    def passes(gas: int) -> bool:
        try:
            fn.call({"from": env.outsider.address, "gas": gas})
        except Exception:
            return False
        return True

    lo, hi = 21_000, 300_000
    assert passes(hi) and not passes(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    tx = env.beacon.fulfill(env.outsider, req, gas_limit=hi)
    assert fulfilled_event(env, tx)["callbackOk"] is True
    assert dice.contract.functions.faceOf(req).call() in range(1, 7)
    assert callback_gas(env.w3, tx.hash, dice.address) == [60_000]


@pytest.mark.parametrize("name", ["RevertingConsumer", "GasHogConsumer"])
def test_failing_callbacks_are_recorded_not_fatal(
    env: Env, artifacts: dict[str, CompiledContract], name: str
) -> None:
    limit = 200_000
    consumer = Consumer(env, artifacts[name])
    req = consumer.request_id(consumer.send("request", limit, value=FEE + limit * 10**10))
    run = committed(env, env.beacon.get_request(req).round_id)
    run.reveal(env.outsider)
    tx = env.beacon.fulfill(env.outsider, req)
    ev = fulfilled_event(env, tx)
    value = value_of(run.expected_output, req)
    assert (ev["value"], ev["callbackOk"]) == (value, False)
    assert env.beacon.get_request(req).status is RequestStatus.CALLBACK_FAILED
    assert env.beacon.randomness_of(req) == value  # still readable
    assert callback_gas(env.w3, tx.hash, consumer.address) == [limit]
    # Bounded: the callback's limit plus ~50k of fulfill itself (the 10 kB revert payload of
    # RevertingConsumer is not copied back).
    # bounded: the callback gas plus the fixed cost of a fulfil (incl. crediting the deliverer)
    assert tx.gas_used < limit + 70_000, tx.gas_used
    with reverts("BeaconRequestNotPending", req):
        env.beacon.fulfill(env.outsider, req)


# ============================================================================ assignCommittee


def test_assign_committee_failures(env: Env) -> None:
    with reverts("JobNotOpen", 99):
        env.beacon.assign_committee(env.outsider, 99)
    job_id, _ = env.post(timeout_s=600)
    rid = env.market.get_job(job_id).seed_round
    with reverts("JobSeedNotReady", rid):  # Open
        env.beacon.assign_committee(env.outsider, job_id)
    run = committed(env, rid)
    with reverts("JobSeedNotReady", rid):  # Committed
        env.beacon.assign_committee(env.outsider, job_id)
    run.reveal(env.outsider)
    expected = env.beacon.simulate_assign(job_id)
    committee, _ = env.beacon.assign_committee(env.outsider, job_id)
    assert committee == expected == expected_committee(env, job_id)
    assert env.market.get_job(job_id).committee_hash == committee_hash(committee)
    with reverts("JobCommitteeAlreadyAssigned", job_id):
        env.beacon.assign_committee(env.outsider, job_id)
    # Too late, and jobs no longer Open.
    late, _ = env.post(timeout_s=30)
    refunded, _ = env.post(timeout_s=30)
    big, _ = env.post(len(env.nodes) + 1)
    seed_job(env.beacon, late, env.nodes, env.outsider)
    with reverts("JobTooFewEligibleNodes", len(env.nodes), len(env.nodes) + 1):
        env.beacon.assign_committee(env.outsider, big)
    env.advance(31)
    deadline = env.market.get_job(late).deadline
    with reverts("JobDeadlinePassed", deadline):
        env.beacon.assign_committee(env.outsider, late)
    env.market.reclaim_escrow(env.buyer, refunded)
    with reverts("JobNotOpen", refunded):
        env.beacon.assign_committee(env.outsider, refunded)


def test_assign_committee_matches_an_independent_implementation(env: Env) -> None:
    """With churn (an exit before the commit, a slashed withholder, a late registration), every
    recorded committee equals the draw recomputed in Python from the events."""
    env.market.request_exit(env.nodes[6])
    _, r1 = open_round(env)
    withholder = pick_participants(env.beacon, r1, env.nodes)[2]
    jobs1 = [env.post(size)[0] for size in (3, 13)]
    run_round(
        env.beacon,
        r1,
        pick_participants(env.beacon, r1, env.nodes),
        env.outsider,
        withhold=[withholder.address],
    )
    env.market.register(env.unregistered[0], KEY, "http://late", MIN_STAKE_WEI)
    jobs2 = [env.post(size)[0] for size in (3, 4, 7, 13)]
    seed_job(env.beacon, jobs2[0], [*env.nodes, env.unregistered[0]], env.outsider)
    for job_id in [*jobs1, *jobs2]:
        committee, _ = env.beacon.assign_committee(env.outsider, job_id)
        assert committee == expected_committee(env, job_id), job_id
    rnd1 = env.beacon.get_round(r1)
    rnd2 = env.beacon.get_round(env.market.get_job(jobs2[0]).seed_round)
    elig1 = eligible_at(env, rnd1.commit_block)
    elig2 = eligible_at(env, rnd2.commit_block)
    # Slashed at round 1's finalization, after its commit block: eligible for round 1 only.
    assert withholder.address in elig1 and withholder.address not in elig2
    assert env.nodes[6].address not in elig1 + elig2
    assert env.unregistered[0].address in elig2 and env.unregistered[0].address not in elig1
    assert len(elig1) == len(elig2) == 13


def test_draw_committee_view_matches_python(env: Env) -> None:
    for m, n in ((3, 3), (5, 3), (8, 3), (14, 5), (32, 32), (40, 17), (10, 0)):
        addresses = {to_checksum_address(secrets.token_bytes(20)) for _ in range(m)}
        cands = sorted(addresses, key=lambda a: int(a, 16))
        seed = secrets.token_bytes(32)
        assert env.beacon.draw_committee(cands, n, seed) == draw(cands, n, seed)
    with reverts("JobTooFewEligibleNodes", 2, 3):
        env.beacon.draw_committee(cands[:2], 3, seed)


def test_eligibility_is_fixed_at_the_commit_block(env: Env) -> None:
    """A node registered after the round's commit block is never drawn for that round's jobs;
    a node that requests its exit after the commit block still is (it serves the job)."""
    all_of_them, _ = env.post(len(env.nodes))
    one_more, _ = env.post(len(env.nodes) + 1)
    run = seed_job(env.beacon, all_of_them, env.nodes, env.outsider)
    assert run is not None
    commit_block = run.commit_block()
    newcomer, leaver = env.unregistered[0], env.nodes[2]
    env.market.register(newcomer, KEY, "http://new", MIN_STAKE_WEI)
    env.market.request_exit(leaver)
    committee, _ = env.beacon.assign_committee(env.outsider, all_of_them)
    assert committee == [n.address for n in env.nodes]  # leaver in, newcomer out
    with reverts("JobTooFewEligibleNodes", len(env.nodes), len(env.nodes) + 1):
        env.beacon.assign_committee(env.outsider, one_more)
    assert eligible_at(env, commit_block) == committee
    # The next round sees the newcomer and not the leaver.
    nxt, committee2 = post_job_with_committee(
        env.market,
        env.buyer,
        [*env.nodes, newcomer],
        env.outsider,
        dataset_id=env.dataset,
        query="q",
        committee_size=len(env.nodes),
        threshold=1,
        min_providers=1,
        timeout_s=600,
        payment_wei=MIN_PAYMENT_WEI,
    )
    assert env.market.get_job(nxt).seed_round == run.round_id + 1
    assert newcomer.address in committee2 and leaver.address not in committee2


def test_node_blocks_eligible_at_and_active_count(env: Env) -> None:
    b, f = env.beacon, env.market.contract.functions
    newcomer = env.unregistered[0]
    assert b.node_blocks(newcomer.address) == (0, 0)
    assert not f.eligibleAt(newcomer.address, 10**6).call()
    assert b.active_node_count() == len(env.nodes)
    reg = env.market.register(newcomer, KEY, "http://new", MIN_STAKE_WEI).block_number
    assert b.node_blocks(newcomer.address) == (reg, 0)
    assert b.active_node_count() == len(env.nodes) + 1
    mine(env.w3, 3)
    ex = env.market.request_exit(newcomer).block_number
    assert b.node_blocks(newcomer.address) == (reg, ex)
    assert b.active_node_count() == len(env.nodes)
    cases = ((reg - 1, False), (reg, False), (reg + 1, True), (ex - 1, True), (ex, False))
    for snapshot, ok in cases:
        assert f.eligibleAt(newcomer.address, snapshot).call() is ok, snapshot
    assert node_history(env)[newcomer.address] == (reg, ex)
    env.advance(EXIT_DELAY_S)
    env.market.withdraw_stake(newcomer)
    assert b.node_blocks(newcomer.address) == (0, 0)
    assert not f.eligibleAt(newcomer.address, ex - 1).call()
    assert newcomer.address not in node_history(env)


# ============================================================================ gas


def _gas_of_round(env: Env, beacon: BeaconClient, accounts: Sequence[LocalAccount]) -> RoundRun:
    _, rid, _ = beacon.request_randomness(env.buyer)
    run = plan_round(beacon, rid, accounts)
    run.commit(env.outsider)
    run.reveal(env.outsider)
    assert beacon.get_round(rid).output == run.expected_output
    return run


def test_gas_of_commit_and_reveal(env: Env) -> None:
    """Prints commitRound / reveal gas for 5 and 16 participants (run with -s)."""
    beacon5, nodes7 = small_market(env, 7)  # T = 2: 5 participants
    for acct in env.unregistered[:2]:  # 16 Active nodes: T = 5, 16 participants
        env.market.register(acct, KEY, "http://x", MIN_STAKE_WEI)
    gas = {}
    for label, beacon, accounts in (
        ("5", beacon5, nodes7[:5]),
        ("16", env.beacon, [*env.nodes, *env.unregistered[:2]]),
    ):
        for attempt in ("first round", "later round"):
            run = _gas_of_round(env, beacon, accounts)
            assert run.commit_tx is not None
            commit, reveal = run.commit_tx.gas_used, run.reveal_txs[0].gas_used
            gas[(label, attempt)] = (commit, reveal)
            print(
                f"\n{label:>2} participants, {attempt}: commitRound {commit:,} gas, "
                f"reveal {reveal:,} gas, total {commit + reveal:,}"
            )
    for attempt in ("first round", "later round"):
        commit, reveal = gas[("5", attempt)]
        assert commit + reveal < COMMIT_PLUS_REVEAL_GAS_MAX_5, (attempt, commit, reveal)


def test_pot_of_a_round_nobody_revealed_goes_to_the_next_round(env: Env) -> None:
    """Every participant withholds; all contributions are recovered from shares, all are slashed,
    and with no revealer to pay, the pot (fee + slashes) is carried to the next round opened
    instead of being locked in the contract."""
    run = committed(env)
    n = len(run.participants)
    run.mine_to_recovery()
    run.recover(env.outsider, range(n))
    rnd = env.beacon.get_round(run.round_id)
    assert rnd.status is RoundStatus.FINALIZED and rnd.output == run.expected_output
    assert rnd.revealed_mask == 0 and rnd.pot_wei == 0
    [fin] = env.beacon.events("RoundFinalized", run.recover_txs[0].block_number)
    assert fin["reward_per_revealer_wei"] == 0
    _, next_round = open_round(env)
    assert next_round == run.round_id + 1
    assert env.beacon.get_round(next_round).pot_wei == FEE + n * SLASH + FEE
