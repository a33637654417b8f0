"""The shipped artifact (offchain/chain/abi/MPCMarket.json, read by offchain.chain.artifacts) is
exactly a fresh compile of contracts/, so a stale ABI fails CI; plus what the artifact and the
contract sources promise: one copy of each custom error, the EIP-170 size limit, and the same
version in typeAndVersion() and in every contracts/ file header."""

from __future__ import annotations

import re
from collections import Counter

from eth_utils.crypto import keccak

from offchain.chain.artifacts import market_abi, market_artifact
from offchain.devnet.compile import market_artifact_document
from tests.helpers.env import Env
from tests.helpers.paths import ROOT

EIP170_MAX_RUNTIME_BYTES = 24_576
STALE = "offchain/chain/abi/MPCMarket.json is stale: run `make abi`"


def test_shipped_artifact_equals_a_fresh_compile() -> None:
    fresh = market_artifact_document()
    art = market_artifact()
    assert art.input_sha256 == fresh["standardJsonInputSha256"], STALE
    assert art.abi == fresh["abi"], STALE
    assert art.bytecode == fresh["bytecode"], STALE
    assert art.deployed_bytecode == fresh["deployedBytecode"], STALE
    assert (art.compiler_version, art.settings) == (
        fresh["compiler"]["version"], fresh["compiler"]["settings"]), STALE
    assert market_abi() == art.abi


def test_each_custom_error_is_in_the_abi_once() -> None:
    errors = [e for e in market_abi() if e["type"] == "error"]
    dup = [n for n, k in Counter(e["name"] for e in errors).items() if k > 1]
    assert dup == []
    selectors = Counter(
        keccak(text=f"{e['name']}({','.join(i['type'] for i in e['inputs'])})")[:4]
        for e in errors)
    assert max(selectors.values()) == 1


def test_runtime_code_fits_eip170() -> None:
    size = (len(market_artifact().deployed_bytecode) - 2) // 2
    print(f"\n  MPCMarket runtime: {size:,} bytes of {EIP170_MAX_RUNTIME_BYTES:,}")
    assert size <= EIP170_MAX_RUNTIME_BYTES


def test_type_and_version_matches_every_file_header(env: Env) -> None:
    tv = env.market.contract.functions.typeAndVersion().call()
    name, version = tv.split(" ")
    assert name == "MPCMarket" and re.fullmatch(r"\d+\.\d+\.\d+", version), tv
    header = f"// MPC Market contracts {version}"
    for path in sorted((ROOT / "contracts").rglob("*.sol")):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert lines[1] == header, f"{path.relative_to(ROOT)}: second line is not {header!r}"
