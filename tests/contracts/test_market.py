"""MPCMarket on a real anvil: every external function, its success path and its failure paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak

from offchain.chain.market import (
    ContractRevert,
    JobStatus,
    NodeStatus,
    decode_revert,
    deploy_market,
)
from offchain.devnet.anvil import Anvil, AnvilError
from offchain.devnet.compile import CompilerNotInstalledError, compile_contracts
from offchain.devnet.rpc import dev_accounts, wait_for_rpc
from offchain.encoding import eip712
from tests.helpers.beacon_driver import mine_until, seed_job
from tests.helpers.env import (
    EXIT_DELAY_S,
    MAX_TIMEOUT_S,
    MIN_PAYMENT_WEI,
    MIN_STAKE_WEI,
    Env,
    by_address,
    reverts,
)

AGGS = [5, -7, 123_456_789]
KEY = b"\x42" * 32

# Gas regression bounds (contract properties at the pinned compiler/hardfork, not timings).
POST_JOB_GAS_MAX = 150_000  # N=3, joining the Open beacon round
POST_JOB_OPENING_ROUND_GAS_MAX = 175_000  # the first post of a deployment, opening a round
FINALIZE_GAS_MAX = 150_000  # issue 2 target, with 3 committee signatures and 5 providers


def high_s(sig: eip712.Sig) -> eip712.Sig:
    """The malleable twin (n - s, flipped v) of a valid signature: same signer, high s."""
    s = eip712.SECP256K1_N - int.from_bytes(sig.s, "big")
    return eip712.Sig(r=sig.r, s=s.to_bytes(32, "big"), v=55 - sig.v)


# ============================================================================ deployment


def test_constructor_rejects_exit_delay_not_above_max_timeout(env: Env) -> None:
    with reverts("MarketInvalidConfiguration", 100, 100):
        deploy_market(
            env.w3,
            env.buyer,
            min_stake_wei=1,
            exit_delay_s=100,
            min_payment_wei=1,
            max_timeout_s=100,
            abi=env.market.abi,
            bytecode=_bytecode(),
        )


def _bytecode() -> str:
    return compile_contracts()["MPCMarket"].bytecode


def test_config_and_domain(env: Env) -> None:
    cfg = env.market.config()
    assert (cfg.min_stake_wei, cfg.exit_delay_s, cfg.min_payment_wei, cfg.max_timeout_s) == (
        MIN_STAKE_WEI,
        EXIT_DELAY_S,
        MIN_PAYMENT_WEI,
        MAX_TIMEOUT_S,
    )
    assert (cfg.phase_blocks, cfg.randomness_fee_wei, cfg.beacon_slash_wei) == (20, 10**15, 10**17)
    assert env.market.domain() == eip712.market_domain(env.w3.eth.chain_id, env.market.address)


# ============================================================================ register


def test_register_success(env: Env) -> None:
    newcomer = env.unregistered[0]
    count = env.market.node_count()
    block = env.w3.eth.block_number
    tx = env.market.register(newcomer, KEY, "https://node.example:8443", MIN_STAKE_WEI + 5)
    node = env.market.get_node(newcomer.address)
    assert node.status is NodeStatus.ACTIVE
    assert (node.stake_wei, node.rewards_wei, node.exit_at) == (MIN_STAKE_WEI + 5, 0, 0)
    assert (node.enc_key, node.endpoint) == (KEY, "https://node.example:8443")
    assert env.market.is_active(newcomer.address)
    assert env.market.node_count() == count + 1
    assert env.market.node_at(count) == newcomer.address
    [ev] = env.market.node_registered_events(block + 1)
    assert ev["node"] == newcomer.address and ev["stake_wei"] == MIN_STAKE_WEI + 5
    assert ev["enc_key"] == KEY and ev["endpoint"] == "https://node.example:8443"
    assert ev["tx_hash"] == tx.hash


def test_register_stake_too_low(env: Env) -> None:
    with reverts("RegistryStakeTooLow", MIN_STAKE_WEI - 1, MIN_STAKE_WEI) as e:
        env.market.register(env.unregistered[0], KEY, "http://x", MIN_STAKE_WEI - 1)
    assert str(e.value) == f"RegistryStakeTooLow({MIN_STAKE_WEI - 1}, {MIN_STAKE_WEI})"


def test_register_zero_key(env: Env) -> None:
    with reverts("RegistryInvalidEncryptionKey"):
        env.market.register(env.unregistered[0], bytes(32), "http://x", MIN_STAKE_WEI)


@pytest.mark.parametrize("endpoint", ["", "h" * 257, "http://a b", "http://\u00e9", "a\nb"])
def test_register_bad_endpoint(env: Env, endpoint: str) -> None:
    with reverts("RegistryInvalidEndpoint"):
        env.market.register(env.unregistered[0], KEY, endpoint, MIN_STAKE_WEI)


def test_register_endpoint_of_256_bytes_is_accepted(env: Env) -> None:
    env.market.register(env.unregistered[0], KEY, "h" * 256, MIN_STAKE_WEI)
    assert env.market.get_node(env.unregistered[0].address).endpoint == "h" * 256


def test_update_endpoint(env: Env) -> None:
    node = env.nodes[0]
    block = env.w3.eth.block_number
    env.market.update_endpoint(node, "http://127.0.0.1:4242")
    assert env.market.get_node(node.address).endpoint == "http://127.0.0.1:4242"
    logs = env.market.contract.events.NodeEndpointUpdated().get_logs(from_block=block + 1)
    assert [(lg["args"]["node"], lg["args"]["endpoint"]) for lg in logs] == [
        (node.address, "http://127.0.0.1:4242")
    ]
    env.market.request_exit(node)  # an Exiting node may still move
    env.market.update_endpoint(node, "http://127.0.0.1:4343")
    assert env.market.get_node(node.address).endpoint == "http://127.0.0.1:4343"


@pytest.mark.parametrize(
    "endpoint,ok",
    [
        ("!", True),
        ("~", True),
        ("h" * 255 + "~", True),
        ("a\x7fb", False),
        ("a\x20b", False),
        ("\x00", False),
    ],
)
def test_endpoint_printable_ascii_boundaries(env: Env, endpoint: str, ok: bool) -> None:
    if ok:
        env.market.register(env.unregistered[0], KEY, endpoint, MIN_STAKE_WEI)
        assert env.market.get_node(env.unregistered[0].address).endpoint == endpoint
    else:
        with reverts("RegistryInvalidEndpoint"):
            env.market.register(env.unregistered[0], KEY, endpoint, MIN_STAKE_WEI)


def test_update_endpoint_failures(env: Env) -> None:
    with reverts("RegistryNotRegistered", env.unregistered[0].address):
        env.market.update_endpoint(env.unregistered[0], "http://x")
    for bad in ("", "h" * 257, "http://\u00ff"):
        with reverts("RegistryInvalidEndpoint"):
            env.market.update_endpoint(env.nodes[0], bad)


def test_register_duplicate(env: Env) -> None:
    node = env.nodes[0]
    with reverts("RegistryAlreadyRegistered", node.address) as e:
        env.market.register(node, KEY, "http://x", MIN_STAKE_WEI)
    assert str(e.value) == f"RegistryAlreadyRegistered({node.address})"
    env.market.request_exit(node)  # an Exiting node is still registered
    with reverts("RegistryAlreadyRegistered", node.address):
        env.market.register(node, KEY, "http://x", MIN_STAKE_WEI)


def test_node_at_out_of_bounds(env: Env) -> None:
    n = env.market.node_count()
    with reverts("RegistryIndexOutOfBounds", n, n):
        env.market.node_at(n)


def test_unknown_node_is_all_zero(env: Env) -> None:
    node = env.market.get_node(env.unregistered[0].address)
    assert node.status is NodeStatus.NONE and node.stake_wei == 0 and node.endpoint == ""
    assert not env.market.is_active(env.unregistered[0].address)


# ============================================================================ exit


def test_request_exit_not_registered(env: Env) -> None:
    with reverts("RegistryNotRegistered", env.outsider.address):
        env.market.request_exit(env.outsider)


def test_request_exit_twice(env: Env) -> None:
    node = env.nodes[3]
    tx = env.market.request_exit(node)
    info = env.market.get_node(node.address)
    assert info.status is NodeStatus.EXITING
    block_ts = int(env.w3.eth.get_block(tx.block_number)["timestamp"])
    assert info.exit_at == block_ts + EXIT_DELAY_S
    assert not env.market.is_active(node.address)
    logs = env.market.contract.events.NodeExitRequested().process_receipt(tx.receipt)
    assert logs[0]["args"]["exitAt"] == info.exit_at
    with reverts("RegistryNotActive", node.address):
        env.market.request_exit(node)


def test_withdraw_stake_not_registered(env: Env) -> None:
    with reverts("RegistryNotRegistered", env.outsider.address):
        env.market.withdraw_stake(env.outsider)


def test_withdraw_stake_without_exit_request(env: Env) -> None:
    with reverts("RegistryExitNotReady", 0):
        env.market.withdraw_stake(env.nodes[0])


def test_withdraw_stake_too_early(env: Env) -> None:
    node = env.nodes[3]
    env.market.request_exit(node)
    exit_at = env.market.get_node(node.address).exit_at
    env.advance(EXIT_DELAY_S - 100)
    with reverts("RegistryExitNotReady", exit_at):
        env.market.withdraw_stake(node)


def test_withdraw_stake_pays_stake_and_rewards_and_removes(env: Env) -> None:
    # The first member of a job's drawn committee earns rewards on it, then leaves.
    job_id, committee = env.post_assigned(payment_wei=2 * MIN_PAYMENT_WEI + 1)
    inputs = env.inputs(job_id)
    env.market.finalize_job(
        env.outsider,
        job_id,
        AGGS,
        [m.address for m in committee],
        inputs,
        env.signatures(job_id, committee[:2], AGGS, inputs),
    )
    node = committee[0]
    rewards = env.market.get_node(node.address).rewards_wei
    assert rewards == MIN_PAYMENT_WEI + 1  # first signer: share + remainder
    before_list = [env.market.node_at(i) for i in range(env.market.node_count())]
    env.market.request_exit(node)
    env.advance(EXIT_DELAY_S + 1)
    balance = env.balance(node)
    tx = env.market.withdraw_stake(node)
    assert env.balance(node) == balance + MIN_STAKE_WEI + rewards - env.fee(tx)
    logs = env.market.contract.events.NodeExited().process_receipt(tx.receipt)
    assert (logs[0]["args"]["stakeWei"], logs[0]["args"]["rewardsWei"]) == (MIN_STAKE_WEI, rewards)
    info = env.market.get_node(node.address)
    assert info.status is NodeStatus.NONE and info.stake_wei == 0 and info.rewards_wei == 0
    after_list = [env.market.node_at(i) for i in range(env.market.node_count())]
    assert len(after_list) == len(before_list) - 1
    assert set(after_list) == set(before_list) - {node.address}
    if before_list[-1] != node.address:
        assert after_list[before_list.index(node.address)] == before_list[-1]  # swap-and-pop
    with reverts("RegistryNotRegistered", node.address):
        env.market.withdraw_stake(node)
    # It may register again.
    env.market.register(node, KEY, "http://again", MIN_STAKE_WEI)
    assert env.market.is_active(node.address)
    assert env.market.node_at(env.market.node_count() - 1) == node.address


def test_withdraw_stake_of_last_listed_node(env: Env) -> None:
    last = env.market.node_at(env.market.node_count() - 1)
    node = next(n for n in env.nodes if n.address == last)
    env.market.request_exit(node)
    env.advance(EXIT_DELAY_S)
    env.market.withdraw_stake(node)
    assert last not in [env.market.node_at(i) for i in range(env.market.node_count())]


# ============================================================================ rewards


def test_withdraw_rewards_nothing(env: Env) -> None:
    with reverts("RegistryNothingToWithdraw"):
        env.market.withdraw_rewards(env.nodes[0])
    with reverts("RegistryNothingToWithdraw"):
        env.market.withdraw_rewards(env.outsider)


# ============================================================================ postJob


def test_post_job_success(env: Env) -> None:
    block = env.w3.eth.block_number
    first_id, open_tx = env.post()  # opens beacon round 1
    job_id, tx = env.post(3, threshold=1, min_providers=4, timeout_s=900, payment_wei=10**16)
    assert (first_id, job_id) == (1, 2) and env.market.job_count() == 2
    assert open_tx.gas_used <= POST_JOB_OPENING_ROUND_GAS_MAX, open_tx.gas_used
    assert tx.gas_used <= POST_JOB_GAS_MAX, tx.gas_used  # joins the Open round
    ts = int(env.w3.eth.get_block(tx.block_number)["timestamp"])
    [opened] = env.beacon.events("RoundOpened", block + 1)
    assert (opened["round_id"], opened["open_block"]) == (1, open_tx.block_number)
    assert opened["active_nodes"] == len(env.nodes) and opened["threshold"] == 4
    ev = env.market.job_posted_events(block + 1)[1]
    assert ev == {
        "block_number": tx.block_number,
        "tx_hash": tx.hash,
        "log_index": 0,
        "job_id": job_id,
        "buyer": env.buyer.address,
        "dataset_id": env.dataset,
        "query": env.query,
        "committee_size": 3,
        "seed_round": 1,
        "threshold": 1,
        "min_providers": 4,
        "deadline": ts + 900,
        "escrow_wei": 10**16,
    }
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.OPEN
    assert (job.buyer, job.escrow_wei, job.deadline) == (env.buyer.address, 10**16, ts + 900)
    assert (job.committee_size, job.threshold, job.min_providers) == (3, 1, 4)
    assert job.seed_round == 1
    assert job.spec_hash == eip712.spec_hash(env.dataset, env.query)
    assert job.committee_hash == bytes(32)  # drawn later by assignCommittee
    assert (job.provider_count, job.signer_mask) == (0, 0)
    assert job.result_hash == bytes(32)
    assert env.balance(env.market.address) >= 10**16

    committee = env.assign(job_id)
    assert env.market.get_job(job_id).committee_hash == eip712.committee_hash(
        [m.address for m in committee]
    )


def test_post_job_payment_too_low(env: Env) -> None:
    with reverts("JobPaymentTooLow", MIN_PAYMENT_WEI - 1, MIN_PAYMENT_WEI):
        env.post(payment_wei=MIN_PAYMENT_WEI - 1)


@pytest.mark.parametrize("query", ["", "q" * 257])
def test_post_job_invalid_query(env: Env, query: str) -> None:
    with reverts("JobInvalidQuery"):
        env.post(query=query)


@pytest.mark.parametrize("size", [0, 1, 2, 33, 255])
def test_post_job_invalid_committee_size(env: Env, size: int) -> None:
    with reverts("JobInvalidCommitteeSize", size):
        env.post(size, threshold=1, min_providers=1, timeout_s=60, payment_wei=MIN_PAYMENT_WEI)


@pytest.mark.parametrize("threshold", [0, 2, 3, 4])
def test_post_job_invalid_threshold(env: Env, threshold: int) -> None:
    """1 <= t and n >= 2t+1: with n=3 only t=1 is allowed (t=2 would let two corrupt members
    steer what the honest one reconstructs)."""
    with reverts("JobInvalidThreshold", threshold, 3):
        env.post(threshold=threshold)


def test_post_job_threshold_two_needs_five_members(env: Env) -> None:
    with reverts("JobInvalidThreshold", 2, 4):
        env.post(4, threshold=2)
    job_id, _ = env.post(5, threshold=2)
    assert env.market.get_job(job_id).threshold == 2


def test_post_job_too_few_active_nodes(env: Env) -> None:
    """A job needs a beacon round, and a round needs 3 Active nodes: on a market with 2 the
    post reverts (nothing is stored); with a third node it goes through."""
    market = env.fresh_market()
    for i, node in enumerate(env.nodes[:2]):
        market.register(node, KEY, f"http://n{i}", MIN_STAKE_WEI)
    post = {
        "dataset_id": env.dataset,
        "query": "q",
        "committee_size": 3,
        "threshold": 1,
        "min_providers": 1,
        "timeout_s": 60,
        "payment_wei": MIN_PAYMENT_WEI,
    }
    with reverts("BeaconTooFewActiveNodes", 2, 3):
        market.post_job(env.buyer, **post)  # type: ignore[arg-type]
    assert market.job_count() == 0
    market.register(env.nodes[2], KEY, "http://n2", MIN_STAKE_WEI)
    job_id, _ = market.post_job(env.buyer, **post)  # type: ignore[arg-type]
    assert market.get_job(job_id).seed_round == 1


def test_post_job_joins_the_open_round_until_its_commit_deadline(env: Env) -> None:
    """Jobs posted while a round is Open share it; after its commit (or commit deadline) a new
    post opens the next round."""
    j1, _ = env.post()
    j2, _ = env.post()
    assert env.market.get_job(j1).seed_round == env.market.get_job(j2).seed_round == 1
    env.assign(j1)  # commits and finalizes round 1
    assert env.assign(j2)  # the same round seeds j2: no new round needed
    assert env.beacon.round_count() == 1
    j3, _ = env.post()
    assert env.market.get_job(j3).seed_round == 2
    open_block = env.beacon.get_round(2).open_block
    mine_until(env.w3, open_block + env.beacon.phase_blocks())  # next tx: past the deadline
    j4, _ = env.post()
    assert env.market.get_job(j4).seed_round == 3
    assert env.beacon.pending_round() == 3


def test_post_job_invalid_min_providers(env: Env) -> None:
    with reverts("JobInvalidMinProviders"):
        env.post(min_providers=0)


@pytest.mark.parametrize("timeout_s", [0, MAX_TIMEOUT_S + 1])
def test_post_job_invalid_timeout(env: Env, timeout_s: int) -> None:
    with reverts("JobInvalidTimeout", timeout_s):
        env.post(timeout_s=timeout_s)


def test_max_committee_of_32_and_top_mask_bit(env: Env) -> None:
    extra = env.unregistered[: 32 - len(env.nodes)]
    for acct in extra:
        env.market.register(acct, KEY, "http://x", MIN_STAKE_WEI)
    pool = by_address([*env.nodes, *extra])
    assert len(pool) == 32
    job_id, committee = env.post_assigned(32, threshold=1, payment_wei=MIN_PAYMENT_WEI)
    assert committee == pool  # all 32 eligible nodes drawn
    assert env.market.get_job(job_id).committee_size == 32
    inputs = env.inputs(job_id)
    signers = [pool[0], pool[31]]
    env.market.finalize_job(
        env.outsider,
        job_id,
        AGGS,
        [m.address for m in pool],
        inputs,
        env.signatures(job_id, signers, AGGS, inputs),
    )
    assert env.market.get_job(job_id).signer_mask == (1 << 31) | 1


def test_committee_is_drawn_from_eligible_nodes_only(env: Env) -> None:
    """A node that requested its exit before the round's commit block is never drawn (it
    replaces the old 'member not Active at post' check); with one node short the draw
    reverts JobTooFewEligibleNodes."""
    exiting = env.nodes[5]
    env.market.request_exit(exiting)
    job_id, committee = env.post_assigned(len(env.nodes) - 1)
    assert exiting not in committee
    assert committee == [n for n in env.nodes if n is not exiting]
    too_big, _ = env.post(len(env.nodes))  # a new round: the first one is final
    with reverts("JobTooFewEligibleNodes", len(env.nodes) - 1, len(env.nodes)):
        env.assign(too_big)
    assert env.market.get_job(job_id).committee_size == len(env.nodes) - 1


# ============================================================================ finalizeJob


def _finalize_args(
    env: Env,
    job_id: int,
    committee: list,
    signers: list | None = None,
    providers: list | None = None,
) -> dict:
    inputs = env.inputs(job_id, providers)
    sigs = env.signatures(job_id, signers if signers is not None else committee[:2], AGGS, inputs)
    return {
        "job_id": job_id,
        "aggregates": list(AGGS),
        "committee": [m.address for m in committee],
        "inputs": inputs,
        "signatures": sigs,
    }


def _finalize(env: Env, **kw: object):  # type: ignore[no-untyped-def]
    return env.market.finalize_job(env.outsider, **kw)  # type: ignore[arg-type]


def _assigned(env: Env, committee_size: int = 3, **kw: object):  # type: ignore[no-untyped-def]
    """Post, draw the committee and build valid finalization arguments."""
    job_id, committee = env.post_assigned(committee_size, **kw)
    return job_id, committee, _finalize_args(env, job_id, committee)


def test_finalize_success(env: Env) -> None:
    payment = 3 * MIN_PAYMENT_WEI + 2  # not divisible by 3: remainder 2 goes to the first signer
    job_id, committee = env.post_assigned(payment_wei=payment)
    args = _finalize_args(env, job_id, committee, signers=committee)
    block = env.w3.eth.block_number
    tx = _finalize(env, **args)
    assert tx.gas_used <= FINALIZE_GAS_MAX, tx.gas_used

    inputs_hash = eip712.inputs_hash([(p, c) for p, c, _ in args["inputs"]])
    proof = eip712.proof_hash([(m.address, env.root_of(m)) for m in committee])
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.FINALIZED
    assert job.provider_count == 5 and job.signer_mask == 0b111
    assert job.result_hash == eip712.result_hash(AGGS)
    assert job.escrow_wei == payment

    [ev] = env.market.job_finalized_events(block + 1)
    share = payment // 3
    assert ev == {
        "block_number": tx.block_number,
        "tx_hash": tx.hash,
        "log_index": 0,
        "job_id": job_id,
        "result_hash": eip712.result_hash(AGGS),
        "proof_hash": proof,
        "inputs_hash": inputs_hash,
        "provider_count": 5,
        "signer_mask": 0b111,
        "reward_per_signer_wei": share,
        "aggregates": AGGS,
    }
    rewards = [env.market.get_node(m.address).rewards_wei for m in committee]
    assert rewards == [share + payment % 3, share, share]
    assert sum(rewards) == payment

    # Rewards are withdrawable exactly once.
    member = committee[1]
    balance = env.balance(member)
    wtx = env.market.withdraw_rewards(member)
    assert env.balance(member) == balance + share - env.fee(wtx)
    logs = env.market.contract.events.RewardsWithdrawn().process_receipt(wtx.receipt)
    assert logs[0]["args"]["amountWei"] == share
    assert env.market.get_node(member.address).rewards_wei == 0
    assert env.market.get_node(member.address).stake_wei == MIN_STAKE_WEI
    with reverts("RegistryNothingToWithdraw"):
        env.market.withdraw_rewards(member)


def test_finalize_signer_mask_and_minimum_signatures(env: Env) -> None:
    job_id, committee = env.post_assigned(4, threshold=1, payment_wei=MIN_PAYMENT_WEI)
    _finalize(env, **_finalize_args(env, job_id, committee, signers=[committee[1], committee[3]]))
    job = env.market.get_job(job_id)
    assert job.signer_mask == 0b1010
    assert env.market.get_node(committee[0].address).rewards_wei == 0
    assert env.market.get_node(committee[1].address).rewards_wei == MIN_PAYMENT_WEI // 2


def test_finalize_by_exiting_member_and_exit_after(env: Env) -> None:
    job_id, committee = env.post_assigned(payment_wei=MIN_PAYMENT_WEI)
    member = committee[0]
    env.market.request_exit(member)  # after the committee was drawn: still serves the job
    _finalize(env, **_finalize_args(env, job_id, committee))
    reward = env.market.get_node(member.address).rewards_wei
    assert reward > 0
    env.advance(EXIT_DELAY_S)
    balance = env.balance(member)
    tx = env.market.withdraw_stake(member)
    assert env.balance(member) == balance + MIN_STAKE_WEI + reward - env.fee(tx)


def test_finalize_unknown_job(env: Env) -> None:
    with reverts("JobNotOpen", 99):
        _finalize(env, **_finalize_args(env, 99, env.nodes[:3]))


def test_finalize_before_the_committee_is_assigned(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id, env.nodes[:3])
    with reverts("JobCommitteeNotAssigned", job_id):
        _finalize(env, **args)
    # Its round finalized but nobody called assignCommittee yet: still not assigned.
    seed_job(env.beacon, job_id, env.nodes, env.outsider)
    with reverts("JobCommitteeNotAssigned", job_id):
        _finalize(env, **args)
    committee = env.assign(job_id)
    _finalize(env, **_finalize_args(env, job_id, committee))
    assert env.market.get_job(job_id).status is JobStatus.FINALIZED


def test_finalize_too_few_signatures(env: Env) -> None:
    job_id, committee = env.post_assigned(5, threshold=2)
    args = _finalize_args(env, job_id, committee, signers=committee[:2])
    with reverts("JobTooFewSignatures", 2, 3):
        _finalize(env, **args)


def test_finalize_duplicate_signer(env: Env) -> None:
    job_id, committee = env.post_assigned()
    args = _finalize_args(env, job_id, committee, signers=committee[:1])
    args["signatures"] = args["signatures"] * 2
    with reverts("JobSignersNotSorted", 1):
        _finalize(env, **args)


def test_finalize_unsorted_signers(env: Env) -> None:
    _, _, args = _assigned(env)
    args["signatures"] = list(reversed(args["signatures"]))
    with reverts("JobSignersNotSorted", 1):
        _finalize(env, **args)


def test_finalize_unregistered_signer(env: Env) -> None:
    job_id, committee = env.post_assigned()
    stranger = env.unregistered[0]
    # Signatures are sorted by signer, so the stranger fails the membership check wherever it is.
    args = _finalize_args(env, job_id, committee, signers=[stranger, *committee[:1]])
    with reverts("JobNotCommitteeMember", stranger.address):
        _finalize(env, **args)


@pytest.mark.parametrize("above", [True, False])
def test_finalize_non_committee_signer(env: Env, above: bool) -> None:
    job_id, committee = env.post_assigned()
    outsider_node = env.non_member(committee, above)  # registered, not drawn
    args = _finalize_args(env, job_id, committee, signers=[*committee[:1], outsider_node])
    with reverts("JobNotCommitteeMember", outsider_node.address):
        _finalize(env, **args)


def test_finalize_signature_for_another_job(env: Env) -> None:
    job_id, _ = env.post()
    other_id, _ = env.post()  # same beacon round, its own committee
    committee = env.assign(job_id)
    env.assign(other_id)
    args = _finalize_args(env, job_id, committee)
    inputs = args["inputs"]
    wrong = env.signatures(other_id, committee[:1], AGGS, inputs)
    args["signatures"] = [wrong[0], args["signatures"][1]]
    # The signature recovers to an unrelated address, which is not a committee member.
    with reverts("JobNotCommitteeMember"):
        _finalize(env, **args)


def test_finalize_signature_over_other_aggregates(env: Env) -> None:
    _, _, args = _assigned(env)
    args["aggregates"] = [5, -7, 123_456_788]
    with pytest.raises(ContractRevert) as e:
        _finalize(env, **args)
    assert e.value.error_name in {"JobNotCommitteeMember", "JobSignersNotSorted"}


def test_finalize_high_s_and_bad_v_signatures(env: Env) -> None:
    _, _, args = _assigned(env)
    root, sig = args["signatures"][1]
    for bad in (high_s(sig), eip712.Sig(sig.r, sig.s, 29), eip712.Sig(sig.r, bytes(32), sig.v)):
        tampered = dict(args, signatures=[args["signatures"][0], (root, bad)])
        with reverts("JobInvalidSignature", 1):
            _finalize(env, **tampered)


def test_finalize_wrong_committee_list(env: Env) -> None:
    _, committee, args = _assigned(env)
    members = args["committee"]
    other = env.non_member(committee).address
    for wrong in (members[:2], [*members[:2], other], members[::-1], [*members, other]):
        with reverts("JobCommitteeMismatch"):
            _finalize(env, **dict(args, committee=wrong))


def test_finalize_too_few_providers(env: Env) -> None:
    job_id, committee = env.post_assigned(min_providers=3)
    args = _finalize_args(env, job_id, committee, providers=env.providers(2))
    with reverts("JobTooFewProviders", 2, 3):
        _finalize(env, **args)


def test_finalize_unsorted_or_duplicate_providers(env: Env) -> None:
    _, _, args = _assigned(env)
    inputs = args["inputs"]
    for bad, index in ((list(reversed(inputs)), 1), ([inputs[0], *inputs], 1)):
        with reverts("JobProvidersNotSorted", index):
            _finalize(env, **dict(args, inputs=bad))


def test_finalize_unregistered_provider(env: Env) -> None:
    job_id, committee = env.post_assigned()
    stranger = env.unregistered[0]
    args = _finalize_args(env, job_id, committee, providers=[*env.providers(3), stranger])
    with reverts("RegistryNotRegistered", stranger.address):
        _finalize(env, **args)


def test_finalize_bad_provider_signature(env: Env) -> None:
    job_id, _, args = _assigned(env)
    inputs = list(args["inputs"])
    provider, commitment, sig = inputs[2]
    forged = eip712.sign_input_commitment(Account.create(), env.market.domain(), job_id, commitment)
    for bad in (forged, high_s(sig), eip712.Sig(sig.r, sig.s, 26)):
        inputs[2] = (provider, commitment, bad)
        with reverts("JobInvalidProviderSignature", provider):
            _finalize(env, **dict(args, inputs=list(inputs)))
    # A valid signature over another commitment does not match either.
    inputs[2] = (provider, bytes(32), sig)
    with reverts("JobInvalidProviderSignature", provider):
        _finalize(env, **dict(args, inputs=inputs))


@pytest.mark.parametrize("aggregates", [[], list(range(65))])
def test_finalize_invalid_aggregates(env: Env, aggregates: list[int]) -> None:
    _, _, args = _assigned(env)
    with reverts("JobInvalidAggregates"):
        _finalize(env, **dict(args, aggregates=aggregates))


def test_finalize_at_and_after_deadline(env: Env) -> None:
    job_id, _, args = _assigned(env, timeout_s=100)
    deadline = env.market.get_job(job_id).deadline
    env.advance(101)
    assert env.now() > deadline
    with reverts("JobDeadlinePassed", deadline):
        _finalize(env, **args)
    # Exactly at the deadline is still in time.
    job2, _, args2 = _assigned(env, timeout_s=100)
    deadline2 = env.market.get_job(job2).deadline
    env.set_next_timestamp(deadline2)
    _finalize(env, **args2)
    assert env.market.get_job(job2).status is JobStatus.FINALIZED


def test_finalize_twice(env: Env) -> None:
    job_id, _, args = _assigned(env)
    _finalize(env, **args)
    with reverts("JobNotOpen", job_id):
        _finalize(env, **args)


# ============================================================================ reclaimEscrow


def test_reclaim_not_buyer(env: Env) -> None:
    job_id, _ = env.post(timeout_s=10)
    env.advance(11)
    with reverts("JobNotBuyer"):
        env.market.reclaim_escrow(env.outsider, job_id)
    with reverts("JobNotBuyer"):
        env.market.reclaim_escrow(env.buyer, 12345)  # no such job


def test_reclaim_before_deadline(env: Env) -> None:
    job_id, _ = env.post(timeout_s=100)
    deadline = env.market.get_job(job_id).deadline
    with reverts("JobDeadlineNotReached", deadline):
        env.market.reclaim_escrow(env.buyer, job_id)
    env.set_next_timestamp(deadline)  # at the deadline the job can still be finalized
    with reverts("JobDeadlineNotReached", deadline):
        env.market.reclaim_escrow(env.buyer, job_id)


def test_reclaim_after_finalize(env: Env) -> None:
    job_id, _, args = _assigned(env, timeout_s=10)
    _finalize(env, **args)
    env.advance(11)
    with reverts("JobNotOpen", job_id):
        env.market.reclaim_escrow(env.buyer, job_id)


def test_reclaim_success_exactly_once(env: Env) -> None:
    payment = 7 * MIN_PAYMENT_WEI + 3
    job_id, _, args = _assigned(env, timeout_s=10, payment_wei=payment)
    env.advance(11)
    market_balance = env.balance(env.market.address)
    balance = env.balance(env.buyer)
    block = env.w3.eth.block_number
    tx = env.market.reclaim_escrow(env.buyer, job_id)
    assert env.balance(env.buyer) == balance + payment - env.fee(tx)
    assert env.balance(env.market.address) == market_balance - payment
    [ev] = env.market.job_refunded_events(block + 1)
    assert (ev["job_id"], ev["buyer"], ev["amount_wei"]) == (job_id, env.buyer.address, payment)
    assert env.market.get_job(job_id).status is JobStatus.REFUNDED
    with reverts("JobNotOpen", job_id):
        env.market.reclaim_escrow(env.buyer, job_id)
    with reverts("JobNotOpen", job_id):
        _finalize(env, **args)


def test_reclaim_of_a_job_whose_committee_was_never_drawn(env: Env) -> None:
    """If no beacon round ever seeds the job, the buyer still gets the escrow back."""
    job_id, _ = env.post(timeout_s=10, payment_wei=MIN_PAYMENT_WEI)
    env.advance(11)
    with reverts("JobDeadlinePassed", env.market.get_job(job_id).deadline):
        env.assign(job_id)  # too late to draw a committee
    env.market.reclaim_escrow(env.buyer, job_id)
    assert env.market.get_job(job_id).status is JobStatus.REFUNDED


# ============================================================================ accounting


def test_contract_balance_matches_obligations(env: Env) -> None:
    """ETH held == stakes + unpaid rewards + open escrows + beacon pots of unfinished rounds,
    after a mix of operations (randomness fees become revealer rewards)."""
    fee = env.beacon.randomness_fee_wei()
    j1, _ = env.post(payment_wei=MIN_PAYMENT_WEI + 1)
    env.beacon.request_randomness(env.buyer)  # joins round 1: its fee is paid to the revealers
    j2, _ = env.post(payment_wei=2 * MIN_PAYMENT_WEI, timeout_s=10)
    committee = env.assign(j1)
    _finalize(env, **_finalize_args(env, j1, committee))
    env.advance(11)
    env.market.reclaim_escrow(env.buyer, j2)
    env.market.withdraw_rewards(committee[1])
    j3, _ = env.post(payment_wei=5 * MIN_PAYMENT_WEI)
    _, round_id, _ = env.beacon.request_randomness(env.buyer, fee_wei=fee + 7)  # open round 2
    pot = env.beacon.get_round(round_id).pot_wei
    assert pot == fee + 7
    nodes = env.market.list_nodes()
    owed = sum(n.stake_wei + n.rewards_wei for n in nodes)
    assert env.balance(env.market.address) == owed + env.market.get_job(j3).escrow_wei + pot


# ============================================================================ client plumbing


def test_revert_decoding_of_builtin_and_unknown_errors(env: Env) -> None:
    abi = env.market.abi
    error_string = bytes.fromhex("08c379a0") + encode(["string"], ["boom"])
    assert str(decode_revert(abi, error_string)) == "Error(boom)"
    panic = decode_revert(abi, bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]))
    assert (panic.error_name, panic.error_args) == ("Panic", (0x11,))
    unknown = decode_revert(abi, b"\xde\xad\xbe\xef")
    assert unknown.error_name == "Unknown"
    selector = keccak(text="RegistryNotActive(address)")[:4]
    decoded = decode_revert(abi, selector + encode(["address"], [env.nodes[0].address]))
    assert str(decoded) == f"RegistryNotActive({env.nodes[0].address})"


def test_anvil_lifecycle_and_dev_accounts(env: Env) -> None:
    accounts = dev_accounts(3)
    assert accounts[0].address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert [a.address for a in accounts] == env.w3.eth.accounts[:3]
    node = Anvil()
    node.stop()  # before start: no-op
    with node:
        assert wait_for_rpc(node.rpc_url, 5) == 31337
        pid = node.pid
        assert pid is not None
    node.stop()  # twice: no-op
    with pytest.raises(TimeoutError):
        wait_for_rpc(node.rpc_url, 0.2)


def test_anvil_reports_startup_failure() -> None:
    with pytest.raises(AnvilError, match="exited"):
        Anvil(["--no-such-flag"]).start()


def test_compile_without_node_modules_says_make_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "contracts").mkdir()
    monkeypatch.setenv("MPC_MARKET_ROOT", str(tmp_path))
    with pytest.raises(CompilerNotInstalledError, match="make install"):
        compile_contracts()
