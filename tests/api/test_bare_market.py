"""The API over a bare market (anvil, the market, 3 registered nodes, no node processes): a job
waits for its committee, expires at its deadline and is refunded; slow audits do not starve the
other routes; when the chain goes away the API answers 502 problems and still serves what it
holds, and SIGTERM answers the waiting requests. Also: the API refuses to start on a bad
manifest or an unreachable chain, with one error line.

The tests of this module run in file order over one market: the chain is stopped by the
``chain_gone`` fixture, which only the last tests use."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import offchain.audit
from api.routes import jobs
from offchain.encoding import eip712
from tests.helpers.api import (
    PRICE_WEI,
    ApiProcess,
    BareMarket,
    assert_problem,
    bare_manifest,
    bare_market,
    inproc_api,
    rpc,
    write_manifest,
)


@pytest.fixture(scope="module")
def bare() -> Iterator[BareMarket]:
    market = bare_market()
    try:
        yield market
    finally:
        market.anvil.stop()


@pytest.fixture(scope="module")
def manifest(bare: BareMarket, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bare_manifest(tmp_path_factory.mktemp("bare") / "deployment.json", bare)


@pytest.fixture(scope="module")
def api(manifest: Path) -> Iterator[ApiProcess]:
    proc = ApiProcess(manifest, manifest.parent / "state", manifest.parent / "api.log")
    try:
        yield proc
    finally:
        proc.close()


def post_count_job(bare: BareMarket, *, timeout_s: int, payment_wei: int) -> int:
    job_id, _ = bare.market.post_job(
        bare.buyer, dataset_id=eip712.dataset_id("wdbc"), query="count", committee_size=3,
        threshold=1, min_providers=3, timeout_s=timeout_s, payment_wei=payment_wei)
    return int(job_id)


@pytest.fixture(scope="module")
def expiring(bare: BareMarket) -> int:
    """A job with a 5 s deadline that no committee will serve."""
    return post_count_job(bare, timeout_s=5, payment_wei=2 * PRICE_WEI)


# ----------------------------------------------------------------------------- expiry


def test_job_waits_for_its_committee(api: ApiProcess, expiring: int) -> None:
    job = api.client.get(f"/v1/jobs/{expiring}").json()
    assert job["status"] == "awaiting_committee" and job["committee"] is None
    assert job["result"] is None and job["escrow_wei"] == str(2 * PRICE_WEI)


def test_job_expires_at_its_deadline(bare: BareMarket, api: ApiProcess, expiring: int) -> None:
    rpc(bare.w3, "evm_increaseTime", 10)
    rpc(bare.w3, "evm_mine")
    deadline = time.monotonic() + 10
    while api.client.get(f"/v1/jobs/{expiring}").json()["status"] != "expired":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [j["job_id"] for j in api.client.get(
        "/v1/jobs", params={"status": "expired"}).json()["items"]] == [expiring]


def test_reclaimed_job_is_refunded(bare: BareMarket, api: ApiProcess, expiring: int) -> None:
    bare.market.reclaim_escrow(bare.buyer, expiring)
    job = api.client.get(f"/v1/jobs/{expiring}", params={"wait": 10}).json()
    assert job["status"] == "refunded" and job["refund_wei"] == str(2 * PRICE_WEI)
    assert [t["name"] for t in job["transactions"]] == ["postJob", "reclaimEscrow"]


# ----------------------------------------------------------------------------- audits


def test_slow_audits_do_not_starve_the_api(manifest: Path, expiring: int, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """More hanging audits than the default executor has threads: /v1/health (an RPC call
    through that executor) still answers at once, and each audit is a 504 audit-timeout."""
    release = threading.Event()

    def hanging_audit(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        raise offchain.audit.AuditError("released")

    monkeypatch.setattr(offchain.audit, "audit_job", hanging_audit)
    monkeypatch.setattr(jobs, "AUDIT_TIMEOUT_S", 2.0)
    with inproc_api(manifest, tmp_path / "state") as http, ThreadPoolExecutor(40) as pool:
        try:
            audits = [pool.submit(http.get, f"/v1/jobs/{expiring}/audit") for _ in range(40)]
            time.sleep(0.5)
            t0 = time.monotonic()
            assert http.get("/v1/health").status_code == 200
            assert time.monotonic() - t0 < 1.0
            for audit in audits:
                assert_problem(audit.result(timeout=30), 504, "audit-timeout")
        finally:
            release.set()


def test_failing_audit_is_a_502(manifest: Path, expiring: int, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An AuditError (the auditor cannot read the chain) is answered by the API's one
    MarketError handler as audit-failed."""
    def failing_audit(*args: Any, **kwargs: Any) -> Any:
        raise offchain.audit.AuditError("no archive node")

    monkeypatch.setattr(offchain.audit, "audit_job", failing_audit)
    with inproc_api(manifest, tmp_path / "state") as http:
        r = http.get(f"/v1/jobs/{expiring}/audit")
    assert_problem(r, 502, "audit-failed")
    assert r.json()["detail"] == "the audit could not read the chain: no archive node"


