"""``Idempotency-Key`` on ``POST /v1/jobs``: a retry replays the stored response and posts no
second job (also after a restart: the store is on disk), the same transaction without a key
answers with the job it created, a key with another body or a malformed key is a 422, racing
retries create one job, and a key is bound to its body before the transaction is broadcast."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from api.routes import jobs
from tests.helpers.api import (
    ApiEnv,
    assert_problem,
    bare_manifest,
    bare_market,
    inproc_api,
    rpc,
    sign,
)

KEY = {"Idempotency-Key": "retry-1"}


@dataclass
class Retried:
    signed: str
    first: httpx.Response
    count: int  # jobs on the market right after the first request


@pytest.fixture(scope="module")
def retried(api_env: ApiEnv) -> Retried:
    signed = sign(api_env.buyer, api_env.prepared_tx())
    first = api_env.http.post("/v1/jobs", json={"signed_tx": signed}, headers=KEY)
    assert first.status_code == 201, first.text
    return Retried(signed, first, api_env.job_count())


def test_first_response_is_not_marked_replayed(retried: Retried) -> None:
    assert "idempotent-replayed" not in retried.first.headers


def test_retry_with_the_key_replays_the_stored_response(api_env: ApiEnv,
                                                        retried: Retried) -> None:
    again = api_env.http.post("/v1/jobs", json={"signed_tx": retried.signed}, headers=KEY)
    assert again.status_code == 201 and again.json() == retried.first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == retried.first.headers["location"]
    assert api_env.job_count() == retried.count


def test_same_transaction_without_a_key_answers_with_its_job(api_env: ApiEnv,
                                                             retried: Retried) -> None:
    no_key = api_env.http.post("/v1/jobs", json={"signed_tx": retried.signed})
    assert no_key.status_code == 200 and no_key.json() == retried.first.json()
    assert api_env.job_count() == retried.count


def test_key_with_another_body_is_refused(api_env: ApiEnv, retried: Retried) -> None:
    other = sign(api_env.buyer, api_env.prepared_tx(query="sum:mean_area"))
    assert_problem(api_env.http.post("/v1/jobs", json={"signed_tx": other}, headers=KEY),
                   422, "idempotency-key-reuse", "header.Idempotency-Key")


def test_malformed_key_names_the_header(api_env: ApiEnv, retried: Retried) -> None:
    assert_problem(api_env.http.post("/v1/jobs", json={"signed_tx": retried.signed},
                                     headers={"Idempotency-Key": "bad key with spaces"}),
                   422, "validation-error", "header.Idempotency-Key")


def test_replay_survives_a_restart(api_env: ApiEnv, retried: Retried) -> None:
    api_env.restart_api()  # a fresh process: the index is rebuilt from the chain
    replay = api_env.http.post("/v1/jobs", json={"signed_tx": retried.signed}, headers=KEY)
    assert replay.status_code == 201 and replay.json() == retried.first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert api_env.job_count() == retried.count


def test_retried_job_finishes(api_env: ApiEnv, retried: Retried) -> None:
    job = api_env.http.get(retried.first.headers["location"], params={"wait": 60},
                           timeout=70).json()
    assert job["status"] == "finalized" and job["result"]["statistic"] == 569


def test_store_is_readable_by_its_owner_only(api_env: ApiEnv, retried: Retried) -> None:
    assert (api_env.state_dir / "idempotency.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("key,ok", [("race-1", {201, 409}), (None, {200, 201})])
def test_racing_retries_create_one_job(api_env: ApiEnv, key: str | None, ok: set[int]) -> None:
    """With one key, racing retries are answered 201 (the first, then replays) or 409
    idempotency-key-in-use; without a key, 201 or 200 (the transaction is already on chain);
    either way one job."""
    def post(signed: str) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        with httpx.Client(base_url=api_env.api.url, timeout=30) as c:
            return c.post("/v1/jobs", json={"signed_tx": signed}, headers=headers)

    signed = sign(api_env.buyer, api_env.prepared_tx())
    count = api_env.job_count()
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, [signed] * 4))
    assert {r.status_code for r in responses} <= ok, [r.text for r in responses]
    created = [r.json() for r in responses if r.status_code in (200, 201)]
    assert created and all(c == created[0] for c in created)
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "idempotency-key-in-use")
    assert api_env.job_count() == count + 1


def test_key_is_bound_before_broadcast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a 504 (transaction-pending) a retry with another signed transaction (next nonce)
    under the same key is a 422 and is not broadcast; the same body follows the first
    transaction; one job."""
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
