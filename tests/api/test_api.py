"""The buyer API (api/) as a real ``python -m api`` process in front of the real demo network
(anvil, the deployed market, 5 provider node processes): a job posted over HTTP (prepare, sign
locally, submit) finishes with the plaintext answer; idempotent retries; every error is a
problem+json with the right status and type; pagination and filters; restart from the chain;
expiry and refund; an unreachable chain."""

from __future__ import annotations

import json
import math
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from schemathesis.core.result import Ok
from starlette.testclient import TestClient
from web3 import Web3
from web3.exceptions import TransactionNotFound

import offchain.audit
from api import jobs
from api.app import create_app
from api.models import load_manifest
from offchain.chain.market import MarketClient, deploy_market, encode_post_job
from offchain.devnet.anvil import Anvil, dev_accounts
from offchain.devnet.network import DEFAULT_DATA, DemoNetwork, DemoOptions, validate
from offchain.devnet.reference import plaintext_statistic
from offchain.encoding import eip712
from offchain.encoding.query import parse_query
from offchain.node.datasource import open_source
from offchain.types import JobStatus

PROBLEM = "https://mpc-market.example/problems/"
READY_TIMEOUT_S = 60.0
PRICE_WEI = 10**15  # DemoNetwork's (and bare_market's) minPaymentWei


# ----------------------------------------------------------------------------- helpers


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
    """``python -m api`` as a subprocess; ``url`` from its ready line; stopped on close."""

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
    return w3.provider.make_request(method, list(params))  # type: ignore[arg-type]


def assert_problem(r: httpx.Response, status: int, slug: str, field: str | None = None) -> None:
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
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


@contextmanager
def inproc_api(manifest: Path, state_dir: Path) -> Iterator[TestClient]:
    """The API app in this process (so that a test can monkeypatch its internals)."""
    app = create_app(load_manifest(manifest), state_dir=state_dir, poll_interval_s=0.1)
    with TestClient(app) as client:
        yield client


# ----------------------------------------------------------------------------- fixtures


@dataclass
class Env:
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


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("api")
    opts = DemoOptions(timeout_s=120)
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows) as net:
        manifest = write_manifest(
            tmp / "deployment.json", chain_id=net.chain_id, rpc_url=net.rpc_url,
            market=net.market.address, block=net.market.deployment.block_number,
            nodes=net.nodes.ready, columns=header)
        api = ApiProcess(manifest, tmp / "state", tmp / "api.log")
        accounts = dev_accounts(4)
        e = Env(net, api, manifest, tmp / "state", tmp, accounts[2], accounts[3])
        try:
            yield e
        finally:
            e.api.close()


# ----------------------------------------------------------------------------- catalogue


def test_health_datasets_and_nodes(env: Env) -> None:
    h = env.http.get("/v1/health").json()
    assert h["status"] == "ok" and h["chain_id"] == env.net.chain_id
    assert h["market"] == env.net.market.address and h["block"] >= h["indexed_block"] > 0

    datasets = env.http.get("/v1/datasets").json()["items"]
    assert [d["name"] for d in datasets] == ["wdbc"]
    wdbc = datasets[0]
    assert wdbc["dataset_id"] == "0x" + eip712.dataset_id("wdbc").hex()
    assert wdbc["price_wei"] == str(PRICE_WEI)
    assert wdbc["active_providers"] == 5 and len(wdbc["providers"]) == 5
    assert {"name": "mean_radius", "type": "number"} in wdbc["columns"]

    nodes = env.http.get("/v1/nodes").json()["items"]
    ready = {n["address"]: n["endpoint"] for n in env.net.nodes.ready}
    assert {n["address"] for n in nodes} == set(ready)
    for n in nodes:
        assert n["status"] == "active" and n["stake_wei"] == str(10**18)
        assert n["endpoint"] == ready[n["address"]] and n["datasets"] == ["wdbc"]
        assert n["exit_at"] is None and n["jobs_served"] >= 0


# ----------------------------------------------------------------------------- jobs


