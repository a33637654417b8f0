"""libraries/ExactGasCall.sol through both of its callers: a callback to an address without code
(an EOA) is not a delivery, for jobs (JobCallback ok = false) and for randomness requests
(RandomnessFulfilled callbackOk = false, request status CallbackFailed). Chainlink's
CallWithExactGas checks extcodesize for the same reason: a CALL to a code-less address succeeds
without running anything."""

from __future__ import annotations

from offchain.chain.beacon import RequestStatus
from offchain.chain.market import JobStatus
from tests.contracts.test_beacon import committed, fulfilled_event, open_round
from tests.contracts.test_callbacks import finalize_args, market_events, post_eoa, rewards
from tests.helpers.env import Env


def test_job_callback_to_an_account_without_code_is_not_delivered(env: Env) -> None:
    job_id, _ = post_eoa(env, 50_000)
    assert env.w3.eth.get_code(env.buyer.address) == b""
    committee = env.assign(job_id)
    finalizer = env.unregistered[2]
    tx = env.market.finalize_job(finalizer, **finalize_args(env, job_id, committee, [1, 2]))
    [cb] = market_events(env, "JobCallback", tx)
    assert cb["ok"] is False
    assert env.market.get_job(job_id).status == JobStatus.FINALIZED  # finalized and paid anyway
    assert rewards(env, finalizer.address) == cb["feeWei"] > 0


def test_randomness_callback_to_an_account_without_code_is_not_delivered(env: Env) -> None:
    req, rid = open_round(env, callback_gas_limit=50_000)
    assert env.w3.eth.get_code(env.buyer.address) == b""
    committed(env, rid).reveal(env.outsider)
    ev = fulfilled_event(env, env.beacon.fulfill(env.outsider, req))
    assert ev["callbackOk"] is False
    assert env.beacon.get_request(req).status is RequestStatus.CALLBACK_FAILED
    env.beacon.randomness_of(req)  # the value stays readable
