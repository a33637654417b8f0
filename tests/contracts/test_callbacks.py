"""Smart-contract job requests on a real anvil: a contract posts a job itself
(``postJobWithCallback``) and receives the opened aggregates through
``IMPCJobConsumer.onMPCResult`` when the job is finalized.

Covered: the example consumer (contracts/examples/StatsConsumer.sol, a mean over a column) end to
end, the callback fee (charged at post, credited to the finalizer, refunded with the escrow),
failing callbacks (reverting, gas-burning, re-entering: recorded, never fatal), the EIP-150 gas
check that keeps a finalizer from starving a callback, and every failure path of the new
functions. Committees are drawn by the beacon through :meth:`Env.assign` (tests/beacon_driver.py).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from offchain.chain.market import JobStatus
from offchain.chain.tx import DEFAULT_TIP_WEI, ContractRevert, ErrorDecoder, TxResult, TxSender
from offchain.devnet.compile import CompiledContract, compile_contracts
from offchain.encoding.query import parse_query, statistic
from tests.helpers.beacon_driver import rpc
from tests.helpers.env import MIN_PAYMENT_WEI, Env, callback_gas, reverts

GWEI = 10**9
STATS_GAS = 120_000  # StatsConsumer.CALLBACK_GAS
MAX_CALLBACK_GAS = 2_000_000  # JobMarket.MAX_JOB_CALLBACK_GAS
RESERVE_GAS = 10_000  # JobMarket.JOB_CALLBACK_RESERVE_GAS
SCALE = 10**12

# Gas regression bounds (contract properties at the pinned compiler/hardfork).
POST_WITH_CALLBACK_GAS_MAX = 175_000  # joining the Open round; postJob + 22.1k fee slot + event
FINALIZE_OVERHEAD_GAS_MAX = 160_000  # finalizeJob with 2 signatures, 5 providers, minus callback


# ============================================================================ helpers


@pytest.fixture(scope="module")
def artifacts() -> dict[str, CompiledContract]:
    return compile_contracts(include_tests=True)


class Consumer:
    """A deployed consumer contract (examples/StatsConsumer or a test double), sending as
    ``env.buyer``; reverts decode against its ABI and the market's (bubbled up errors)."""

    def __init__(self, env: Env, artifact: CompiledContract) -> None:
        self.env = env
        self.decoder = ErrorDecoder([*env.market.abi, *artifact.abi])
        self.sender = TxSender(env.w3, self.decoder, DEFAULT_TIP_WEI)
        factory = env.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        tx = self.sender.send("deploy", env.buyer, factory.constructor(env.market.address))
        self.address = to_checksum_address(tx.receipt["contractAddress"])
        self.contract = env.w3.eth.contract(address=self.address, abi=artifact.abi)

    def send(self, name: str, *args: Any, value: int = 0, account: Any = None) -> TxResult:
        fn = self.contract.functions[name](*args)
        return self.sender.send(name, account or self.env.buyer, fn, value=value)

    def call(self, name: str, *args: Any) -> Any:
        return self.contract.functions[name](*args).call()

    def events(self, name: str, tx: TxResult) -> list[dict[str, Any]]:
        logs = self.contract.events[name]().process_receipt(tx.receipt, errors=DISCARD)
        return [dict(ev["args"]) for ev in logs]


def market_events(env: Env, name: str, tx: TxResult) -> list[dict[str, Any]]:
    logs = env.market.contract.events[name]().process_receipt(tx.receipt, errors=DISCARD)
    return [dict(ev["args"]) for ev in logs]


def posted_job(env: Env, tx: TxResult) -> int:
    [ev] = market_events(env, "JobPosted", tx)
    return int(ev["jobId"])


def base_fee(env: Env, block: int | str) -> int:
    return int(env.w3.eth.get_block(block)["baseFeePerGas"])


def callback_fee_at(env: Env, block: int | str, limit: int) -> int:
    """jobCallbackFeeWei(limit) as charged in ``block``."""
    return limit * (2 * base_fee(env, block) + GWEI)


def finalize_args(
    env: Env, job_id: int, committee: list[Any], aggregates: list[int]
) -> dict[str, Any]:
    inputs = env.inputs(job_id)
    return {
        "job_id": job_id,
        "aggregates": aggregates,
        "committee": [m.address for m in committee],
        "inputs": inputs,
        "signatures": env.signatures(job_id, committee[:2], aggregates, inputs),
    }