def test_jobs_over_http_match_plaintext(env: Env) -> None:
    """prepare -> sign with a dev account -> POST -> GET ?wait: two jobs (a float and a
    histogram statistic) finish, and their results equal the plaintext statistics."""
    served_before = {n["address"]: n["jobs_served"]
                     for n in env.http.get("/v1/nodes").json()["items"]}
    # the histogram pays 4x the price, as a decimal string
    payments = {"var:mean_texture": None, "histogram:mean_radius:5,10,15,20,25,30": PRICE_WEI * 4}
    posted = {}
    for query, payment in payments.items():
        body: dict[str, Any] = {"query": query}
        if payment is not None:
            body["payment_wei"] = str(payment)
        prep = env.prepare(**body)
        assert prep.status_code == 200, prep.text
        tx, job = prep.json()["tx"], prep.json()["job"]
        assert tx["to"] == env.net.market.address and tx["type"] == "0x2"
        assert tx["chainId"] == hex(env.net.chain_id) and tx["from"] == env.buyer.address
        assert job["min_providers"] == 5 and job["committee_size"] == 3
        assert job["query"] == str(parse_query(query))
        r = env.http.post("/v1/jobs", json={"signed_tx": sign(env.buyer, tx)})
        assert r.status_code == 201, r.text
        out = r.json()
        assert r.headers["location"] == out["links"]["self"] == f"/v1/jobs/{out['job_id']}"
        assert out["links"]["audit"] == f"/v1/jobs/{out['job_id']}/audit"
        posted[query] = out

    for query, out in posted.items():
        r = env.http.get(out["links"]["self"], params={"wait": 60}, timeout=70)
        assert r.status_code == 200, r.text
        job = r.json()
        assert job["status"] == "finalized", job
        assert job["buyer"] == env.buyer.address and job["dataset"] == "wdbc"
        assert len(job["committee"]) == 3 and job["committee_round"] >= job["seed_round"] >= 1
        res = job["result"]
        spec = parse_query(query)
        plain = plaintext_statistic(spec, open_source(DEFAULT_DATA).read_columns(spec.columns))
        if isinstance(plain, float):
            assert math.isclose(res["statistic"], plain, rel_tol=1e-9), (res, plain)
        else:
            assert res["statistic"] == plain
        assert res["result_hash"] == "0x" + eip712.result_hash(
            [int(a) for a in res["aggregates"]]).hex()
        assert res["provider_count"] == 5 and len(res["signers"]) >= 2
        stored = env.net.market.get_job(out["job_id"])
        assert stored.status is JobStatus.FINALIZED and stored.signer_mask == res["signer_mask"]
        names = [t["name"] for t in job["transactions"]]
        assert names[0] == "postJob" and names[-1] == "finalizeJob"
        assert {"commitRound", "reveal", "assignCommittee"} <= set(names)
        assert job["transactions"][0]["hash"] == out["tx_hash"]
        assert all(t["gas_used"] > 0 and t["timestamp"] > 0 for t in job["transactions"])
        assert job["escrow_wei"] == str(payments[query] or PRICE_WEI)

    served = {n["address"]: n["jobs_served"] for n in env.http.get("/v1/nodes").json()["items"]}
    signed = [a for out in posted.values()
              for a in env.http.get(out["links"]["self"]).json()["result"]["signers"]]
    for address, count in served.items():
        assert count == served_before[address] + signed.count(address)
    audit = env.http.get(posted["var:mean_texture"]["links"]["audit"], timeout=60)
    assert audit.status_code == 200, audit.text
    assert audit.json()["ok"] is True, audit.text


