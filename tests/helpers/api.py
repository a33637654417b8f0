"""Helpers for the buyer-API tests (tests/api): the API as a ``python -m api`` process
(:class:`ApiProcess`) or in this process (:func:`inproc_api`), a bare market without node
processes (:func:`bare_market`), deployment manifests, signing, and :func:`assert_problem` for
RFC 9457 answers. :class:`ApiEnv` is the demo network with an API in front of it; the fixture
that builds it (``api_env``) lives in ``tests/api/conftest.py``."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount
from starlette.testclient import TestClient
from web3 import Web3

from api.main import create_app
from api.models import load_manifest
from offchain.chain.market import MarketClient, deploy_market
from offchain.devnet.anvil import Anvil
from offchain.devnet.network import DemoNetwork, DemoOptions, validate
from offchain.devnet.rpc import dev_accounts

PROBLEM = "https://mpc-market.example/problems/"
READY_TIMEOUT_S = 60.0
PRICE_WEI = 10**15  # DemoNetwork's (and bare_market's) minPaymentWei


def write_manifest(path: Path, *, chain_id: int, rpc_url: str, market: str, block: int,
                   nodes: list[dict[str, Any]], columns: list[str]) -> Path:
    """A deployment manifest as ``mpc-market up`` writes it; dataset ``wdbc`` offered by every
    node, plus a string column ``site`` that no query may use."""
    providers = [n["address"] for n in nodes]
    manifest = {
        "chain_id": chain_id, "rpc_url": rpc_url, "api_url": None,
        "contracts": {"MPCMarket": {"address": market, "block": block}},
        "nodes": [{"address": n["address"], "endpoint": n["endpoint"], "datasets": ["wdbc"]}
                  for n in nodes],
        "datasets": [{"name": "wdbc",
                      "columns": [{"name": c, "type": "number"} for c in columns]
                      + [{"name": "site", "type": "string"}],
                      "providers": providers}],
    }
    path.write_text(json.dumps(manifest, indent=1))
    return path


class ApiProcess:
    """``python -m api`` as a subprocess; ``url`` from its ready line; stopped on close.
    Raises RuntimeError (with the log's tail) if it does not print its ready line within
    READY_TIMEOUT_S."""

    def __init__(self, manifest: Path, state_dir: Path, log: Path) -> None:
        self.log = log
        self._log_file = open(log, "a")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--deployment", str(manifest), "--state-dir",
             str(state_dir), "--poll-interval", "0.1"],
            stdout=subprocess.PIPE, stderr=self._log_file, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], READY_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise RuntimeError(f"the API did not start: {log.read_text()[-2000:]}")
        self.ready = json.loads(line)
        self.url: str = self.ready["url"]
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def close(self) -> None:
        if hasattr(self, "client"):
            self.client.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log_file.close()


@dataclass
class BareMarket:
    """A fresh anvil with a deployed market and 3 registered nodes (no node processes)."""

    anvil: Anvil
    w3: Web3
    market: MarketClient
    nodes: list[LocalAccount]
    buyer: LocalAccount


def bare_market() -> BareMarket:
    """Start anvil and deploy; the caller stops ``anvil``."""
    anvil = Anvil([]).start()
    w3 = Web3(Web3.HTTPProvider(anvil.rpc_url))
    accounts = dev_accounts(6)
    market = deploy_market(w3, accounts[0], min_stake_wei=10**18, exit_delay_s=7200,
                           min_payment_wei=PRICE_WEI, max_timeout_s=3600, phase_blocks=5)
    nodes = accounts[1:4]
    for i, node in enumerate(nodes):
        market.register(node, bytes([i + 1]) * 32, f"http://127.0.0.1:{9 + i}", 10**18)
    return BareMarket(anvil, w3, market, nodes, accounts[5])


def bare_manifest(path: Path, bare: BareMarket) -> Path:
    return write_manifest(
        path, chain_id=bare.w3.eth.chain_id, rpc_url=bare.anvil.rpc_url,
        market=bare.market.address, block=bare.market.deployment.block_number,
        nodes=[{"address": n.address, "endpoint": f"http://127.0.0.1:{9 + i}"}
               for i, n in enumerate(bare.nodes)],
        columns=["mean_radius", "mean_area"])


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    """A raw JSON-RPC call; returns the whole response (``result`` or ``error``)."""
    return w3.provider.make_request(method, list(params))  # type: ignore[arg-type]


def assert_problem(r: httpx.Response, status: int, slug: str, field: str | None = None) -> None:
    """``r`` is an RFC 9457 problem of kind ``slug`` with ``status``, about this request's
    path, and (if ``field``) naming ``field`` among its ``errors``."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/problem+json", r.headers
    body = r.json()
    assert body["type"] == PROBLEM + slug, body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert body["instance"] == r.request.url.path
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body


def sign(account: LocalAccount, tx: dict[str, Any]) -> str:
    """The raw signed transaction, 0x-hex."""
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


@contextmanager
def inproc_api(manifest: Path, state_dir: Path) -> Iterator[TestClient]:
    """The API app in this process (so that a test can monkeypatch its internals)."""
    app = create_app(load_manifest(manifest), state_dir=state_dir, poll_interval_s=0.1)
    with TestClient(app) as client:
        yield client


@dataclass
class ApiEnv:
    """The demo network (anvil, the market, 5 provider node processes) with a ``python -m api``
    in front of it, and the buyers that tests sign with."""

    net: DemoNetwork
    api: ApiProcess
    manifest: Path
    state_dir: Path
    tmp: Path
    buyer: LocalAccount  # dev account 2 (DemoNetwork uses 0 and 1)
    other: LocalAccount  # dev account 3

    @property
    def http(self) -> httpx.Client:
        return self.api.client

    def restart_api(self) -> None:
        self.api.close()
        self.api = ApiProcess(self.manifest, self.state_dir, self.tmp / "api.log")

    def job_count(self) -> int:
        return len(self.net.market.job_posted_events(0))

    def nonce(self, account: LocalAccount) -> int:
        return int(self.net.w3.eth.get_transaction_count(account.address, "pending"))

    def prepare(self, **body: Any) -> httpx.Response:
        return self.http.post("/v1/jobs/prepare", json={"dataset": "wdbc",
                                                         "query": "count",
                                                         "buyer": self.buyer.address, **body})

    def prepared_tx(self, **body: Any) -> dict[str, Any]:
        r = self.prepare(**body)
        assert r.status_code == 200, r.text
        return dict(r.json()["tx"])


@contextmanager
def api_env_running(tmp: Path) -> Iterator[ApiEnv]:
    """Start the demo network and an API process in front of it (files under ``tmp``); stop
    both on exit."""
    opts = DemoOptions(timeout_s=120)
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows) as net:
        manifest = write_manifest(
            tmp / "deployment.json", chain_id=net.chain_id, rpc_url=net.rpc_url,
            market=net.market.address, block=net.market.deployment.block_number,
            nodes=net.nodes.ready, columns=header)
        api = ApiProcess(manifest, tmp / "state", tmp / "api.log")
        accounts = dev_accounts(4)
        env = ApiEnv(net, api, manifest, tmp / "state", tmp, accounts[2], accounts[3])
        try:
            yield env
        finally:
            env.api.close()
