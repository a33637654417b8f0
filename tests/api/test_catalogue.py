"""``GET /v1/datasets`` and ``GET /v1/nodes`` against the demo network (5 providers)."""

from __future__ import annotations

from typing import Any

import pytest

from offchain.encoding import eip712
from tests.helpers.api import PRICE_WEI, ApiEnv


@pytest.fixture(scope="module")
def wdbc(api_env: ApiEnv) -> dict[str, Any]:
    datasets = api_env.http.get("/v1/datasets").json()["items"]
    assert [d["name"] for d in datasets] == ["wdbc"]
    return dict(datasets[0])


def test_dataset_id_is_the_hash_of_its_name(wdbc: dict[str, Any]) -> None:
    assert wdbc["dataset_id"] == "0x" + eip712.dataset_id("wdbc").hex()


def test_dataset_price_is_the_markets_minimum_payment(wdbc: dict[str, Any]) -> None:
    assert wdbc["price_wei"] == str(PRICE_WEI)


def test_dataset_counts_its_active_providers(wdbc: dict[str, Any]) -> None:
    assert wdbc["active_providers"] == 5 and len(wdbc["providers"]) == 5


def test_dataset_lists_column_types(wdbc: dict[str, Any]) -> None:
    assert {"name": "mean_radius", "type": "number"} in wdbc["columns"]


def test_nodes_are_the_registered_ones(api_env: ApiEnv) -> None:
    nodes = api_env.http.get("/v1/nodes").json()["items"]
    assert {n["address"] for n in nodes} == {n["address"] for n in api_env.net.nodes.ready}


def test_nodes_show_stake_status_endpoint_and_datasets(api_env: ApiEnv) -> None:
    ready = {n["address"]: n["endpoint"] for n in api_env.net.nodes.ready}
    for n in api_env.http.get("/v1/nodes").json()["items"]:
        assert n["status"] == "active" and n["stake_wei"] == str(10**18)
        assert n["endpoint"] == ready[n["address"]] and n["datasets"] == ["wdbc"]
        assert n["exit_at"] is None and n["jobs_served"] >= 0