def finalize_fn(env: Env, args: dict[str, Any]) -> Any:
    return env.market.contract.functions.finalizeJob(
        args["job_id"],
        args["aggregates"],
        args["committee"],
        [(p, c, s.to_tuple()) for p, c, s in args["inputs"]],
        [(root, s.to_tuple()) for root, s in args["signatures"]],
    )


def call_with_gas(env: Env, fn: Any, gas: int) -> None:
    """eth_call of ``fn`` by the outsider with exactly ``gas``; raises ContractRevert."""
    try:
        fn.call({"from": env.outsider.address, "gas": gas})
    except ContractLogicError as exc:
        raise ErrorDecoder(env.market.abi).from_exception(exc) from None


def rewards(env: Env, address: str) -> int:
    return env.market.get_node(address).rewards_wei


def spec_hash(dataset: bytes, query: str) -> bytes:
    return keccak(abi_encode(["bytes32", "bytes32"], [dataset, keccak(text=query)]))


def request_mean(env: Env, stats: Consumer, value: int, timeout_s: int = 600,
                 account: Any = None) -> tuple[int, TxResult]:
    tx = stats.send("requestMean", env.dataset, "radius", 3, 1, 3, timeout_s, value=value,
                    account=account)
    return posted_job(env, tx), tx


def post_eoa(env: Env, limit: int, *, payment_wei: int = MIN_PAYMENT_WEI,
             timeout_s: int = 600, **kw: Any) -> tuple[int, TxResult]:
    return env.market.post_job(
        env.buyer, dataset_id=env.dataset, query=env.query, committee_size=3, threshold=1,
        min_providers=3, timeout_s=timeout_s, payment_wei=payment_wei,
        callback_gas_limit=limit, **kw)


# ============================================================================ the example