# ----------------------------------------------------------------------------- outage


@pytest.fixture(scope="module")
def chain_gone(bare: BareMarket, api: ApiProcess, expiring: int) -> int:
    """Posts a job that stays awaiting its committee, then stops anvil; returns the job id."""
    pending = post_count_job(bare, timeout_s=600, payment_wei=PRICE_WEI)
    assert api.client.get(f"/v1/jobs/{pending}").json()["status"] == "awaiting_committee"
    bare.anvil.stop()
    return pending


@pytest.mark.parametrize("method,path", [
    ("GET", "/v1/health"), ("GET", "/v1/nodes"), ("GET", "/v1/jobs/{unknown}"),
    ("POST", "/v1/jobs/prepare")])
def test_unreachable_chain_is_a_502(bare: BareMarket, api: ApiProcess, chain_gone: int,
                                    method: str, path: str) -> None:
    body = {"dataset": "wdbc", "query": "count", "buyer": bare.buyer.address}
    r = api.client.request(method, path.format(unknown=chain_gone + 1),
                           json=body if method == "POST" else None)
    assert_problem(r, 502, "chain-unavailable")


def test_catalogue_is_served_from_the_manifest_without_the_chain(api: ApiProcess,
                                                                 chain_gone: int) -> None:
    assert api.client.get("/v1/datasets").status_code == 200


def test_final_job_is_served_from_the_index_without_the_chain(api: ApiProcess, expiring: int,
                                                              chain_gone: int) -> None:
    assert api.client.get(f"/v1/jobs/{expiring}").json()["status"] == "refunded"


def test_sigterm_answers_waiting_requests_and_exits(api: ApiProcess, chain_gone: int) -> None:
    """SIGTERM while a client waits: it gets the job as it is, and the API exits."""
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(api.client.get, f"/v1/jobs/{chain_gone}",
                              params={"wait": 100}, timeout=110)
        time.sleep(0.5)
        t0 = time.monotonic()
        api.proc.send_signal(signal.SIGTERM)
        answer = waiting.result(timeout=20)
        api.proc.wait(timeout=10)
    assert answer.status_code == 200
    assert answer.json()["status"] == "awaiting_committee"
    assert time.monotonic() - t0 < 5


# ----------------------------------------------------------------------------- start-up


def run_api(manifest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api", "--deployment", str(manifest)],
                          capture_output=True, text=True, timeout=60)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def offline_manifest(path: Path) -> Path:
    """A well-formed manifest whose RPC URL nobody listens on."""
    return write_manifest(
        path, chain_id=31337, rpc_url=f"http://127.0.0.1:{closed_port()}",
        market="0x5FbDB2315678afecb367f032d93F642f64180aa3", block=1,
        nodes=[{"address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "endpoint": "http://127.0.0.1:9"}], columns=["mean_radius"])


def test_unreachable_chain_refuses_to_start(tmp_path: Path) -> None:
    out = run_api(offline_manifest(tmp_path / "deployment.json"))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.strip().startswith("error: chain RPC") and "unreachable" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("name,message", [("broken.json", "datasets.0.columns.0.type"),
                                          ("missing.json", "cannot read")])
def test_bad_manifest_refuses_to_start(tmp_path: Path, name: str, message: str) -> None:
    broken = json.loads(offline_manifest(tmp_path / "deployment.json").read_text())
    broken["datasets"][0]["columns"][0]["type"] = "float"
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    out = run_api(tmp_path / name)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
