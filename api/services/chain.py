"""The API's connection to the chain: one Web3 (HTTP) to the manifest's RPC URL and a
:class:`~offchain.chain.market.MarketClient` for the deployed market.

Every RPC call from a request handler goes through :meth:`Chain.run`: it runs the blocking web3
call in a worker thread (the event loop never waits on the network) and turns a connection
failure into the ``chain-unavailable`` problem (502). Mined receipts and block timestamps never
change, so they are cached.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, TypeVar

import requests
from web3 import Web3
from web3.exceptions import ProviderConnectionError, TimeExhausted

from api.models import Manifest
from api.problems import ProblemError
from offchain.chain.artifacts import market_abi
from offchain.chain.market import MarketClient, MarketConfig
from offchain.chain.tx import ErrorDecoder
from offchain.errors import MarketError

T = TypeVar("T")

RPC_TIMEOUT_S = 10.0

#: Exceptions that mean "the chain node cannot be reached", not "the request was wrong".
UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
               ProviderConnectionError, ConnectionError, TimeoutError, TimeExhausted)


class StartupError(MarketError, RuntimeError):
    """The manifest does not match the chain (one-line message)."""


class Chain:
    """The market on the manifest's chain. :meth:`connect` (blocking) checks the manifest
    against the chain and reads the market's immutable parameters."""

    def __init__(self, manifest: Manifest, abi: list[dict[str, Any]] | None = None) -> None:
        self.manifest = manifest
        self.address = manifest.market.address
        self.deploy_block = manifest.market.block
        self.chain_id = manifest.chain_id
        self.w3 = Web3(Web3.HTTPProvider(manifest.rpc_url,
                                         request_kwargs={"timeout": RPC_TIMEOUT_S},
                                         exception_retry_configuration=None))
        self.abi: list[dict[str, Any]] = abi if abi is not None else market_abi()
        self.errors = ErrorDecoder(self.abi)
        self._market: MarketClient | None = None
        self._config: MarketConfig | None = None
        self._receipts: dict[str, tuple[int, int, int]] = {}  # hash -> (block, gas, status)
        self._timestamps: dict[int, int] = {}

    @property
    def market(self) -> MarketClient:
        if self._market is None:
            raise RuntimeError("Chain.connect() was not called")
        return self._market

    @property
    def config(self) -> MarketConfig:
        if self._config is None:
            raise RuntimeError("Chain.connect() was not called")
        return self._config

    def connect(self) -> None:
        """Check that the RPC answers with the manifest's chain id and that a contract exists at
        the market address; read its parameters. Raises StartupError."""
        url = self.manifest.rpc_url
        try:
            chain_id = int(self.w3.eth.chain_id)
        except UNREACHABLE as exc:
            raise StartupError(f"chain RPC {url} is unreachable: {type(exc).__name__}") from None
        if chain_id != self.chain_id:
            raise StartupError(f"chain RPC {url} serves chain {chain_id}, the manifest says "
                               f"{self.chain_id}")
        if not self.w3.eth.get_code(self.address):  # type: ignore[arg-type]
            raise StartupError(f"no contract at MPCMarket address {self.address} on chain "
                               f"{chain_id}")
        self._market = MarketClient(self.w3, self.address, self.abi)
        try:
            self._config = self._market.config()
        except Exception as exc:
            raise StartupError(f"{self.address} does not answer as an MPCMarket: {exc}") from None

    async def run(self, fn: Callable[..., T], *args: Any, executor: Executor | None = None) -> T:
        """``fn(*args)`` in a worker thread (of ``executor``, default: the loop's default
        executor); an unreachable chain becomes a 502 problem."""
        try:
            if executor is not None:
                return await asyncio.get_running_loop().run_in_executor(
                    executor, functools.partial(fn, *args))
            return await asyncio.to_thread(fn, *args)
        except UNREACHABLE as exc:
            raise ProblemError("chain-unavailable",
                               f"the chain node at {self.manifest.rpc_url} did not answer "
                               f"({type(exc).__name__})") from None

    # ------------------------------------------------------------------ cached reads

    def receipt_info(self, tx_hash: str) -> tuple[int, int, int]:
        """(block, gas used, status) of a mined transaction (blocking, cached)."""
        info = self._receipts.get(tx_hash)
        if info is None:
            r = self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
            info = (int(r["blockNumber"]), int(r["gasUsed"]), int(r["status"]))
            self._receipts[tx_hash] = info
        return info

    def block_timestamp(self, number: int) -> int:
        """Timestamp (unix s) of block ``number`` (blocking, cached)."""
        ts = self._timestamps.get(number)
        if ts is None:
            ts = int(self.w3.eth.get_block(number)["timestamp"])
            self._timestamps[number] = ts
        return ts