def test_idempotent_retry_creates_one_job(env: Env) -> None:
    """The same Idempotency-Key and body: the stored response, replayed, no second JobPosted
    (also after a restart: the store is on disk); the same signed transaction without a key:
    the job it already created; the key with another body: 422."""
    signed = sign(env.buyer, env.prepared_tx())
    headers = {"Idempotency-Key": "retry-1"}
    first = env.http.post("/v1/jobs", json={"signed_tx": signed}, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    count = env.job_count()
    again = env.http.post("/v1/jobs", json={"signed_tx": signed}, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    no_key = env.http.post("/v1/jobs", json={"signed_tx": signed})
    assert no_key.status_code == 200 and no_key.json() == first.json()
    assert env.job_count() == count

    other = sign(env.buyer, env.prepared_tx(query="sum:mean_area"))
    assert_problem(env.http.post("/v1/jobs", json={"signed_tx": other}, headers=headers),
                   422, "idempotency-key-reuse", "header.Idempotency-Key")
    assert_problem(env.http.post("/v1/jobs", json={"signed_tx": signed},
                                 headers={"Idempotency-Key": "bad key with spaces"}),
                   422, "validation-error", "header.Idempotency-Key")

    job_id = first.json()["job_id"]
    env.restart_api()  # a fresh process: the index is rebuilt from the chain
    replay = env.http.post("/v1/jobs", json={"signed_tx": signed}, headers=headers)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert env.job_count() == count
    job = env.http.get(f"/v1/jobs/{job_id}", params={"wait": 60}, timeout=70).json()
    assert job["status"] == "finalized" and job["result"]["statistic"] == 569
    assert (env.state_dir / "idempotency.json").stat().st_mode & 0o777 == 0o600


def test_concurrent_retries_create_one_job(env: Env) -> None:
    """Retries racing each other: with one key they are answered 201 (the first, then
    replays) or 409 idempotency-key-in-use; without a key, 201 or 200 (the transaction is
    already on chain); either way one job."""
    def post(signed: str, key: str | None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        with httpx.Client(base_url=env.api.url, timeout=30) as c:
            return c.post("/v1/jobs", json={"signed_tx": signed}, headers=headers)

    for key, ok in (("race-1", {201, 409}), (None, {200, 201})):
        signed = sign(env.buyer, env.prepared_tx())
        count = env.job_count()
        with ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(post, [signed] * 4, [key] * 4))
        assert {r.status_code for r in responses} <= ok, [r.text for r in responses]
        created = [r.json() for r in responses if r.status_code in (200, 201)]
        assert created and all(c == created[0] for c in created)
        for r in responses:
            if r.status_code == 409:
                assert_problem(r, 409, "idempotency-key-in-use")
        assert env.job_count() == count + 1


def test_out_of_gas_post_job_is_a_reverted_problem(env: Env) -> None:
    """A postJob mined with too little gas (status 0, anvil's replay fails with "EVM error
    OutOfGas" rather than a contract revert) is a transaction-reverted problem, not a 500."""
    tx = {**env.prepared_tx(), "gas": hex(60_000)}
    signed = sign(env.buyer, tx)
    w3 = env.net.w3
    tx_hash = w3.eth.send_raw_transaction(bytes.fromhex(signed[2:]))
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 0
    r = env.http.post("/v1/jobs", json={"signed_tx": signed})
    assert_problem(r, 422, "transaction-reverted", "body.signed_tx")
    assert r.json()["error"] == "OutOfGas" and r.json()["tx_hash"] == "0x" + tx_hash.hex()


@pytest.mark.parametrize("body,status,slug,field", [
    ({"dataset": "nope"}, 422, "unknown-dataset", "body.dataset"),
    ({"query": "median:mean_radius"}, 422, "invalid-query", "body.query"),
    ({"query": "histogram:mean_radius:10,5"}, 422, "invalid-query", "body.query"),
    ({"query": "mean:no_such_column"}, 422, "unknown-column", "body.query"),
    ({"query": "mean:site"}, 422, "non-numeric-column", "body.query"),
    ({"committee_size": 4, "threshold": 2}, 422, "invalid-committee", "body.committee_size"),
    ({"committee_size": 3, "threshold": 0}, 422, "invalid-committee", "body.threshold"),
    ({"committee_size": 33, "threshold": 1}, 422, "invalid-committee", "body.committee_size"),
    ({"committee_size": 7, "threshold": 1}, 422, "too-few-nodes", "body.committee_size"),
    ({"min_providers": 6}, 422, "invalid-min-providers", "body.min_providers"),
    ({"min_providers": 0}, 422, "invalid-min-providers", "body.min_providers"),
    ({"timeout_s": 86401}, 422, "invalid-timeout", "body.timeout_s"),
    ({"timeout_s": 0}, 422, "invalid-timeout", "body.timeout_s"),
    ({"payment_wei": "999999999999999"}, 422, "payment-too-low", "body.payment_wei"),
    ({"payment_wei": 2**96}, 422, "payment-too-high", "body.payment_wei"),
    ({"payment_wei": "1e18"}, 422, "validation-error", "body.payment_wei"),
    ({"payment_wei": -1}, 422, "validation-error", "body.payment_wei"),
    ({"buyer": "0x123"}, 422, "validation-error", "body.buyer"),
    ({"buyer": "0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266".replace("F39", "f39")}, 422,
     "validation-error", "body.buyer"),  # mixed case with a wrong checksum
    ({"buyer": "0x000000000000000000000000000000000000dEaD"}, 422, "insufficient-funds",
     "body.buyer"),
    ({"committee_size": "three"}, 422, "validation-error", "body.committee_size"),
    ({"colour": "blue"}, 422, "validation-error", "body.colour"),
    ({"dataset": None}, 422, "validation-error", "body.dataset"),
])
def test_prepare_rejects_bad_jobs(env: Env, body: dict[str, Any], status: int, slug: str,
                                  field: str) -> None:
    before = env.nonce(env.buyer)
    assert_problem(env.prepare(**body), status, slug, field)
    assert env.nonce(env.buyer) == before


def test_submit_rejects_bad_transactions(env: Env) -> None:
    """Every bad signed transaction is refused before anything is broadcast."""
    good = env.prepared_tx()
    count, nonce = env.job_count(), env.nonce(env.buyer)
    legacy = {"to": good["to"], "data": good["data"], "value": int(good["value"], 16),
              "gas": 300_000, "gasPrice": 10**10, "nonce": nonce, "chainId": env.net.chain_id}
    bad_params = encode_post_job(eip712.dataset_id("wdbc"), "count", 4, 2, 5, 600)
    not_wdbc = encode_post_job(eip712.dataset_id("other"), "count", 3, 1, 5, 600)
    bad_column = encode_post_job(eip712.dataset_id("wdbc"), "mean:site", 3, 1, 5, 600)
    cases: list[tuple[str, int, str, str | None]] = [
        ("0x02", 422, "malformed-transaction", "body.signed_tx"),
        ("0x02c0", 422, "malformed-transaction", "body.signed_tx"),
        (sign(env.buyer, good)[:-4], 422, "malformed-transaction", "body.signed_tx"),
        (sign(env.buyer, legacy), 422, "malformed-transaction", "body.signed_tx"),
        (sign(env.buyer, {**good, "to": env.other.address}), 422, "wrong-contract",
         "signed_tx.to"),
        (sign(env.buyer, {**good, "chainId": hex(1)}), 422, "wrong-chain", "signed_tx.chainId"),
        (sign(env.buyer, {**good, "data": "0x" + keccak(text="jobCount()")[:4].hex()}), 422,
         "wrong-function", "signed_tx.data"),
        (sign(env.buyer, {**good, "data": good["data"][:80]}), 422, "malformed-transaction",
         "signed_tx.data"),
        (sign(env.buyer, {**good, "data": "0x" + bad_params.hex()}), 422, "invalid-committee",
         "signed_tx.committee_size"),
        (sign(env.buyer, {**good, "data": "0x" + not_wdbc.hex()}), 422, "unknown-dataset",
         "signed_tx.dataset_id"),
        (sign(env.buyer, {**good, "data": "0x" + bad_column.hex()}), 422, "non-numeric-column",
         "signed_tx.query"),
        (sign(env.buyer, {**good, "value": hex(PRICE_WEI - 1)}), 422, "payment-too-low",
         "signed_tx.value"),
        (sign(env.buyer, {**good, "nonce": hex(nonce + 5)}), 409, "nonce-conflict",
         "signed_tx.nonce"),
        (sign(env.buyer, {**good, "gas": hex(21_000)}), 422, "gas-too-low", "signed_tx.gas"),
    ]
    for signed, status, slug, field in cases:
        r = env.http.post("/v1/jobs", json={"signed_tx": signed})
        assert_problem(r, status, slug, field)
    bodies: list[Any] = [{"signed_tx": "0xzz"}, {"signed_tx": "0x123"}, {}, {"tx": "0x02"}, []]
    for body in bodies:
        assert_problem(env.http.post("/v1/jobs", json=body), 422, "validation-error")
    assert env.job_count() == count and env.nonce(env.buyer) == nonce


def test_routing_and_parameter_errors(env: Env) -> None:
    assert_problem(env.http.get("/v1/nope"), 404, "not-found")
    assert_problem(env.http.get("/"), 404, "not-found")
    r = env.http.delete("/v1/jobs")
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "POST"
    assert_problem(env.http.put("/v1/health"), 405, "method-not-allowed")
    assert_problem(env.http.get("/v1/jobs/prepare"), 422, "validation-error", "path.job_id")
    assert_problem(env.http.get("/v1/jobs/987654321"), 404, "job-not-found")
    assert_problem(env.http.get("/v1/jobs/987654321/audit"), 404, "job-not-found")
    assert_problem(env.http.get("/v1/jobs/0"), 422, "validation-error", "path.job_id")
    assert_problem(env.http.get("/v1/jobs/abc"), 422, "validation-error", "path.job_id")
    for wait in ("121", "-1", "soon", "nan", "inf"):
        assert_problem(env.http.get("/v1/jobs/1", params={"wait": wait}), 422,
                       "validation-error", "query.wait")
    assert_problem(env.http.post("/v1/jobs/prepare", content=b"{not json",
                                 headers={"content-type": "application/json"}),
                   422, "validation-error", "body")
    assert_problem(env.http.post("/v1/jobs", content=b"x" * 100_000,
                                 headers={"content-type": "application/json"}),
                   413, "payload-too-large")
    final = env.http.get("/v1/jobs", params={"status": "finalized", "limit": 1}).json()["items"]
    if final:  # a final job is answered at once, whatever the wait
        t0 = time.monotonic()
        assert env.http.get(final[0]["links"]["self"], params={"wait": 5}).status_code == 200
        assert time.monotonic() - t0 < 2


def test_list_jobs_pagination_and_filters(env: Env) -> None:
    """Jobs posted outside the API show up too (the index follows the chain); pages by
    cursor are newest first, complete and without duplicates; filters apply."""
    for _ in range(2):
        env.net.market.post_job(env.other, dataset_id=eip712.dataset_id("wdbc"), query="count",
                                committee_size=3, threshold=1, min_providers=5, timeout_s=600,
                                payment_wei=PRICE_WEI)
    total = env.net.market.job_count()
    # a job the index has not polled yet is looked up on demand
    assert env.http.get(f"/v1/jobs/{total}").json()["buyer"] == env.other.address
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = env.http.get("/v1/jobs", params=params).json()
        seen.extend(j["job_id"] for j in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["links"]["next"].endswith(f"cursor={cursor}")
    assert seen == list(range(total, 0, -1))

    mine = env.http.get("/v1/jobs", params={"buyer": env.other.address.lower()}).json()
    assert [j["buyer"] for j in mine["items"]] == [env.other.address] * 2
    for status in ("finalized", "awaiting_committee", "computing", "expired", "refunded"):
        items = env.http.get("/v1/jobs", params={"status": status, "limit": 100}).json()["items"]
        assert all(j["status"] == status for j in items)
    assert len(env.http.get("/v1/jobs", params={"dataset": "wdbc", "limit": 100})
               .json()["items"]) == total
    assert env.http.get("/v1/jobs", params={"dataset": "other"}).json()["items"] == []
    for params, field in (({"limit": 0}, "query.limit"), ({"limit": 101}, "query.limit"),
                          ({"cursor": 0}, "query.cursor"), ({"status": "done"}, "query.status"),
                          ({"buyer": "0x12"}, "query.buyer")):
        assert_problem(env.http.get("/v1/jobs", params=params), 422, "validation-error", field)


def test_openapi_schema_is_valid(env: Env) -> None:
    doc = env.http.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = [op.ok() for op in schema.get_all_operations() if isinstance(op, Ok)]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /v1/health", "GET /v1/datasets", "GET /v1/nodes", "POST /v1/jobs/prepare",
        "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/audit"}
    for path_item in doc["paths"].values():
        for op in path_item.values():
            for code, response in op["responses"].items():
                if code[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], op
    docs = env.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# ----------------------------------------------------------------------------- bare market


def test_expiry_refund_and_unreachable_chain(tmp_path: Path) -> None:
    """On a market without node processes a job waits for its committee, expires at its
    deadline and is refunded; when the chain goes away the API answers 502 problems, and
    the API refuses to start on a bad manifest or an unreachable chain (one error line)."""
    bare = bare_market()
    try:
        manifest = bare_manifest(tmp_path / "deployment.json", bare)
        api = ApiProcess(manifest, tmp_path / "state", tmp_path / "api.log")
        try:
            http = api.client
            job_id, _ = bare.market.post_job(
                bare.buyer, dataset_id=eip712.dataset_id("wdbc"), query="count",
                committee_size=3, threshold=1, min_providers=3, timeout_s=5,
                payment_wei=2 * PRICE_WEI)
            job = http.get(f"/v1/jobs/{job_id}").json()
            assert job["status"] == "awaiting_committee" and job["committee"] is None
            assert job["result"] is None and job["escrow_wei"] == str(2 * PRICE_WEI)
            rpc(bare.w3, "evm_increaseTime", 10)
            rpc(bare.w3, "evm_mine")
            deadline = time.monotonic() + 10
            while http.get(f"/v1/jobs/{job_id}").json()["status"] != "expired":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert [j["job_id"] for j in http.get(
                "/v1/jobs", params={"status": "expired"}).json()["items"]] == [job_id]
            bare.market.reclaim_escrow(bare.buyer, job_id)
            job = http.get(f"/v1/jobs/{job_id}", params={"wait": 10}).json()
            assert job["status"] == "refunded" and job["refund_wei"] == str(2 * PRICE_WEI)
            assert [t["name"] for t in job["transactions"]] == ["postJob", "reclaimEscrow"]
            pending_id, _ = bare.market.post_job(
                bare.buyer, dataset_id=eip712.dataset_id("wdbc"), query="count",
                committee_size=3, threshold=1, min_providers=3, timeout_s=600,
                payment_wei=PRICE_WEI)
            assert http.get(f"/v1/jobs/{pending_id}").json()["status"] == "awaiting_committee"

            bare.anvil.stop()
            assert_problem(http.get("/v1/health"), 502, "chain-unavailable")
            assert_problem(http.get("/v1/nodes"), 502, "chain-unavailable")
            assert_problem(http.get(f"/v1/jobs/{pending_id + 1}"), 502, "chain-unavailable")
            assert_problem(http.post("/v1/jobs/prepare", json={
                "dataset": "wdbc", "query": "count", "buyer": bare.buyer.address}),
                502, "chain-unavailable")
            assert http.get("/v1/datasets").status_code == 200  # served from the manifest
            assert http.get(f"/v1/jobs/{job_id}").json()["status"] == "refunded"  # cached

            # SIGTERM while a client waits: it gets the job as it is, and the API exits
            with ThreadPoolExecutor(1) as pool:
                waiting = pool.submit(http.get, f"/v1/jobs/{pending_id}",
                                      params={"wait": 100}, timeout=110)
                time.sleep(0.5)
                t0 = time.monotonic()
                api.proc.send_signal(signal.SIGTERM)
                answer = waiting.result(timeout=20)
                api.proc.wait(timeout=10)
            assert answer.status_code == 200
            assert answer.json()["status"] == "awaiting_committee"
            assert time.monotonic() - t0 < 5
        finally:
            api.close()
        out = subprocess.run([sys.executable, "-m", "api", "--deployment", str(manifest)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.strip().startswith("error: chain RPC") and "unreachable" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        broken = json.loads(manifest.read_text())
        broken["datasets"][0]["columns"][0]["type"] = "float"
        (tmp_path / "broken.json").write_text(json.dumps(broken))
        for path, message in ((tmp_path / "broken.json", "datasets.0.columns.0.type"),
                              (tmp_path / "missing.json", "cannot read")):
            out = subprocess.run([sys.executable, "-m", "api", "--deployment", str(path)],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 2 and message in out.stderr, out.stderr
            assert len(out.stderr.strip().splitlines()) == 1
    finally:
        bare.anvil.stop()


def test_idempotency_key_bound_before_broadcast(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A key is bound to its body before the transaction is broadcast: after a 504
    (transaction-pending) a retry with another signed transaction (next nonce) under the same
    key is a 422 and is not broadcast; the same body follows the first transaction; one job."""
    monkeypatch.setattr(jobs, "RECEIPT_TIMEOUT_S", 1.0)
    bare = bare_market()
    try:
        manifest = bare_manifest(tmp_path / "deployment.json", bare)
        with inproc_api(manifest, tmp_path / "state") as http:
            prep = http.post("/v1/jobs/prepare", json={
                "dataset": "wdbc", "query": "count", "buyer": bare.buyer.address})
            assert prep.status_code == 200, prep.text
            tx = prep.json()["tx"]
            first = sign(bare.buyer, tx)
            second = sign(bare.buyer, {**tx, "nonce": hex(int(tx["nonce"], 16) + 1)})
            key = {"Idempotency-Key": "pending-1"}
            count = bare.market.job_count()
            rpc(bare.w3, "evm_setAutomine", False)
            try:
                assert_problem(http.post("/v1/jobs", json={"signed_tx": first}, headers=key),
                               504, "transaction-pending")
                stored = json.loads((tmp_path / "state" / "idempotency.json").read_text())
                assert stored["entries"]["pending-1"]["state"] == "pending"
                assert_problem(http.post("/v1/jobs", json={"signed_tx": second}, headers=key),
                               422, "idempotency-key-reuse", "header.Idempotency-Key")
                with pytest.raises(TransactionNotFound):
                    bare.w3.eth.get_transaction(HexBytes(keccak(bytes.fromhex(second[2:]))))
                assert_problem(http.post("/v1/jobs", json={"signed_tx": first}, headers=key),
                               504, "transaction-pending")
            finally:
                rpc(bare.w3, "evm_setAutomine", True)
                rpc(bare.w3, "evm_mine")
            r = http.post("/v1/jobs", json={"signed_tx": first}, headers=key)
            assert r.status_code in (200, 201), r.text
            assert r.json()["job_id"] == count + 1
            assert_problem(http.post("/v1/jobs", json={"signed_tx": second}, headers=key),
                           422, "idempotency-key-reuse", "header.Idempotency-Key")
            assert bare.market.job_count() == count + 1
    finally:
        bare.anvil.stop()


def test_slow_audits_do_not_starve_the_api(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """More hanging audits than the default executor has threads: /v1/health (an RPC call
    through that executor) still answers at once, and each audit is a 504 audit-timeout."""
    release = threading.Event()

    def hanging_audit(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        raise offchain.audit.AuditError("released")

    monkeypatch.setattr(offchain.audit, "audit_job", hanging_audit)
    monkeypatch.setattr(jobs, "AUDIT_TIMEOUT_S", 2.0)
    bare = bare_market()
    try:
        job_id, _ = bare.market.post_job(
            bare.buyer, dataset_id=eip712.dataset_id("wdbc"), query="count", committee_size=3,
            threshold=1, min_providers=3, timeout_s=600, payment_wei=PRICE_WEI)
        manifest = bare_manifest(tmp_path / "deployment.json", bare)
        with inproc_api(manifest, tmp_path / "state") as http, ThreadPoolExecutor(40) as pool:
            try:
                audits = [pool.submit(http.get, f"/v1/jobs/{job_id}/audit") for _ in range(40)]
                time.sleep(0.5)
                t0 = time.monotonic()
                assert http.get("/v1/health").status_code == 200
                assert time.monotonic() - t0 < 1.0
                for audit in audits:
                    assert_problem(audit.result(timeout=30), 504, "audit-timeout")
            finally:
                release.set()
    finally:
        bare.anvil.stop()
