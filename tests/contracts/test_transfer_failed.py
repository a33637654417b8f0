"""The market's ETH payouts to an account that refuses ETH revert with MarketTransferFailed and
change nothing (checks-effects-interactions: the whole transaction reverts, escrow/stake stay put).

The refusing account is contracts/test/EtherRejecter.sol, a forwarder whose receive() reverts,
acting as a buyer (reclaimEscrow) and as a node (withdrawStake). withdrawRewards to such an
account cannot be reached: rewards go only to committee signers and beacon revealers, and a
contract can produce neither the ECDSA signature a result needs nor the BeaconCommit signature
that makes it a beacon participant.
"""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import ContractCustomError

from offchain.chain.market import decode_revert
from offchain.devnet.compile import compile_contracts
from offchain.encoding import eip712
from offchain.types import JobStatus, NodeStatus
from tests.helpers.env import EXIT_DELAY_S, MIN_PAYMENT_WEI, MIN_STAKE_WEI, Env


@pytest.fixture(scope="module")
def rejecter_artifact() -> Any:
    return compile_contracts(include_tests=True)["EtherRejecter"]


def deploy_rejecter(env: Env, artifact: Any) -> Any:
    factory = env.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx_hash = factory.constructor(env.market.address).transact({"from": env.buyer.address})
    address = env.w3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"]
    return env.w3.eth.contract(address=address, abi=artifact.abi)


def forward(env: Env, rejecter: Any, call: Any, value: int = 0) -> None:
    data = call._encode_transaction_data()
    tx_hash = rejecter.functions.forward(data).transact({"from": env.buyer.address, "value": value})
    assert env.w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1


def forward_reverts(env: Env, rejecter: Any, call: Any) -> str:
    data = call._encode_transaction_data()
    with pytest.raises(ContractCustomError) as excinfo:
        rejecter.functions.forward(data).estimate_gas({"from": env.buyer.address})
    raw = excinfo.value.data
    return str(decode_revert(env.market.abi, bytes.fromhex(str(raw)[2:])))


def test_reclaim_to_a_buyer_refusing_eth(env: Env, rejecter_artifact: Any) -> None:
    rejecter = deploy_rejecter(env, rejecter_artifact)
    fns = env.market.contract.functions
    forward(
        env,
        rejecter,
        fns.postJob(eip712.dataset_id("d"), "count", 3, 1, 1, 60),
        value=MIN_PAYMENT_WEI,
    )
    job_id = env.market.job_count()
    assert env.market.get_job(job_id).buyer == rejecter.address
    env.advance(61)
    assert forward_reverts(env, rejecter, fns.reclaimEscrow(job_id)) == "MarketTransferFailed()"
    assert env.market.get_job(job_id).status is JobStatus.OPEN  # nothing changed
    assert env.balance(env.market.address) >= MIN_PAYMENT_WEI


def test_withdraw_stake_to_a_node_refusing_eth(env: Env, rejecter_artifact: Any) -> None:
    rejecter = deploy_rejecter(env, rejecter_artifact)
    fns = env.market.contract.functions
    forward(env, rejecter, fns.register(b"\x07" * 32, "http://127.0.0.1:1"), value=MIN_STAKE_WEI)
    forward(env, rejecter, fns.requestExit())
    env.advance(EXIT_DELAY_S + 1)
    assert forward_reverts(env, rejecter, fns.withdrawStake()) == "MarketTransferFailed()"
    node = env.market.get_node(rejecter.address)
    assert node.stake_wei == MIN_STAKE_WEI and node.status is NodeStatus.EXITING  # staked
