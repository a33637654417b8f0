"""Shared fixtures: one real anvil devnet per test session, the compiled MPCMarket, and a market
deployment restored to a clean snapshot (``evm_snapshot`` / ``evm_revert``) for every test."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from web3 import Web3

from offchain import eip712
from offchain.chain.compile import CompiledContract, compile_contracts
from offchain.chain.devnet import Anvil, dev_accounts
from offchain.chain.market import ContractRevert, MarketClient, TxResult, deploy_market

ETH = 10**18
MIN_STAKE_WEI = ETH
MIN_PAYMENT_WEI = 10**15
MAX_TIMEOUT_S = 3_600
EXIT_DELAY_S = 7_200
N_ACCOUNTS = 40
N_REGISTERED = 14


def by_address(accounts: Sequence[LocalAccount]) -> list[LocalAccount]:
    return sorted(accounts, key=lambda a: int(a.address, 16))


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


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    resp = w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
    if "error" in resp:
        raise RuntimeError(f"{method}: {resp['error']}")
    return resp["result"]


@dataclass
class Env:
    """A deployed market with registered nodes, plus helpers to build valid job data."""

    w3: Web3
    market: MarketClient
    buyer: LocalAccount  # also the deployer
    outsider: LocalAccount  # unregistered, submits transactions
    nodes: list[LocalAccount]  # registered, strictly ascending by address
    unregistered: list[LocalAccount]  # never registered, ascending
    dataset: bytes = field(default_factory=lambda: eip712.dataset_id("breast_cancer"))
    query: str = "mean(radius)"

    # -- roles
    def committee(self, n: int = 3) -> list[LocalAccount]:
        return self.nodes[:n]

    def providers(self, n: int = 5) -> list[LocalAccount]:
        return self.nodes[4 : 4 + n]

    @property
    def spare(self) -> list[LocalAccount]:
        """Registered nodes in neither the default committee nor the default providers."""
        return self.nodes[9:]

    # -- chain
    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        rpc(self.w3, "evm_increaseTime", seconds)
        rpc(self.w3, "evm_mine")

    def set_next_timestamp(self, ts: int) -> None:
        rpc(self.w3, "evm_setNextBlockTimestamp", ts)

    def balance(self, account: LocalAccount | str) -> int:
        addr = account if isinstance(account, str) else account.address
        return int(self.w3.eth.get_balance(addr))  # type: ignore[arg-type]

    @staticmethod
    def fee(tx: TxResult) -> int:
        return int(tx.receipt["gasUsed"]) * int(tx.receipt["effectiveGasPrice"])

    # -- jobs
    def post(
        self,
        committee: Sequence[LocalAccount] | None = None,
        *,
        threshold: int = 1,
        min_providers: int = 3,
        timeout_s: int = 600,
        payment_wei: int = 3 * MIN_PAYMENT_WEI + 2,
        query: str | None = None,
    ) -> tuple[int, TxResult]:
        members = by_address(committee if committee is not None else self.committee())
        return self.market.post_job(
            self.buyer,
            dataset_id=self.dataset,
            query=self.query if query is None else query,
            committee=[m.address for m in members],
            threshold=threshold,
            min_providers=min_providers,
            timeout_s=timeout_s,
            payment_wei=payment_wei,
        )

    def inputs(
        self, job_id: int, providers: Sequence[LocalAccount] | None = None
    ) -> list[tuple[str, bytes, eip712.Sig]]:
        domain = self.market.domain()
        out = []
        for p in by_address(providers if providers is not None else self.providers()):
            commitment = eip712.dataset_id(f"commitment of {p.address} for {job_id}")
            out.append(
                (p.address, commitment, eip712.sign_input_commitment(p, domain, job_id, commitment))
            )
        return out

    @staticmethod
    def root_of(account: LocalAccount) -> bytes:
        return eip712.dataset_id(f"transcript of {account.address}")

    def signatures(
        self,
        job_id: int,
        signers: Sequence[LocalAccount],
        aggregates: Sequence[int],
        inputs: Sequence[tuple[str, bytes, eip712.Sig]],
        *,
        sort: bool = True,
    ) -> list[tuple[bytes, eip712.Sig]]:
        domain = self.market.domain()
        rh = eip712.result_hash(aggregates)
        ih = eip712.inputs_hash([(p, c) for p, c, _ in inputs])
        ordered = by_address(signers) if sort else list(signers)
        return [
            (
                self.root_of(s),
                eip712.sign_result_commitment(s, domain, job_id, rh, ih, self.root_of(s)),
            )
            for s in ordered
        ]


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
        w3=w3, market=market, buyer=buyer, outsider=outsider, nodes=nodes, unregistered=unregistered
    )


@pytest.fixture
def env(_base_env: Env) -> Iterator[Env]:
    """The session deployment, reverted to its post-registration state after each test."""
    snapshot = rpc(_base_env.w3, "evm_snapshot")
    try:
        yield _base_env
    finally:
        rpc(_base_env.w3, "evm_revert", snapshot)


@contextmanager
def reverts(name: str, *args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a ContractRevert named ``name`` (and, if given, with exactly ``args``)."""
    with pytest.raises(ContractRevert) as excinfo:
        yield excinfo
    assert excinfo.value.error_name == name, str(excinfo.value)
    if args:
        assert excinfo.value.error_args == args, str(excinfo.value)
