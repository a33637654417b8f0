"""``/v1/jobs*`` against the demo network: a job posted over HTTP (prepare, sign locally,
submit) finishes with the plaintext answer and its audit passes; bad jobs and bad signed
transactions are refused before anything is broadcast; paths and queries are checked; the list
pages by cursor and filters."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils.crypto import keccak

from offchain.chain.market import encode_post_job
from offchain.devnet.provision import DEFAULT_DATA
from offchain.devnet.reference import plaintext_statistic
from offchain.encoding import eip712
from offchain.encoding.query import parse_query
from offchain.node.datasource import open_source
from offchain.types import JobStatus
from tests.helpers.api import PRICE_WEI, ApiEnv, assert_problem, sign

# the histogram pays 4x the price, as a decimal string; the variance the default price
PAYMENTS: dict[str, int | None] = {"var:mean_texture": None,
                                   "histogram:mean_radius:5,10,15,20,25,30": PRICE_WEI * 4}


def served(env: ApiEnv) -> dict[str, int]:
    return {n["address"]: n["jobs_served"] for n in env.http.get("/v1/nodes").json()["items"]}


@dataclass
class Flow:
    """The two jobs of PAYMENTS, each prepared, signed, submitted and waited for."""

    prepared: dict[str, dict[str, Any]]  # query -> the prepare response
    submitted: dict[str, dict[str, Any]]  # query -> the 201 body
    locations: dict[str, str]  # query -> the Location header
    final: dict[str, dict[str, Any]]  # query -> GET /v1/jobs/{id}?wait=60
    served_before: dict[str, int]
    served_after: dict[str, int]


@pytest.fixture(scope="module")
def flow(api_env: ApiEnv) -> Flow:
    env = api_env
    for job in env.http.get("/v1/jobs", params={"limit": 100}).json()["items"]:
        env.http.get(job["links"]["self"], params={"wait": 60}, timeout=70)  # settle earlier jobs
    before = served(env)
    prepared, submitted, locations = {}, {}, {}
    for query, payment in PAYMENTS.items():
        body: dict[str, Any] = {"query": query}
        if payment is not None:
            body["payment_wei"] = str(payment)
        prep = env.prepare(**body)
        assert prep.status_code == 200, prep.text
        prepared[query] = prep.json()
        r = env.http.post("/v1/jobs", json={"signed_tx": sign(env.buyer, prep.json()["tx"])})
        assert r.status_code == 201, r.text
        submitted[query], locations[query] = r.json(), r.headers["location"]
    final = {}
    for query, out in submitted.items():
        r = env.http.get(out["links"]["self"], params={"wait": 60}, timeout=70)
        assert r.status_code == 200, r.text
        final[query] = r.json()
    return Flow(prepared, submitted, locations, final, before, served(env))


# ----------------------------------------------------------------------------- a job's life


def test_prepare_builds_a_post_job_transaction_for_the_buyer(api_env: ApiEnv, flow: Flow) -> None:
    for prep in flow.prepared.values():
        tx = prep["tx"]
        assert tx["to"] == api_env.net.market.address and tx["type"] == "0x2"
        assert tx["chainId"] == hex(api_env.net.chain_id) and tx["from"] == api_env.buyer.address


def test_prepare_fills_in_defaults_and_normalises_the_query(flow: Flow) -> None:
    for query, prep in flow.prepared.items():
        job = prep["job"]
        assert job["min_providers"] == 5 and job["committee_size"] == 3
        assert job["query"] == str(parse_query(query))


def test_submit_answers_with_the_job_location_and_links(flow: Flow) -> None:
    for query, out in flow.submitted.items():
        assert flow.locations[query] == out["links"]["self"] == f"/v1/jobs/{out['job_id']}"
        assert out["links"]["audit"] == f"/v1/jobs/{out['job_id']}/audit"


def test_jobs_finish_with_their_committee(api_env: ApiEnv, flow: Flow) -> None:
    for job in flow.final.values():
        assert job["status"] == "finalized", job
        assert job["buyer"] == api_env.buyer.address and job["dataset"] == "wdbc"
        assert len(job["committee"]) == 3 and job["committee_round"] >= job["seed_round"] >= 1


def test_statistics_equal_the_plaintext_ones(flow: Flow) -> None:
    for query, job in flow.final.items():
        spec = parse_query(query)
        plain = plaintext_statistic(spec, open_source(DEFAULT_DATA).read_columns(spec.columns))
        got = job["result"]["statistic"]
        if isinstance(plain, float):
            assert math.isclose(got, plain, rel_tol=1e-9), (got, plain)
        else:
            assert got == plain


def test_result_hash_and_signers(flow: Flow) -> None:
    for job in flow.final.values():
        res = job["result"]
        assert res["result_hash"] == "0x" + eip712.result_hash(
            [int(a) for a in res["aggregates"]]).hex()
        assert res["provider_count"] == 5 and len(res["signers"]) >= 2


def test_result_agrees_with_the_stored_job(api_env: ApiEnv, flow: Flow) -> None:
    for query, job in flow.final.items():
        stored = api_env.net.market.get_job(flow.submitted[query]["job_id"])
        assert stored.status is JobStatus.FINALIZED
        assert stored.signer_mask == job["result"]["signer_mask"]


def test_transactions_run_from_post_to_finalize(flow: Flow) -> None:
    for query, job in flow.final.items():
        names = [t["name"] for t in job["transactions"]]
        assert names[0] == "postJob" and names[-1] == "finalizeJob"
        assert {"commitRound", "reveal", "assignCommittee"} <= set(names)
        assert job["transactions"][0]["hash"] == flow.submitted[query]["tx_hash"]
        assert all(t["gas_used"] > 0 and t["timestamp"] > 0 for t in job["transactions"])


def test_escrow_is_the_payment(flow: Flow) -> None:
    for query, job in flow.final.items():
        assert job["escrow_wei"] == str(PAYMENTS[query] or PRICE_WEI)


def test_jobs_served_counts_each_signature(flow: Flow) -> None:
    signed = [a for job in flow.final.values() for a in job["result"]["signers"]]
    for address, count in flow.served_after.items():
        assert count == flow.served_before[address] + signed.count(address)


def test_audit_of_a_finished_job_passes(api_env: ApiEnv, flow: Flow) -> None:
    audit = api_env.http.get(flow.submitted["var:mean_texture"]["links"]["audit"], timeout=60)
    assert audit.status_code == 200, audit.text
    assert audit.json()["ok"] is True, audit.text


def test_final_job_is_answered_at_once_whatever_the_wait(api_env: ApiEnv, flow: Flow) -> None:
    t0 = time.monotonic()
    r = api_env.http.get(flow.submitted["var:mean_texture"]["links"]["self"],
                         params={"wait": 5})
    assert r.status_code == 200
    assert time.monotonic() - t0 < 2


# ----------------------------------------------------------------------------- bad jobs


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
def test_prepare_rejects_bad_jobs(api_env: ApiEnv, body: dict[str, Any], status: int, slug: str,
                                  field: str) -> None:
    before = api_env.nonce(api_env.buyer)
    assert_problem(api_env.prepare(**body), status, slug, field)
    assert api_env.nonce(api_env.buyer) == before


# A bad signed transaction: built from the env, a good prepared tx and the buyer's nonce.
BadTx = Callable[[ApiEnv, dict[str, Any], int], str]


def _legacy(env: ApiEnv, good: dict[str, Any], nonce: int) -> str:
    return sign(env.buyer, {"to": good["to"], "data": good["data"],
                            "value": int(good["value"], 16), "gas": 300_000,
                            "gasPrice": 10**10, "nonce": nonce, "chainId": env.net.chain_id})


def _calldata(query: str, n: int, t: int, dataset: str = "wdbc") -> BadTx:
    data = encode_post_job(eip712.dataset_id(dataset), query, n, t, 5, 600)
    return lambda env, good, _nonce: sign(env.buyer, {**good, "data": "0x" + data.hex()})


def _with(**fields: Any) -> BadTx:
    return lambda env, good, nonce: sign(env.buyer, {
        **good, **{k: v(env, nonce) if callable(v) else v for k, v in fields.items()}})


BAD_TXS: dict[str, tuple[BadTx, int, str, str]] = {
    "type byte only": (lambda *_: "0x02", 422, "malformed-transaction", "body.signed_tx"),
    "empty list": (lambda *_: "0x02c0", 422, "malformed-transaction", "body.signed_tx"),
    "truncated": (lambda env, good, _: sign(env.buyer, good)[:-4], 422,
                  "malformed-transaction", "body.signed_tx"),
    "legacy": (_legacy, 422, "malformed-transaction", "body.signed_tx"),
    "other contract": (_with(to=lambda env, _: env.other.address), 422, "wrong-contract",
                       "signed_tx.to"),
    "other chain": (_with(chainId=hex(1)), 422, "wrong-chain", "signed_tx.chainId"),
    "other function": (_with(data="0x" + keccak(text="jobCount()")[:4].hex()), 422,
                       "wrong-function", "signed_tx.data"),
    "short calldata": (lambda env, good, _: sign(env.buyer, {**good, "data": good["data"][:80]}),
                       422, "malformed-transaction", "signed_tx.data"),
    "bad committee": (_calldata("count", 4, 2), 422, "invalid-committee",
                      "signed_tx.committee_size"),
    "unknown dataset": (_calldata("count", 3, 1, "other"), 422, "unknown-dataset",
                        "signed_tx.dataset_id"),
    "non-numeric column": (_calldata("mean:site", 3, 1), 422, "non-numeric-column",
                           "signed_tx.query"),
    "payment too low": (_with(value=hex(PRICE_WEI - 1)), 422, "payment-too-low",
                        "signed_tx.value"),
    "nonce gap": (_with(nonce=lambda _, nonce: hex(nonce + 5)), 409, "nonce-conflict",
                  "signed_tx.nonce"),
    "gas too low": (_with(gas=hex(21_000)), 422, "gas-too-low", "signed_tx.gas"),
}


@pytest.mark.parametrize("case", sorted(BAD_TXS))
def test_submit_refuses_a_bad_transaction_before_broadcasting(api_env: ApiEnv,
                                                              case: str) -> None:
    build, status, slug, field = BAD_TXS[case]
    good = api_env.prepared_tx()
    count, nonce = api_env.job_count(), api_env.nonce(api_env.buyer)
    assert_problem(api_env.http.post("/v1/jobs", json={"signed_tx": build(api_env, good, nonce)}),
                   status, slug, field)
    assert api_env.job_count() == count and api_env.nonce(api_env.buyer) == nonce


@pytest.mark.parametrize("body", [{"signed_tx": "0xzz"}, {"signed_tx": "0x123"}, {},
                                  {"tx": "0x02"}, []])
def test_submit_refuses_a_malformed_body(api_env: ApiEnv, body: Any) -> None:
    assert_problem(api_env.http.post("/v1/jobs", json=body), 422, "validation-error")


def test_out_of_gas_post_job_is_a_reverted_problem(api_env: ApiEnv) -> None:
    """A postJob mined with too little gas (status 0, anvil's replay fails with "EVM error
    OutOfGas" rather than a contract revert) is a transaction-reverted problem, not a 500."""
    signed = sign(api_env.buyer, {**api_env.prepared_tx(), "gas": hex(60_000)})
    w3 = api_env.net.w3
    tx_hash = w3.eth.send_raw_transaction(bytes.fromhex(signed[2:]))
    assert w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)["status"] == 0
    r = api_env.http.post("/v1/jobs", json={"signed_tx": signed})
    assert_problem(r, 422, "transaction-reverted", "body.signed_tx")
    assert r.json()["error"] == "OutOfGas" and r.json()["tx_hash"] == "0x" + tx_hash.hex()


