"""The shipped MPCMarket artifact: ABI, creation and runtime bytecode, and how they were built.

``offchain/chain/abi/MPCMarket.json`` is package data (``pyproject.toml``, setuptools
``package-data``), generated from ``contracts/`` by ``make abi``
(``python -m offchain.devnet.compile --write-abi``). A node, the auditor and the API read the
ABI from here, so they run from an installed wheel without ``contracts/``, npm or node.
``tests/contracts/test_artifact.py`` fails when the file is stale.

File format (JSON object): ``contractName``, ``sourceName``, ``abi`` (list of ABI entries, custom
errors included), ``bytecode`` / ``deployedBytecode`` (``0x``-hex), ``compiler`` (``name``,
``version``, ``settings``: optimizer, viaIR, evmVersion) and ``standardJsonInputSha256`` (hex
SHA-256 of the canonical standard-JSON input, which embeds every source).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from offchain.errors import MarketError

__all__ = ["ArtifactError", "MarketArtifact", "market_abi", "market_artifact"]

_RESOURCE = "MPCMarket.json"


class ArtifactError(MarketError, RuntimeError):
    """The shipped artifact is missing or malformed (a broken install: reinstall the package or
    run ``make abi`` in a checkout)."""


@dataclass(frozen=True)
class MarketArtifact:
    """The compiled MPCMarket as shipped.

    Attributes:
        contract_name: ``"MPCMarket"``.
        source_name: Source unit, ``"contracts/MPCMarket.sol"``.
        abi: ABI entries (functions, events, errors), as solc emits them.
        bytecode: Creation code, ``0x``-hex (deploy with the constructor arguments appended).
        deployed_bytecode: Runtime code, ``0x``-hex (EIP-170: at most 24,576 bytes).
        compiler_version: solc version, e.g. ``"0.8.28"``.
        settings: Compiler settings (``optimizer``, ``viaIR``, ``evmVersion``).
        input_sha256: Hex SHA-256 of the canonical standard-JSON input.
    """

    contract_name: str
    source_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    settings: dict[str, Any]
    input_sha256: str


@cache
def market_artifact() -> MarketArtifact:
    """The shipped artifact, read once per process from the package data.

    Raises:
        ArtifactError: the file is missing, not JSON, or lacks a field.
    """
    try:
        text = resources.files(__package__).joinpath("abi", _RESOURCE).read_text(encoding="utf-8")
        doc = json.loads(text)
        return MarketArtifact(
            contract_name=str(doc["contractName"]),
            source_name=str(doc["sourceName"]),
            abi=list(doc["abi"]),
            bytecode=str(doc["bytecode"]),
            deployed_bytecode=str(doc["deployedBytecode"]),
            compiler_version=str(doc["compiler"]["version"]),
            settings=dict(doc["compiler"]["settings"]),
            input_sha256=str(doc["standardJsonInputSha256"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"shipped artifact offchain/chain/abi/{_RESOURCE} unusable: {exc}"
                            " (run `make abi`)") from exc


def market_abi() -> list[dict[str, Any]]:
    """The MPCMarket ABI from the shipped artifact (a fresh list; entries are shared).

    Raises:
        ArtifactError: as :func:`market_artifact`.
    """
    return list(market_artifact().abi)
