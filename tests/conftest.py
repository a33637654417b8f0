"""Tiers and shared fixtures.

Every test gets one tier marker from the folder it lives in (``pytest -m unit`` runs the fast
tier alone): ``tests/unit`` -> ``unit`` (no chain, no processes), ``tests/contracts`` -> ``chain``
(one anvil, a snapshot per test), ``tests/{api,audit,e2e}`` -> ``e2e`` (real node processes on
loopback). A unit test that asks for a chain fixture is an error, not a slow unit test.

Fixtures: one real anvil devnet per test session, the compiled MPCMarket, and a market
deployment restored to a clean snapshot (``evm_snapshot`` / ``evm_revert``) for every test.

Committees are drawn on chain from a beacon round's output: :meth:`Env.assign` runs the job's
round in-process (tests/beacon_driver.py: the first 2T+1 Active nodes deal, commit and reveal)
and records the committee with ``assignCommittee``; it returns the drawn members' accounts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from offchain.chain.beacon import BeaconClient
from offchain.chain.market import deploy_market
from offchain.devnet.anvil import Anvil
from offchain.devnet.compile import CompiledContract, compile_contracts
from offchain.devnet.network import DemoNetwork, DemoOptions, validate
from offchain.devnet.rpc import dev_accounts
from tests.helpers.beacon_driver import rpc
from tests.helpers.env import (
    EXIT_DELAY_S,
    MAX_TIMEOUT_S,
    MIN_PAYMENT_WEI,
    MIN_STAKE_WEI,
    N_ACCOUNTS,
    N_REGISTERED,
    Env,
    by_address,
)


@pytest.fixture(scope="module")
def network() -> Iterator[DemoNetwork]:
    """The real demo network (anvil, the market, 5 node processes), one per test module."""
    opts = DemoOptions(timeout_s=120)
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows) as net:
        yield net


@pytest.fixture(scope="session")
def market_artifact() -> CompiledContract:
    return compile_contracts()["MPCMarket"]


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil(["--accounts", str(N_ACCOUNTS)]) as node:
        yield node


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.rpc_url))


@pytest.fixture(scope="session")
def _base_env(w3: Web3, market_artifact: CompiledContract) -> Env:
    accounts = dev_accounts(N_ACCOUNTS)
    buyer, outsider = accounts[0], accounts[1]
    nodes = by_address(accounts[2 : 2 + N_REGISTERED])
    unregistered = by_address(accounts[2 + N_REGISTERED :])
    market = deploy_market(
        w3,
        buyer,
        min_stake_wei=MIN_STAKE_WEI,
        exit_delay_s=EXIT_DELAY_S,
        min_payment_wei=MIN_PAYMENT_WEI,
        max_timeout_s=MAX_TIMEOUT_S,
        abi=market_artifact.abi,
        bytecode=market_artifact.bytecode,
    )
    for i, node in enumerate(nodes):
        market.register(node, bytes([i + 1]) * 32, f"http://127.0.0.1:{9000 + i}", MIN_STAKE_WEI)
    return Env(
        w3=w3,
        market=market,
        beacon=BeaconClient(market),
        buyer=buyer,
        outsider=outsider,
        nodes=nodes,
        unregistered=unregistered,
    )


@pytest.fixture
def env(_base_env: Env) -> Iterator[Env]:
    """The session deployment, reverted to its post-registration state after each test."""
    snapshot = rpc(_base_env.w3, "evm_snapshot")
    try:
        yield _base_env
    finally:
        rpc(_base_env.w3, "evm_revert", snapshot)


_TESTS = Path(__file__).resolve().parent
_TIER_OF_FOLDER = {"unit": "unit", "contracts": "chain", "api": "e2e", "audit": "e2e", "e2e": "e2e"}
_CHAIN_FIXTURES = {"anvil", "w3", "env", "_base_env", "network", "market_artifact"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier; refuse chain fixtures in the unit tier."""
    for item in items:
        folder = Path(str(item.path)).resolve().relative_to(_TESTS).parts[0]
        tier = _TIER_OF_FOLDER.get(folder)
        if tier is None:
            raise pytest.UsageError(
                f"{item.nodeid}: tests live in one of {sorted(_TIER_OF_FOLDER)}"
            )
        item.add_marker(getattr(pytest.mark, tier))
        if tier == "unit" and _CHAIN_FIXTURES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid}: a unit test may not use a chain fixture")