# ----------------------------------------------------------------------------- reading jobs


@pytest.mark.parametrize("path", ["/v1/jobs/prepare", "/v1/jobs/0", "/v1/jobs/abc"])
def test_bad_job_id_names_the_path_parameter(api_env: ApiEnv, path: str) -> None:
    assert_problem(api_env.http.get(path), 422, "validation-error", "path.job_id")


@pytest.mark.parametrize("path", ["/v1/jobs/987654321", "/v1/jobs/987654321/audit"])
def test_unknown_job_is_job_not_found(api_env: ApiEnv, path: str) -> None:
    assert_problem(api_env.http.get(path), 404, "job-not-found")


@pytest.mark.parametrize("wait", ["121", "-1", "soon", "nan", "inf"])
def test_wait_out_of_bounds_names_the_query_parameter(api_env: ApiEnv, wait: str) -> None:
    assert_problem(api_env.http.get("/v1/jobs/1", params={"wait": wait}), 422,
                   "validation-error", "query.wait")


@pytest.fixture(scope="module")
def outside_jobs(api_env: ApiEnv) -> int:
    """Two jobs posted straight to the market by ``other`` (not through the API); returns the
    job count after them."""
    for _ in range(2):
        api_env.net.market.post_job(api_env.other, dataset_id=eip712.dataset_id("wdbc"),
                                    query="count", committee_size=3, threshold=1,
                                    min_providers=5, timeout_s=600, payment_wei=PRICE_WEI)
    return api_env.net.market.job_count()


