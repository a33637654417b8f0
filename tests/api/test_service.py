"""``GET /v1/health``, routing and request-shape errors (every one a problem+json with the right
status and type), the body limit, and the OpenAPI document, against the API in front of the
demo network."""

from __future__ import annotations

import pytest
import schemathesis
from schemathesis.core.result import Ok

from tests.helpers.api import ApiEnv, assert_problem


def test_health_names_the_chain_and_the_market(api_env: ApiEnv) -> None:
    h = api_env.http.get("/v1/health").json()
    assert h["status"] == "ok" and h["chain_id"] == api_env.net.chain_id
    assert h["market"] == api_env.net.market.address


def test_health_reports_the_indexed_block(api_env: ApiEnv) -> None:
    h = api_env.http.get("/v1/health").json()
    assert h["block"] >= h["indexed_block"] > 0


@pytest.mark.parametrize("path", ["/v1/nope", "/"])
def test_unknown_route_is_not_found(api_env: ApiEnv, path: str) -> None:
    assert_problem(api_env.http.get(path), 404, "not-found")


def test_wrong_method_is_405_with_allow(api_env: ApiEnv) -> None:
    r = api_env.http.delete("/v1/jobs")
    assert_problem(r, 405, "method-not-allowed")
    assert r.headers["allow"] == "POST"
    assert_problem(api_env.http.put("/v1/health"), 405, "method-not-allowed")


def test_body_that_is_not_json_names_the_body(api_env: ApiEnv) -> None:
    assert_problem(api_env.http.post("/v1/jobs/prepare", content=b"{not json",
                                     headers={"content-type": "application/json"}),
                   422, "validation-error", "body")


def test_body_over_the_limit_is_413(api_env: ApiEnv) -> None:
    assert_problem(api_env.http.post("/v1/jobs", content=b"x" * 100_000,
                                     headers={"content-type": "application/json"}),
                   413, "payload-too-large")


def test_openapi_schema_is_valid_and_lists_every_operation(api_env: ApiEnv) -> None:
    schema = schemathesis.openapi.from_dict(api_env.http.get("/openapi.json").json())
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = [op.ok() for op in schema.get_all_operations() if isinstance(op, Ok)]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "GET /v1/health", "GET /v1/datasets", "GET /v1/nodes", "POST /v1/jobs/prepare",
        "POST /v1/jobs", "GET /v1/jobs", "GET /v1/jobs/{job_id}", "GET /v1/jobs/{job_id}/audit"}


def test_openapi_documents_errors_as_problems(api_env: ApiEnv) -> None:
    doc = api_env.http.get("/openapi.json").json()
    for path_item in doc["paths"].values():
        for op in path_item.values():
            for code, response in op["responses"].items():
                if code[0] in "45":
                    assert list(response["content"]) == ["application/problem+json"], op


def test_docs_page_is_served(api_env: ApiEnv) -> None:
    docs = api_env.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()

