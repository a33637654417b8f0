"""The shared test environment: constants of the test deployment, the :class:`Env` over one
market deployment on anvil, and small assertion helpers. Fixtures that build it live in
``tests/conftest.py``."""


from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import Web3

from offchain.chain.beacon import BeaconClient
from offchain.chain.market import ContractRevert, MarketClient, TxResult, deploy_market
from offchain.devnet.compile import compile_contracts
from offchain.encoding import eip712
from tests.helpers.beacon_driver import assign_job_committee, rpc

ETH = 10**18
MIN_STAKE_WEI = ETH
MIN_PAYMENT_WEI = 10**15
MAX_TIMEOUT_S = 3_600
EXIT_DELAY_S = 7_200
N_ACCOUNTS = 40
N_REGISTERED = 14


def by_address(accounts: Sequence[LocalAccount]) -> list[LocalAccount]:
    return sorted(accounts, key=lambda a: int(a.address, 16))


def callback_gas(w3: Web3, tx_hash: str, callee: str) -> list[int]:
    """Gas handed to each call into ``callee`` in transaction ``tx_hash``
    (debug_traceTransaction with the callTracer)."""
    trace = rpc(w3, "debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
    out: list[int] = []

    def walk(frame: dict[str, Any]) -> None:
        for call in frame.get("calls", []):
            if to_checksum_address(call["to"]) == callee:
                out.append(int(call["gas"], 16))
            walk(call)

    walk(trace)
    return out


@dataclass
class Env:
    """A deployed market with registered nodes, plus helpers to build valid job data."""

    w3: Web3
    market: MarketClient
    beacon: BeaconClient
    buyer: LocalAccount  # also the deployer
    outsider: LocalAccount  # unregistered, submits transactions
    nodes: list[LocalAccount]  # registered, strictly ascending by address
    unregistered: list[LocalAccount]  # never registered, ascending
    dataset: bytes = field(default_factory=lambda: eip712.dataset_id("breast_cancer"))
    query: str = "mean(radius)"

    # -- roles
    def providers(self, n: int = 5) -> list[LocalAccount]:
        return self.nodes[4 : 4 + n]

    def account(self, address: str) -> LocalAccount:
        """The dev account with ``address``."""
        return next(a for a in [*self.nodes, *self.unregistered] if a.address == address)

    def non_member(self, committee: Sequence[LocalAccount], above: bool = True) -> LocalAccount:
        """A registered node outside ``committee``: the highest one (``above``) or the lowest."""
        members = {m.address for m in committee}
        outside = [n for n in self.nodes if n.address not in members]
        return outside[-1] if above else outside[0]

    # -- chain
    def fresh_market(self, **kw: Any) -> MarketClient:
        """A second deployment with the session's parameters (no nodes registered);
        ``kw`` overrides deploy_market's beacon parameters."""
        return deploy_market(
            self.w3,
            self.buyer,
            min_stake_wei=MIN_STAKE_WEI,
            exit_delay_s=EXIT_DELAY_S,
            min_payment_wei=MIN_PAYMENT_WEI,
            max_timeout_s=MAX_TIMEOUT_S,
            abi=self.market.abi,
            bytecode=compile_contracts()["MPCMarket"].bytecode,
            **kw,
        )

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
        committee_size: int = 3,
        *,
        threshold: int = 1,
        min_providers: int = 3,
        timeout_s: int = 600,
        payment_wei: int = 3 * MIN_PAYMENT_WEI + 2,
        query: str | None = None,
    ) -> tuple[int, TxResult]:
        """Post a job (its committee is not drawn yet: see :meth:`assign`)."""
        return self.market.post_job(
            self.buyer,
            dataset_id=self.dataset,
            query=self.query if query is None else query,
            committee_size=committee_size,
            threshold=threshold,
            min_providers=min_providers,
            timeout_s=timeout_s,
            payment_wei=payment_wei,
        )

    def assign(self, job_id: int) -> list[LocalAccount]:
        """Run the job's beacon round (unless final) and assign its committee; returns the
        members' accounts, ascending (the order finalizeJob expects)."""
        candidates = [*self.nodes, *self.unregistered]  # the first 2T+1 Active ones take part
        committee = assign_job_committee(self.beacon, job_id, candidates, self.outsider)
        return [self.account(a) for a in committee]

    def post_assigned(self, committee_size: int = 3, **kw: Any) -> tuple[int, list[LocalAccount]]:
        """:meth:`post` + :meth:`assign`: (job id, committee accounts ascending)."""
        job_id, _ = self.post(committee_size, **kw)
        return job_id, self.assign(job_id)

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


@contextmanager
def reverts(name: str, *args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a ContractRevert named ``name`` (and, if given, with exactly ``args``)."""
    with pytest.raises(ContractRevert) as excinfo:
        yield excinfo
    assert excinfo.value.error_name == name, str(excinfo.value)
    if args:
        assert excinfo.value.error_args == args, str(excinfo.value)