def test_job_not_yet_polled_is_looked_up_on_demand(api_env: ApiEnv, outside_jobs: int) -> None:
    assert api_env.http.get(f"/v1/jobs/{outside_jobs}").json()["buyer"] == api_env.other.address


def test_pages_are_newest_first_complete_and_without_duplicates(api_env: ApiEnv,
                                                                outside_jobs: int) -> None:
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = api_env.http.get("/v1/jobs", params=params).json()
        seen.extend(j["job_id"] for j in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert page["links"]["next"].endswith(f"cursor={cursor}")
    assert seen == list(range(api_env.net.market.job_count(), 0, -1))


def test_buyer_filter_takes_any_case(api_env: ApiEnv, outside_jobs: int) -> None:
    mine = api_env.http.get("/v1/jobs", params={"buyer": api_env.other.address.lower()}).json()
    assert [j["buyer"] for j in mine["items"]] == [api_env.other.address] * 2


@pytest.mark.parametrize("status", ["finalized", "awaiting_committee", "computing", "expired",
                                    "refunded"])
def test_status_filter(api_env: ApiEnv, outside_jobs: int, status: str) -> None:
    items = api_env.http.get("/v1/jobs", params={"status": status, "limit": 100}).json()["items"]
    assert all(j["status"] == status for j in items)


def test_dataset_filter(api_env: ApiEnv, outside_jobs: int) -> None:
    total = api_env.net.market.job_count()
    assert len(api_env.http.get("/v1/jobs", params={"dataset": "wdbc", "limit": 100})
               .json()["items"]) == total
    assert api_env.http.get("/v1/jobs", params={"dataset": "other"}).json()["items"] == []


@pytest.mark.parametrize("params,field", [
    ({"limit": 0}, "query.limit"), ({"limit": 101}, "query.limit"),
    ({"cursor": 0}, "query.cursor"), ({"status": "done"}, "query.status"),
    ({"buyer": "0x12"}, "query.buyer")])
def test_bad_list_parameter_is_named(api_env: ApiEnv, params: dict[str, Any], field: str) -> None:
    assert_problem(api_env.http.get("/v1/jobs", params=params), 422, "validation-error", field)
