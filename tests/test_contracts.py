"""MPCMarket on a real anvil: every external function, its success path and its failure paths."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_utils.crypto import keccak

from offchain import eip712
from offchain.chain.compile import CompilerNotInstalledError, compile_contracts
from offchain.chain.devnet import Anvil, AnvilError, dev_accounts, wait_for_rpc
from offchain.chain.market import (
    ContractRevert,
    JobStatus,
    NodeStatus,
    decode_revert,
    deploy_market,
)
from tests.conftest import (
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
POST_JOB_GAS_MAX = 150_000  # N=3
FINALIZE_GAS_MAX = 150_000  # issue 2 target, with 3 committee signatures and 5 providers


def high_s(sig: eip712.Sig) -> eip712.Sig:
    """The malleable twin (n - s, flipped v) of a valid signature: same signer, high s."""
    s = eip712.SECP256K1_N - int.from_bytes(sig.s, "big")
    return eip712.Sig(r=sig.r, s=s.to_bytes(32, "big"), v=55 - sig.v)


# ============================================================================ deployment


def test_constructor_rejects_exit_delay_not_above_max_timeout(env: Env) -> None:
    with reverts("InvalidConfiguration", 100, 100):
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
    with reverts("StakeTooLow", MIN_STAKE_WEI - 1, MIN_STAKE_WEI) as e:
        env.market.register(env.unregistered[0], KEY, "http://x", MIN_STAKE_WEI - 1)
    assert str(e.value) == f"StakeTooLow({MIN_STAKE_WEI - 1}, {MIN_STAKE_WEI})"


def test_register_zero_key(env: Env) -> None:
    with reverts("InvalidEncryptionKey"):
        env.market.register(env.unregistered[0], bytes(32), "http://x", MIN_STAKE_WEI)


@pytest.mark.parametrize("endpoint", ["", "h" * 257, "http://a b", "http://\u00e9", "a\nb"])
def test_register_bad_endpoint(env: Env, endpoint: str) -> None:
    with reverts("InvalidEndpoint"):
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
        (node.address, "http://127.0.0.1:4242")]
    env.market.request_exit(node)  # an Exiting node may still move
    env.market.update_endpoint(node, "http://127.0.0.1:4343")
    assert env.market.get_node(node.address).endpoint == "http://127.0.0.1:4343"


@pytest.mark.parametrize("endpoint,ok", [("!", True), ("~", True), ("h" * 255 + "~", True),
                                         ("a\x7fb", False), ("a\x20b", False),
                                         ("\x00", False)])
def test_endpoint_printable_ascii_boundaries(env: Env, endpoint: str, ok: bool) -> None:
    if ok:
        env.market.register(env.unregistered[0], KEY, endpoint, MIN_STAKE_WEI)
        assert env.market.get_node(env.unregistered[0].address).endpoint == endpoint
    else:
        with reverts("InvalidEndpoint"):
            env.market.register(env.unregistered[0], KEY, endpoint, MIN_STAKE_WEI)


def test_update_endpoint_failures(env: Env) -> None:
    with reverts("NotRegistered", env.unregistered[0].address):
        env.market.update_endpoint(env.unregistered[0], "http://x")
    for bad in ("", "h" * 257, "http://\u00ff"):
        with reverts("InvalidEndpoint"):
            env.market.update_endpoint(env.nodes[0], bad)


def test_register_duplicate(env: Env) -> None:
    node = env.nodes[0]
    with reverts("AlreadyRegistered", node.address) as e:
        env.market.register(node, KEY, "http://x", MIN_STAKE_WEI)
    assert str(e.value) == f"AlreadyRegistered({node.address})"
    env.market.request_exit(node)  # an Exiting node is still registered
    with reverts("AlreadyRegistered", node.address):
        env.market.register(node, KEY, "http://x", MIN_STAKE_WEI)


def test_node_at_out_of_bounds(env: Env) -> None:
    n = env.market.node_count()
    with reverts("IndexOutOfBounds", n, n):
        env.market.node_at(n)


def test_unknown_node_is_all_zero(env: Env) -> None:
    node = env.market.get_node(env.unregistered[0].address)
    assert node.status is NodeStatus.NONE and node.stake_wei == 0 and node.endpoint == ""
    assert not env.market.is_active(env.unregistered[0].address)


# ============================================================================ exit


def test_request_exit_not_registered(env: Env) -> None:
    with reverts("NotRegistered", env.outsider.address):
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
    with reverts("NotActive", node.address):
        env.market.request_exit(node)


def test_withdraw_stake_not_registered(env: Env) -> None:
    with reverts("NotRegistered", env.outsider.address):
        env.market.withdraw_stake(env.outsider)


def test_withdraw_stake_without_exit_request(env: Env) -> None:
    with reverts("ExitNotReady", 0):
        env.market.withdraw_stake(env.nodes[0])


def test_withdraw_stake_too_early(env: Env) -> None:
    node = env.nodes[3]
    env.market.request_exit(node)
    exit_at = env.market.get_node(node.address).exit_at
    env.advance(EXIT_DELAY_S - 100)
    with reverts("ExitNotReady", exit_at):
        env.market.withdraw_stake(node)


def test_withdraw_stake_pays_stake_and_rewards_and_removes(env: Env) -> None:
    # node 0 earns rewards on a job, then leaves.
    job_id, _ = env.post(payment_wei=2 * MIN_PAYMENT_WEI + 1)
    inputs = env.inputs(job_id)
    env.market.finalize_job(
        env.outsider,
        job_id,
        AGGS,
        [m.address for m in env.committee()],
        inputs,
        env.signatures(job_id, env.committee(2), AGGS, inputs),
    )
    node = env.nodes[0]
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
    assert after_list[before_list.index(node.address)] == before_list[-1]  # swap-and-pop
    with reverts("NotRegistered", node.address):
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
    with reverts("NothingToWithdraw"):
        env.market.withdraw_rewards(env.nodes[0])
    with reverts("NothingToWithdraw"):
        env.market.withdraw_rewards(env.outsider)


# ============================================================================ postJob


def test_post_job_success(env: Env) -> None:
    env.post()  # the first job of a deployment; measure a steady-state one below
    committee = env.committee()
    block = env.w3.eth.block_number
    job_id, tx = env.post(
        committee, threshold=1, min_providers=4, timeout_s=900, payment_wei=10**16
    )
    assert job_id == 2 and env.market.job_count() == 2
    assert tx.gas_used <= POST_JOB_GAS_MAX, tx.gas_used
    ts = int(env.w3.eth.get_block(tx.block_number)["timestamp"])
    [ev] = env.market.job_posted_events(block + 1)
    assert ev == {
        "block_number": tx.block_number,
        "tx_hash": tx.hash,
        "log_index": 0,
        "job_id": job_id,
        "buyer": env.buyer.address,
        "dataset_id": env.dataset,
        "query": env.query,
        "committee": [m.address for m in committee],
        "threshold": 1,
        "min_providers": 4,
        "deadline": ts + 900,
        "escrow_wei": 10**16,
    }
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.OPEN
    assert (job.buyer, job.escrow_wei, job.deadline) == (env.buyer.address, 10**16, ts + 900)
    assert (job.committee_size, job.threshold, job.min_providers) == (3, 1, 4)
    assert job.spec_hash == eip712.spec_hash(env.dataset, env.query)
    assert job.committee_hash == eip712.committee_hash([m.address for m in committee])
    assert (job.provider_count, job.signer_mask) == (0, 0)
    assert job.result_hash == bytes(32)
    assert env.balance(env.market.address) >= 10**16


def test_post_job_payment_too_low(env: Env) -> None:
    with reverts("PaymentTooLow", MIN_PAYMENT_WEI - 1, MIN_PAYMENT_WEI):
        env.post(payment_wei=MIN_PAYMENT_WEI - 1)


@pytest.mark.parametrize("query", ["", "q" * 257])
def test_post_job_invalid_query(env: Env, query: str) -> None:
    with reverts("InvalidQuery"):
        env.post(query=query)


@pytest.mark.parametrize("size", [1, 2, 33])
def test_post_job_invalid_committee_size(env: Env, size: int) -> None:
    members = [a.address for a in by_address(env.nodes)] * 3
    with reverts("InvalidCommitteeSize", size):
        env.market.post_job(
            env.buyer,
            dataset_id=env.dataset,
            query="q",
            committee=members[:size],
            threshold=1,
            min_providers=1,
            timeout_s=60,
            payment_wei=MIN_PAYMENT_WEI,
        )


@pytest.mark.parametrize("threshold", [0, 2, 3, 4])
def test_post_job_invalid_threshold(env: Env, threshold: int) -> None:
    """1 <= t and n >= 2t+1: with n=3 only t=1 is allowed (t=2 would let two corrupt members
    steer what the honest one reconstructs)."""
    with reverts("InvalidThreshold", threshold, 3):
        env.post(threshold=threshold)


def test_post_job_threshold_two_needs_five_members(env: Env) -> None:
    with reverts("InvalidThreshold", 2, 4):
        env.post(env.committee(4), threshold=2)
    job_id, _ = env.post(env.committee(5), threshold=2)
    assert env.market.get_job(job_id).threshold == 2


def test_post_job_committee_not_sorted(env: Env) -> None:
    a, b, c = (m.address for m in env.committee())
    for committee, index in (([a, c, b], 2), ([b, a, c], 1), ([a, a, b], 1)):
        with reverts("CommitteeNotSorted", index):
            env.market.post_job(
                env.buyer,
                dataset_id=env.dataset,
                query="q",
                committee=committee,
                threshold=1,
                min_providers=1,
                timeout_s=60,
                payment_wei=MIN_PAYMENT_WEI,
            )


def test_post_job_member_not_active(env: Env) -> None:
    stranger = env.unregistered[0]
    with reverts("NotActive", stranger.address) as e:
        env.post([*env.committee(2), stranger])
    assert str(e.value) == f"NotActive({stranger.address})"
    exiting = env.nodes[1]
    env.market.request_exit(exiting)
    with reverts("NotActive", exiting.address):
        env.post()


def test_post_job_invalid_min_providers(env: Env) -> None:
    with reverts("InvalidMinProviders"):
        env.post(min_providers=0)


@pytest.mark.parametrize("timeout_s", [0, MAX_TIMEOUT_S + 1])
def test_post_job_invalid_timeout(env: Env, timeout_s: int) -> None:
    with reverts("InvalidTimeout", timeout_s):
        env.post(timeout_s=timeout_s)


def test_max_committee_of_32_and_top_mask_bit(env: Env) -> None:
    extra = env.unregistered[: 32 - len(env.nodes)]
    for acct in extra:
        env.market.register(acct, KEY, "http://x", MIN_STAKE_WEI)
    pool = by_address([*env.nodes, *extra])
    assert len(pool) == 32
    job_id, _ = env.post(pool, threshold=1, payment_wei=MIN_PAYMENT_WEI)
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


# ============================================================================ finalizeJob


def _finalize_args(
    env: Env, job_id: int, signers: list | None = None, providers: list | None = None
) -> dict:
    inputs = env.inputs(job_id, providers)
    sigs = env.signatures(
        job_id, signers if signers is not None else env.committee(2), AGGS, inputs
    )
    return {
        "job_id": job_id,
        "aggregates": list(AGGS),
        "committee": [m.address for m in env.committee()],
        "inputs": inputs,
        "signatures": sigs,
    }


def _finalize(env: Env, **kw: object):  # type: ignore[no-untyped-def]
    return env.market.finalize_job(env.outsider, **kw)  # type: ignore[arg-type]


def test_finalize_success(env: Env) -> None:
    payment = 3 * MIN_PAYMENT_WEI + 2  # not divisible by 3: remainder 2 goes to the first signer
    job_id, post_tx = env.post(payment_wei=payment)
    committee = env.committee()
    args = _finalize_args(env, job_id, signers=committee)
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
    with reverts("NothingToWithdraw"):
        env.market.withdraw_rewards(member)
    assert post_tx.gas_used > 0


def test_finalize_signer_mask_and_minimum_signatures(env: Env) -> None:
    committee = env.nodes[:4]
    job_id, _ = env.post(committee, threshold=1, payment_wei=MIN_PAYMENT_WEI)
    args = _finalize_args(env, job_id, signers=[committee[1], committee[3]])
    args["committee"] = [m.address for m in committee]
    _finalize(env, **args)
    job = env.market.get_job(job_id)
    assert job.signer_mask == 0b1010
    assert env.market.get_node(committee[0].address).rewards_wei == 0
    assert env.market.get_node(committee[1].address).rewards_wei == MIN_PAYMENT_WEI // 2


def test_finalize_by_exiting_member_and_exit_after(env: Env) -> None:
    job_id, _ = env.post(payment_wei=MIN_PAYMENT_WEI)
    member = env.committee()[0]
    env.market.request_exit(member)  # after the job was posted: still serves it
    _finalize(env, **_finalize_args(env, job_id))
    reward = env.market.get_node(member.address).rewards_wei
    assert reward > 0
    env.advance(EXIT_DELAY_S)
    balance = env.balance(member)
    tx = env.market.withdraw_stake(member)
    assert env.balance(member) == balance + MIN_STAKE_WEI + reward - env.fee(tx)


def test_finalize_unknown_job(env: Env) -> None:
    with reverts("JobNotOpen", 99):
        _finalize(env, **_finalize_args(env, 99))


def test_finalize_too_few_signatures(env: Env) -> None:
    job_id, _ = env.post(env.committee(5), threshold=2)
    args = _finalize_args(env, job_id, signers=env.committee(2))
    args["committee"] = [m.address for m in by_address(env.committee(5))]
    with reverts("TooFewSignatures", 2, 3):
        _finalize(env, **args)


def test_finalize_duplicate_signer(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id, signers=env.committee(1))
    args["signatures"] = args["signatures"] * 2
    with reverts("SignersNotSorted", 1):
        _finalize(env, **args)


def test_finalize_unsorted_signers(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    args["signatures"] = list(reversed(args["signatures"]))
    with reverts("SignersNotSorted", 1):
        _finalize(env, **args)


def test_finalize_unregistered_signer(env: Env) -> None:
    job_id, _ = env.post()
    stranger = env.unregistered[0]
    # Signatures are sorted by signer, so the stranger fails the membership check wherever it is.
    args = _finalize_args(env, job_id, signers=[stranger, *env.committee(1)])
    with reverts("NotCommitteeMember", stranger.address):
        _finalize(env, **args)


def test_finalize_non_committee_signer(env: Env) -> None:
    job_id, _ = env.post()
    outsider_node = env.spare[-1]  # registered, not in the committee, above every member
    args = _finalize_args(env, job_id, signers=[*env.committee(1), outsider_node])
    with reverts("NotCommitteeMember", outsider_node.address):
        _finalize(env, **args)


def test_finalize_signature_for_another_job(env: Env) -> None:
    job_id, _ = env.post()
    other_id, _ = env.post()
    args = _finalize_args(env, job_id)
    inputs = args["inputs"]
    wrong = env.signatures(other_id, env.committee(1), AGGS, inputs)
    args["signatures"] = [wrong[0], args["signatures"][1]]
    # The signature recovers to an unrelated address, which is not a committee member.
    with reverts("NotCommitteeMember"):
        _finalize(env, **args)


def test_finalize_signature_over_other_aggregates(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    args["aggregates"] = [5, -7, 123_456_788]
    with pytest.raises(ContractRevert) as e:
        _finalize(env, **args)
    assert e.value.error_name in {"NotCommitteeMember", "SignersNotSorted"}


def test_finalize_high_s_and_bad_v_signatures(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    root, sig = args["signatures"][1]
    for bad in (high_s(sig), eip712.Sig(sig.r, sig.s, 29), eip712.Sig(sig.r, bytes(32), sig.v)):
        tampered = dict(args, signatures=[args["signatures"][0], (root, bad)])
        with reverts("InvalidSignature", 1):
            _finalize(env, **tampered)


def test_finalize_wrong_committee_list(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    members = args["committee"]
    for committee in (members[:2], [*members[:2], env.spare[0].address], members[::-1]):
        with reverts("CommitteeMismatch"):
            _finalize(env, **dict(args, committee=committee))


def test_finalize_too_few_providers(env: Env) -> None:
    job_id, _ = env.post(min_providers=3)
    args = _finalize_args(env, job_id, providers=env.providers(2))
    with reverts("TooFewProviders", 2, 3):
        _finalize(env, **args)


def test_finalize_unsorted_or_duplicate_providers(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    inputs = args["inputs"]
    for bad, index in ((list(reversed(inputs)), 1), ([inputs[0], *inputs], 1)):
        with reverts("ProvidersNotSorted", index):
            _finalize(env, **dict(args, inputs=bad))


def test_finalize_unregistered_provider(env: Env) -> None:
    job_id, _ = env.post()
    stranger = env.unregistered[0]
    args = _finalize_args(env, job_id, providers=[*env.providers(3), stranger])
    with reverts("NotRegistered", stranger.address):
        _finalize(env, **args)


def test_finalize_bad_provider_signature(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    inputs = list(args["inputs"])
    provider, commitment, sig = inputs[2]
    forged = eip712.sign_input_commitment(Account.create(), env.market.domain(), job_id, commitment)
    for bad in (forged, high_s(sig), eip712.Sig(sig.r, sig.s, 26)):
        inputs[2] = (provider, commitment, bad)
        with reverts("InvalidProviderSignature", provider):
            _finalize(env, **dict(args, inputs=list(inputs)))
    # A valid signature over another commitment does not match either.
    inputs[2] = (provider, bytes(32), sig)
    with reverts("InvalidProviderSignature", provider):
        _finalize(env, **dict(args, inputs=inputs))


@pytest.mark.parametrize("aggregates", [[], list(range(65))])
def test_finalize_invalid_aggregates(env: Env, aggregates: list[int]) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    with reverts("InvalidAggregates"):
        _finalize(env, **dict(args, aggregates=aggregates))


def test_finalize_at_and_after_deadline(env: Env) -> None:
    job_id, _ = env.post(timeout_s=100)
    deadline = env.market.get_job(job_id).deadline
    args = _finalize_args(env, job_id)
    env.advance(101)
    assert env.now() > deadline
    with reverts("DeadlinePassed", deadline):
        _finalize(env, **args)
    # Exactly at the deadline is still in time.
    job2, _ = env.post(timeout_s=100)
    deadline2 = env.market.get_job(job2).deadline
    args2 = _finalize_args(env, job2)
    env.set_next_timestamp(deadline2)
    _finalize(env, **args2)
    assert env.market.get_job(job2).status is JobStatus.FINALIZED


def test_finalize_twice(env: Env) -> None:
    job_id, _ = env.post()
    args = _finalize_args(env, job_id)
    _finalize(env, **args)
    with reverts("JobNotOpen", job_id):
        _finalize(env, **args)


# ============================================================================ reclaimEscrow


def test_reclaim_not_buyer(env: Env) -> None:
    job_id, _ = env.post(timeout_s=10)
    env.advance(11)
    with reverts("NotBuyer"):
        env.market.reclaim_escrow(env.outsider, job_id)
    with reverts("NotBuyer"):
        env.market.reclaim_escrow(env.buyer, 12345)  # no such job


def test_reclaim_before_deadline(env: Env) -> None:
    job_id, _ = env.post(timeout_s=100)
    deadline = env.market.get_job(job_id).deadline
    with reverts("DeadlineNotReached", deadline):
        env.market.reclaim_escrow(env.buyer, job_id)
    env.set_next_timestamp(deadline)  # at the deadline the job can still be finalized
    with reverts("DeadlineNotReached", deadline):
        env.market.reclaim_escrow(env.buyer, job_id)


def test_reclaim_after_finalize(env: Env) -> None:
    job_id, _ = env.post(timeout_s=10)
    _finalize(env, **_finalize_args(env, job_id))
    env.advance(11)
    with reverts("JobNotOpen", job_id):
        env.market.reclaim_escrow(env.buyer, job_id)


def test_reclaim_success_exactly_once(env: Env) -> None:
    payment = 7 * MIN_PAYMENT_WEI + 3
    job_id, _ = env.post(timeout_s=10, payment_wei=payment)
    args = _finalize_args(env, job_id)
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


# ============================================================================ accounting


def test_contract_balance_matches_obligations(env: Env) -> None:
    """ETH held == stakes + unpaid rewards + open escrows, after a mix of operations."""
    j1, _ = env.post(payment_wei=MIN_PAYMENT_WEI + 1)
    j2, _ = env.post(payment_wei=2 * MIN_PAYMENT_WEI, timeout_s=10)
    _finalize(env, **_finalize_args(env, j1))
    env.advance(11)
    env.market.reclaim_escrow(env.buyer, j2)
    env.market.withdraw_rewards(env.committee()[1])
    j3, _ = env.post(payment_wei=5 * MIN_PAYMENT_WEI)
    nodes = env.market.list_nodes()
    owed = sum(n.stake_wei + n.rewards_wei for n in nodes)
    assert env.balance(env.market.address) == owed + env.market.get_job(j3).escrow_wei


# ============================================================================ client plumbing


def test_revert_decoding_of_builtin_and_unknown_errors(env: Env) -> None:
    abi = env.market.abi
    error_string = bytes.fromhex("08c379a0") + encode(["string"], ["boom"])
    assert str(decode_revert(abi, error_string)) == "Error(boom)"
    panic = decode_revert(abi, bytes.fromhex("4e487b71") + encode(["uint256"], [0x11]))
    assert (panic.error_name, panic.error_args) == ("Panic", (0x11,))
    unknown = decode_revert(abi, b"\xde\xad\xbe\xef")
    assert unknown.error_name == "Unknown"
    selector = keccak(text="NotActive(address)")[:4]
    decoded = decode_revert(abi, selector + encode(["address"], [env.nodes[0].address]))
    assert str(decoded) == f"NotActive({env.nodes[0].address})"


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