def test_stats_consumer_posts_a_mean_job_and_receives_the_result(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    stats = Consumer(env, artifacts["StatsConsumer"])
    assert stats.call("market") == env.market.address
    assert stats.call("CALLBACK_GAS") == STATS_GAS
    requester = env.unregistered[5]
    value = MIN_PAYMENT_WEI + 3 * env.market.job_callback_fee_wei(STATS_GAS)
    market_before = env.balance(env.market.address)
    job_id, tx = request_mean(env, stats, value, account=requester)
    print(f"\n  requestMean (StatsConsumer -> postJobWithCallback, opening a round): "
          f"{tx.gas_used:,} gas")

    # The contract is the buyer; the callback fee is taken at the block's gas price, the rest
    # escrowed; the market holds all of it.
    fee = callback_fee_at(env, tx.block_number, STATS_GAS)
    job = env.market.get_job(job_id)
    assert job.buyer == stats.address and job.status is JobStatus.OPEN
    assert job.escrow_wei == value - fee
    assert job.spec_hash == spec_hash(env.dataset, "mean:radius")
    assert env.market.job_callback(job_id) == (STATS_GAS, fee)
    [posted] = market_events(env, "JobPosted", tx)
    assert (posted["query"], posted["escrowWei"]) == ("mean:radius", value - fee)
    [requested] = env.market.job_callback_requested_events(tx.block_number, tx.block_number)
    assert (requested["job_id"], requested["callback_gas_limit"], requested["fee_wei"]) == (
        job_id, STATS_GAS, fee)
    [mr] = stats.events("MeanRequested", tx)
    assert (mr["jobId"], mr["requester"], mr["datasetId"], mr["column"]) == (
        job_id, requester.address, env.dataset, "radius")
    assert stats.call("requestOf", job_id) == (requester.address, 1, 0, 0, 0)  # Pending
    assert env.balance(env.market.address) == market_before + value
    assert env.balance(stats.address) == 0

    # Finalize with the mean aggregates [n, S1]: a negative sum not divisible by n, so the mean
    # is rounded toward zero.
    n, s1 = 7, -(10 * SCALE + 1)  # mean = -1.428571428571571... -> -1428571428571 / 10^12
    committee = env.assign(job_id)
    finalizer = env.unregistered[3]
    args = finalize_args(env, job_id, committee, [n, s1])
    ftx = env.market.finalize_job(finalizer, **args)
    [cb] = env.market.job_callback_events(ftx.block_number, ftx.block_number)
    assert (cb["job_id"], cb["finalizer"], cb["fee_wei"], cb["ok"]) == (
        job_id, finalizer.address, fee, True)
    assert callback_gas(env.w3, ftx.hash, stats.address) == [STATS_GAS]  # exactly its limit
    trace = rpc(env.w3, "debug_traceTransaction", ftx.hash, {"tracer": "callTracer"})
    [cb_frame] = [c for c in trace["calls"] if to_checksum_address(c["to"]) == stats.address]
    cb_used = int(cb_frame["gasUsed"], 16)
    print(f"  finalizeJob with the StatsConsumer callback (2 signatures, 5 providers): "
          f"{ftx.gas_used:,} gas, of which the callback used {cb_used:,}")
    assert cb_used < STATS_GAS * 3 // 4, cb_used  # CALLBACK_GAS keeps a margin
    assert ftx.gas_used - cb_used < FINALIZE_OVERHEAD_GAS_MAX, ftx.gas_used

    # The consumer stored and logged the mean; it matches the off-chain statistic.
    mean = int(Fraction(s1, n))  # int() truncates toward zero, like Solidity's sdiv
    assert mean == -1_428_571_428_571
    assert stats.call("requestOf", job_id) == (requester.address, 2, n, s1, mean)  # Done
    [mc] = stats.events("MeanComputed", ftx)
    assert (mc["jobId"], mc["n"], mc["sumScaled"], mc["meanScaled"]) == (job_id, n, s1, mean)
    off_chain = statistic(parse_query("mean:radius"), [n, s1])
    assert isinstance(off_chain, float) and abs(off_chain - mean / SCALE) < 1e-12

    # The finalizer is credited the callback fee; the escrow goes to the signers as usual.
    assert rewards(env, finalizer.address) == fee
    signer_rewards = [rewards(env, m.address) for m in committee[:2]]
    assert sum(signer_rewards) == value - fee
    assert env.market.job_callback(job_id) == (STATS_GAS, 0)
    assert env.market.get_job(job_id).status is JobStatus.FINALIZED
    assert env.balance(env.market.address) == market_before + value  # credited, not paid
    before = env.balance(finalizer)
    wtx = env.market.withdraw_rewards(finalizer)
    assert env.balance(finalizer) == before + fee - env.fee(wtx)
    with reverts("StatsNotPending", job_id):
        stats.send("reclaim", job_id)


def test_stats_consumer_rejects_a_vector_that_is_not_a_mean(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    """A callback that reverts (here: the consumer's own validation) is recorded, and the job
    is finalized and paid all the same."""
    stats = Consumer(env, artifacts["StatsConsumer"])
    for aggregates in ([5, 1, 2], [-1, 10]):
        job_id, _ = request_mean(env, stats, MIN_PAYMENT_WEI + 2 * env.market.job_callback_fee_wei(
            STATS_GAS))
        committee = env.assign(job_id)
        tx = env.market.finalize_job(env.outsider, **finalize_args(env, job_id, committee,
                                                                   aggregates))
        [cb] = market_events(env, "JobCallback", tx)
        assert cb["ok"] is False
        assert env.market.get_job(job_id).status is JobStatus.FINALIZED
        assert stats.call("requestOf", job_id)[1] == 1  # still Pending on the consumer's side
        assert stats.events("MeanComputed", tx) == []


def test_stats_consumer_mean_of_zero_rows_is_zero(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    stats = Consumer(env, artifacts["StatsConsumer"])
    job_id, _ = request_mean(env, stats, MIN_PAYMENT_WEI + 2 * env.market.job_callback_fee_wei(
        STATS_GAS))
    committee = env.assign(job_id)
    tx = env.market.finalize_job(env.outsider, **finalize_args(env, job_id, committee, [0, 0]))
    assert market_events(env, "JobCallback", tx)[0]["ok"] is True
    assert stats.call("requestOf", job_id)[1:] == (2, 0, 0, 0)


def test_only_the_market_can_deliver_or_send_eth(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    stats = Consumer(env, artifacts["StatsConsumer"])
    with reverts("MPCJobConsumerOnlyMarket", env.buyer.address):
        stats.send("onMPCResult", 1, [3, 6])
    with pytest.raises(ContractLogicError) as excinfo:
        env.w3.eth.call({"from": env.outsider.address, "to": stats.address, "value": 1})
    err = stats.decoder.from_exception(excinfo.value)
    assert (err.error_name, err.error_args) == ("MPCJobConsumerOnlyMarket", (env.outsider.address,))


def test_stats_consumer_payment_too_low(env: Env, artifacts: dict[str, CompiledContract]) -> None:
    stats = Consumer(env, artifacts["StatsConsumer"])
    with reverts("JobPaymentTooLow") as e:  # the callback fee alone is not an escrow
        request_mean(env, stats, env.market.job_callback_fee_wei(STATS_GAS))
    sent, need = e.value.error_args
    assert need == MIN_PAYMENT_WEI + callback_fee_at(env, "pending", STATS_GAS) and sent < need


def test_stats_consumer_reclaim_pays_the_requester_back(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    stats = Consumer(env, artifacts["StatsConsumer"])
    requester = env.unregistered[6]
    value = MIN_PAYMENT_WEI + 2 * env.market.job_callback_fee_wei(STATS_GAS)
    job_id, _ = request_mean(env, stats, value, timeout_s=60, account=requester)
    deadline = env.market.get_job(job_id).deadline
    with reverts("JobDeadlineNotReached", deadline):  # bubbled up from the market
        stats.send("reclaim", job_id)
    with reverts("StatsNotPending", job_id + 1):
        stats.send("reclaim", job_id + 1)
    env.advance(61)
    before = env.balance(requester)
    market_before = env.balance(env.market.address)
    tx = stats.send("reclaim", job_id)  # anyone may trigger it; the requester is paid
    assert env.balance(requester) == before + value  # escrow + callback fee, in full
    assert env.balance(env.market.address) == market_before - value
    assert env.balance(stats.address) == 0
    [refunded] = market_events(env, "JobRefunded", tx)
    assert (refunded["jobId"], refunded["buyer"], refunded["amountWei"]) == (
        job_id, stats.address, value)
    [mr] = stats.events("MeanRefunded", tx)
    assert (mr["jobId"], mr["requester"], mr["amountWei"]) == (job_id, requester.address, value)
    assert stats.call("requestOf", job_id)[1] == 3  # Refunded
    assert env.market.job_callback(job_id) == (STATS_GAS, 0)
    assert env.market.get_job(job_id).status is JobStatus.REFUNDED
    with reverts("StatsNotPending", job_id):
        stats.send("reclaim", job_id)


# ============================================================================ failing callbacks


@pytest.mark.parametrize("name", ["RevertingJobConsumer", "GasHogJobConsumer"])
def test_failing_callbacks_are_recorded_not_fatal(
    env: Env, artifacts: dict[str, CompiledContract], name: str
) -> None:
    limit = 300_000
    consumer = Consumer(env, artifacts[name])
    value = MIN_PAYMENT_WEI + 2 * env.market.job_callback_fee_wei(limit)
    ptx = consumer.send("post", env.dataset, "count", 600, limit, value=value)
    job_id = posted_job(env, ptx)
    fee = callback_fee_at(env, ptx.block_number, limit)
    committee = env.assign(job_id)
    args = finalize_args(env, job_id, committee, [42])
    tx = env.market.finalize_job(env.outsider, **args)

    [cb] = market_events(env, "JobCallback", tx)
    assert (cb["jobId"], cb["finalizer"], cb["feeWei"], cb["ok"]) == (
        job_id, env.outsider.address, fee, False)
    assert callback_gas(env.w3, tx.hash, consumer.address) == [limit]
    # Bounded: the callback's limit plus the fixed cost of a finalization (the 10 kB revert
    # payload of RevertingJobConsumer is not copied back).
    assert tx.gas_used < limit + FINALIZE_OVERHEAD_GAS_MAX, tx.gas_used
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.FINALIZED and job.signer_mask == 0b11
    shares = [rewards(env, m.address) for m in committee[:2]]
    assert sum(shares) == value - fee and min(shares) > 0
    assert rewards(env, env.outsider.address) == fee
    with reverts("JobNotOpen", job_id):
        env.market.finalize_job(env.outsider, **args)


def test_a_reentering_callback_cannot_touch_its_finalized_job(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    limit = 200_000
    consumer = Consumer(env, artifacts["ReentrantJobConsumer"])
    value = MIN_PAYMENT_WEI + 2 * env.market.job_callback_fee_wei(limit)
    job_id = posted_job(env, consumer.send("post", env.dataset, "count", 600, limit, value=value))
    committee = env.assign(job_id)
    tx = env.market.finalize_job(env.outsider, **finalize_args(env, job_id, committee, [9]))
    assert market_events(env, "JobCallback", tx)[0]["ok"] is True
    assert consumer.call("calls") == 1
    # Every effect happened before the call: the job is Finalized, the fee already credited.
    assert consumer.call("reclaimError") == keccak(text="JobNotOpen(uint256)")[:4]
    assert consumer.call("feeSeen") == 0
    assert env.balance(consumer.address) == 0


def test_finalize_needs_gas_for_the_whole_callback(
    env: Env, artifacts: dict[str, CompiledContract]
) -> None:
    """A finalizer cannot starve the callback: below the gas it needs, finalizeJob reverts
    ExactGasCallInsufficientGas; at the smallest gas limit that goes through, the consumer
    still receives exactly its callback gas limit and succeeds."""
    stats = Consumer(env, artifacts["StatsConsumer"])
    job_id, _ = request_mean(env, stats, MIN_PAYMENT_WEI + 2 * env.market.job_callback_fee_wei(
        STATS_GAS))
    committee = env.assign(job_id)
    fn = finalize_fn(env, finalize_args(env, job_id, committee, [4, 10 * SCALE]))
    needed = STATS_GAS + STATS_GAS // 63 + RESERVE_GAS
    with reverts("ExactGasCallInsufficientGas") as e:
        call_with_gas(env, fn, 200_000)
    assert e.value.error_args[1] == needed and e.value.error_args[0] < needed

    def passes(gas: int) -> bool:
        try:
            call_with_gas(env, fn, gas)
        except ContractRevert as exc:
            assert exc.error_name == "ExactGasCallInsufficientGas", exc
            return False
        return True

    lo, hi = 200_000, 600_000
    assert passes(hi) and not passes(lo)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if passes(mid) else (mid, hi)
    tx = env.market.sender.send("finalizeJob", env.outsider, fn, gas=hi)
    assert market_events(env, "JobCallback", tx)[0]["ok"] is True
    assert callback_gas(env.w3, tx.hash, stats.address) == [STATS_GAS]
    assert stats.call("requestOf", job_id)[1:] == (2, 4, 10 * SCALE, 10 * SCALE // 4)


# ============================================================================ postJobWithCallback


def test_post_job_with_callback_by_an_account(env: Env) -> None:
    """An EOA buyer may ask for a callback too: the market does not call an account without
    code (ExactGasCall), so the callback is recorded as not delivered (ok = false), and the fee
    still goes to the finalizer."""
    limit = 50_000
    before = env.balance(env.market.address)
    job_id, tx = post_eoa(env, limit, payment_wei=MIN_PAYMENT_WEI, callback_fee_wei=10**15)
    fee = callback_fee_at(env, tx.block_number, limit)
    assert env.market.get_job(job_id).escrow_wei == MIN_PAYMENT_WEI + 10**15 - fee
    assert env.balance(env.market.address) == before + MIN_PAYMENT_WEI + 10**15
    print(f"\n  postJobWithCallback (EOA, opening a round): {tx.gas_used:,} gas")
    job2, tx2 = post_eoa(env, limit)
    print(f"  postJobWithCallback (EOA, joining the round): {tx2.gas_used:,} gas")
    assert tx2.gas_used <= POST_WITH_CALLBACK_GAS_MAX, tx2.gas_used
    fee2 = callback_fee_at(env, tx2.block_number, limit)
    assert env.market.get_job(job2).escrow_wei >= MIN_PAYMENT_WEI  # the default 10% margin
    committee = env.assign(job_id)
    ftx = env.market.finalize_job(env.unregistered[2], **finalize_args(env, job_id, committee,
                                                                       [1, 2]))
    [cb] = market_events(env, "JobCallback", ftx)
    assert (cb["ok"], cb["feeWei"]) == (False, fee)
    assert rewards(env, env.unregistered[2].address) == fee
    assert env.market.job_callback(job2) == (limit, fee2)


def test_post_job_with_callback_limit_zero_is_post_job(env: Env) -> None:
    env.post()  # open the round: both posts below join it
    job_a, tx_a = env.post(payment_wei=MIN_PAYMENT_WEI)
    # the contract entry point itself with limit 0 (the client would call postJob for it)
    fn = env.market.contract.functions.postJobWithCallback(env.dataset, env.query, 3, 1, 3, 600, 0)
    job_b, tx_b = env.market._posted(
        env.market.sender.send("postJobWithCallback", env.buyer, fn, value=MIN_PAYMENT_WEI))
    a, b = env.market.get_job(job_a), env.market.get_job(job_b)
    assert (b.buyer, b.escrow_wei, b.spec_hash, b.committee_size, b.status) == (
        a.buyer, a.escrow_wei, a.spec_hash, a.committee_size, a.status)
    assert env.market.job_callback(job_b) == (0, 0)
    assert market_events(env, "JobCallbackRequested", tx_b) == []
    print(f"\n  postJob {tx_a.gas_used:,} gas, postJobWithCallback(limit 0) {tx_b.gas_used:,}")
    assert abs(tx_b.gas_used - tx_a.gas_used) < 500
    committee = env.assign(job_b)
    ftx = env.market.finalize_job(env.outsider, **finalize_args(env, job_b, committee, [3]))
    assert market_events(env, "JobCallback", ftx) == []
    assert rewards(env, env.outsider.address) == 0


def test_post_job_with_callback_gas_too_high(env: Env) -> None:
    with reverts("JobCallbackGasTooHigh", MAX_CALLBACK_GAS + 1, MAX_CALLBACK_GAS):
        post_eoa(env, MAX_CALLBACK_GAS + 1, callback_fee_wei=0)  # checked before the payment
    job_id, _ = post_eoa(env, MAX_CALLBACK_GAS)
    assert env.market.job_callback(job_id)[0] == MAX_CALLBACK_GAS


def test_post_job_with_callback_payment_too_low(env: Env) -> None:
    limit = 100_000
    with reverts("JobPaymentTooLow") as e:
        post_eoa(env, limit, payment_wei=MIN_PAYMENT_WEI, callback_fee_wei=0)
    need = MIN_PAYMENT_WEI + callback_fee_at(env, "pending", limit)
    assert e.value.error_args == (MIN_PAYMENT_WEI, need)
    # One wei short of the minimal escrow once the fee is taken (price of the pending block).
    with reverts("JobPaymentTooLow", need - 1, need):
        post_eoa(env, limit, payment_wei=MIN_PAYMENT_WEI - 1,
                 callback_fee_wei=callback_fee_at(env, "pending", limit))
    # The remaining checks are postJob's.
    with reverts("JobInvalidQuery"):
        env.market.post_job(
            env.buyer, dataset_id=env.dataset, query="", committee_size=3, threshold=1,
            min_providers=1, timeout_s=60, payment_wei=MIN_PAYMENT_WEI,
            callback_gas_limit=limit)


def test_job_callback_fee_view(env: Env) -> None:
    assert env.market.job_callback_fee_wei(0) == 0
    price = int(env.market.contract.functions.callbackGasPriceWei().call())
    assert price >= GWEI and (price - GWEI) % 2 == 0  # 2 x base fee + 1 gwei
    assert env.market.job_callback_fee_wei(12_345) == 12_345 * price
    assert env.market.job_callback(999) == (0, 0)  # unknown job


# ============================================================================ reclaimEscrow


def test_reclaim_refunds_escrow_and_callback_fee(env: Env) -> None:
    limit = 80_000
    job_id, tx = post_eoa(env, limit, payment_wei=2 * MIN_PAYMENT_WEI, timeout_s=30)
    fee = callback_fee_at(env, tx.block_number, limit)
    job = env.market.get_job(job_id)
    assert env.market.job_callback(job_id) == (limit, fee)
    with reverts("JobDeadlineNotReached", job.deadline):
        env.market.reclaim_escrow(env.buyer, job_id)
    with reverts("JobNotBuyer"):
        env.market.reclaim_escrow(env.outsider, job_id)
    env.advance(31)
    before = env.balance(env.buyer)
    rtx = env.market.reclaim_escrow(env.buyer, job_id)
    assert env.balance(env.buyer) == before + job.escrow_wei + fee - env.fee(rtx)
    [ev] = env.market.job_refunded_events(rtx.block_number, rtx.block_number)
    assert (ev["job_id"], ev["buyer"], ev["amount_wei"]) == (
        job_id, env.buyer.address, job.escrow_wei + fee)
    assert env.market.job_callback(job_id) == (limit, 0)
    with reverts("JobNotOpen", job_id):
        env.market.reclaim_escrow(env.buyer, job_id)
