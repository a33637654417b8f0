"""Compile the Solidity contracts in ``contracts/`` with solc-js through py-solc-x.

No native ``solc`` exists on these machines: the compiler is the npm ``solc`` package (the official
compiler built to WebAssembly), driven through ``scripts/solc-adapter.js``, a small
``solc``-compatible command line (``--version`` / ``--standard-json``) that py-solc-x accepts as
``solc_binary``. Only :func:`solcx.compile_standard` works with it.

The standard-JSON input is self-contained: every imported file (the project's own and
``@openzeppelin/contracts/...`` from ``node_modules``) is read here and placed in ``sources``, so
the SHA-256 of the input plus the compiler version identifies the output completely. Artifacts are
cached as ``<root>/.cache/solc/<sha256>.json``; a cache hit costs a file read (~ms) instead of a
compile (~3 s).

Settings: optimizer on (200 runs), viaIR (about 6 k gas less per finalizeJob than the legacy
pipeline; a cold compile takes ~9 s instead of ~4 s), ``evmVersion`` "cancun".

The deployed contract's artifact is also shipped with the package, as
``offchain/chain/abi/MPCMarket.json`` (read by :mod:`offchain.chain.artifacts`, so that a node, the
auditor and the API need neither ``contracts/`` nor npm). ``make abi``, i.e.
``python -m offchain.devnet.compile --write-abi``, regenerates it; ``--check`` exits 1 if it is
stale.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from offchain.errors import MarketError

__all__ = [
    "ARTIFACT_PATH",
    "EVM_VERSION",
    "OPTIMIZER_RUNS",
    "CompiledContract",
    "CompilerError",
    "CompilerNotInstalledError",
    "compile_contracts",
    "market_artifact_document",
    "repo_root",
    "standard_input_sha256",
    "write_abi",
]

#: Where ``make abi`` writes the shipped MPCMarket artifact, relative to the project root.
ARTIFACT_PATH = PurePosixPath("offchain/chain/abi/MPCMarket.json")

EVM_VERSION = "cancun"
OPTIMIZER_RUNS = 200
_ADAPTER = PurePosixPath("scripts/solc-adapter.js")
_IMPORT_RE = re.compile(r"""^\s*import\s+(?:[^;'"]*?\bfrom\s+)?["']([^"']+)["']""", re.MULTILINE)


class CompilerError(MarketError, RuntimeError):
    """The compiler rejected the sources or could not be run."""


class CompilerNotInstalledError(CompilerError):
    """``node_modules`` (solc-js, OpenZeppelin) or ``node`` is missing."""


@dataclass(frozen=True)
class CompiledContract:
    """One compiled contract.

    Attributes:
        name: Contract name (e.g. ``"MPCMarket"``).
        source: Source unit name (e.g. ``"contracts/MPCMarket.sol"``).
        abi: The contract ABI (list of JSON entries, errors and events included).
        bytecode: Creation code as ``0x``-hex (``"0x"`` for abstract contracts).
        deployed_bytecode: Runtime code as ``0x``-hex.
    """

    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def repo_root() -> Path:
    """The project root: ``$MPC_MARKET_ROOT`` if set, else the nearest ancestor of this file
    holding both ``contracts/`` and ``node_modules/solc``.

    Raises:
        CompilerNotInstalledError: no such directory (``node_modules`` not installed).
    """
    env = os.environ.get("MPC_MARKET_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    with_contracts: Path | None = None
    for parent in here.parents:
        if (parent / "contracts").is_dir():
            with_contracts = with_contracts or parent
            if (parent / "node_modules" / "solc").is_dir():
                return parent
    where = with_contracts or here.parents[2]
    raise CompilerNotInstalledError(
        f"node_modules/solc not found above {here} (project root {where}): run `make install`"
    )


def _check_toolchain(root: Path) -> Path:
    for needed in ("node_modules/solc/package.json", "node_modules/@openzeppelin/contracts"):
        if not (root / needed).exists():
            raise CompilerNotInstalledError(f"{root / needed} is missing: run `make install`")
    adapter = root / _ADAPTER
    if not adapter.is_file():
        raise CompilerNotInstalledError(f"compiler adapter {adapter} is missing")
    if shutil.which("node") is None:
        raise CompilerNotInstalledError("`node` is not on PATH (needed to run solc-js)")
    return adapter


def _compiler_version(root: Path) -> str:
    meta = json.loads((root / "node_modules/solc/package.json").read_text(encoding="utf-8"))
    return str(meta["version"])


def _resolve_unit(importer: str, target: str) -> str:
    """Solidity source unit name of ``target`` imported from unit ``importer``."""
    if target.startswith(("./", "../")):
        parts: list[str] = list(PurePosixPath(importer).parent.parts)
        for part in PurePosixPath(target).parts:
            if part == "..":
                if not parts:
                    raise CompilerError(f"import {target!r} in {importer} escapes the root")
                parts.pop()
            elif part != ".":
                parts.append(part)
        return "/".join(parts)
    return target


def _read_unit(root: Path, unit: str) -> str:
    for base in (root, root / "node_modules"):
        path = (base / unit).resolve()
        if path.is_relative_to(base.resolve()) and path.is_file():
            return path.read_text(encoding="utf-8")
    raise CompilerError(f"cannot resolve Solidity import {unit!r} under {root}")


def _collect_sources(root: Path, include_tests: bool = False) -> dict[str, dict[str, str]]:
    """The roots ``contracts/*.sol`` (``MPCMarket.sol``) and ``contracts/examples/*.sol`` (plus
    the ``contracts/test/*.sol`` test doubles if asked) and their transitive imports (``core/``,
    ``interfaces/``, ``consumers/``, ``libraries/``, OpenZeppelin), keyed by source unit name."""
    own = sorted((root / "contracts").glob("*.sol"))
    if not own:
        raise CompilerError(f"no Solidity sources in {root / 'contracts'}")
    pending = [f"contracts/{p.name}" for p in own]
    pending += [f"contracts/examples/{p.name}"
                for p in sorted((root / "contracts" / "examples").glob("*.sol"))]
    if include_tests:
        pending += [f"contracts/test/{p.name}"
                    for p in sorted((root / "contracts" / "test").glob("*.sol"))]
    sources: dict[str, dict[str, str]] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        text = _read_unit(root, unit)
        sources[unit] = {"content": text}
        pending.extend(_resolve_unit(unit, imp) for imp in _IMPORT_RE.findall(text))
    return dict(sorted(sources.items()))


def _standard_input(sources: dict[str, dict[str, str]]) -> dict[str, Any]:
    return {
        "language": "Solidity",
        "sources": sources,
        "settings": {
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "viaIR": True,
            "evmVersion": EVM_VERSION,
            "outputSelection": {
                unit: {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
                for unit in sources
                if unit.startswith("contracts/")
            },
        },
    }


def _canonical(std_input: dict[str, Any]) -> str:
    return json.dumps(std_input, sort_keys=True, separators=(",", ":"))


def standard_input_sha256(std_input: dict[str, Any]) -> str:
    """SHA-256 (hex) of a standard-JSON input in canonical form: ``json.dumps`` with sorted keys
    and no whitespace (``separators=(",", ":")``), UTF-8. With the compiler version it pins the
    output (the input holds every source, OpenZeppelin's included)."""
    return hashlib.sha256(_canonical(std_input).encode()).hexdigest()


def _run_compiler(root: Path, adapter: Path, std_input: dict[str, Any]) -> dict[str, Any]:
    import solcx  # local import: only needed on a cache miss

    try:
        out: dict[str, Any] = solcx.compile_standard(
            std_input,
            solc_binary=adapter,
            base_path=root,
            allow_paths=[root, root / "node_modules"],
        )
    except solcx.exceptions.SolcError as exc:
        errors = getattr(exc, "error_dict", None) or []
        detail = "\n".join(
            str(e.get("formattedMessage", e)) for e in errors if e.get("severity") == "error"
        )
        raise CompilerError(f"Solidity compilation failed:\n{detail or exc}") from None
    return out


def _extract(output: dict[str, Any]) -> dict[str, CompiledContract]:
    result: dict[str, CompiledContract] = {}
    for unit, contracts in output.get("contracts", {}).items():
        if not unit.startswith("contracts/"):
            continue
        for name, art in contracts.items():
            result[name] = CompiledContract(
                name=name,
                source=unit,
                abi=art["abi"],
                bytecode="0x" + art["evm"]["bytecode"]["object"],
                deployed_bytecode="0x" + art["evm"]["deployedBytecode"]["object"],
            )
    return result


def compile_contracts(*, use_cache: bool = True,
                      include_tests: bool = False) -> dict[str, CompiledContract]:
    """Compile every contract in ``contracts/`` (cached).

    Args:
        include_tests: also compile the test doubles in ``contracts/test/``.
        use_cache: read/write ``<root>/.cache/solc/<sha256>.json`` (key: SHA-256 of the
            standard-JSON input and the solc version).

    Returns:
        Contract name -> :class:`CompiledContract`, for the contracts defined in ``contracts/``.

    Raises:
        CompilerNotInstalledError: ``node_modules`` or ``node`` missing (run ``make install``).
        CompilerError: the sources do not compile (message holds solc's diagnostics).
    """
    root = repo_root()
    adapter = _check_toolchain(root)
    version = _compiler_version(root)
    std_input = _standard_input(_collect_sources(root, include_tests))
    canonical = _canonical(std_input)
    key = hashlib.sha256(f"solc-js {version}\n{canonical}".encode()).hexdigest()
    cache_file = root / ".cache" / "solc" / f"{key}.json"

    if use_cache and cache_file.is_file():
        try:
            cached: dict[str, Any] = json.loads(cache_file.read_text(encoding="utf-8"))
            return _extract(cached)
        except (ValueError, KeyError):
            pass  # corrupt cache entry: recompile and overwrite

    output = _run_compiler(root, adapter, std_input)
    contracts = _extract(output)
    if not contracts:
        raise CompilerError("the compiler returned no contracts")
    if use_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"contracts": output["contracts"]}, fh)
        os.replace(tmp, cache_file)
    return contracts


# ----------------------------------------------------------------------------- shipped artifact


def market_artifact_document() -> dict[str, Any]:
    """The shipped artifact of MPCMarket, as ``make abi`` writes it, compiled now (cached).

    Returns:
        ``{"contractName", "sourceName", "abi", "bytecode", "deployedBytecode" (0x-hex),
        "compiler": {"name": "solc-js", "version", "settings": {optimizer, viaIR,
        evmVersion}}, "standardJsonInputSha256"}``, where the hash is
        :func:`standard_input_sha256` of the product sources' input (test doubles excluded).

    Raises:
        CompilerNotInstalledError, CompilerError: as :func:`compile_contracts`.
    """
    root = repo_root()
    _check_toolchain(root)
    std_input = _standard_input(_collect_sources(root, include_tests=False))
    art = compile_contracts()["MPCMarket"]
    settings = {k: v for k, v in std_input["settings"].items() if k != "outputSelection"}
    return {
        "contractName": art.name,
        "sourceName": art.source,
        "compiler": {"name": "solc-js", "version": _compiler_version(root), "settings": settings},
        "standardJsonInputSha256": standard_input_sha256(std_input),
        "abi": art.abi,
        "bytecode": art.bytecode,
        "deployedBytecode": art.deployed_bytecode,
    }


def _render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=False) + "\n"


def write_abi(path: Path | None = None) -> Path:
    """Compile ``contracts/`` and write the shipped artifact (default ``<root>/ARTIFACT_PATH``)
    atomically; returns the path written. Raises as :func:`market_artifact_document`."""
    target = path or repo_root() / ARTIFACT_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(_render(market_artifact_document()))
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; the artifact is package data
    os.replace(tmp, target)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m offchain.devnet.compile [--write-abi | --check]``: compile (default), write the
    shipped artifact, or exit 1 if the shipped one differs from a fresh compile."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m offchain.devnet.compile",
                                     description=main.__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write-abi", action="store_true", help=f"write {ARTIFACT_PATH}")
    mode.add_argument("--check", action="store_true", help=f"fail if {ARTIFACT_PATH} is stale")
    args = parser.parse_args(argv)
    try:
        if args.write_abi:
            print(f"wrote {write_abi()}")
        elif args.check:
            shipped = repo_root() / ARTIFACT_PATH
            fresh = _render(market_artifact_document())
            if not shipped.is_file() or shipped.read_text(encoding="utf-8") != fresh:
                print(f"{ARTIFACT_PATH} is stale: run `make abi`")
                return 1
            print(f"{ARTIFACT_PATH} is up to date")
        else:
            for name, art in sorted(compile_contracts().items()):
                size = (len(art.deployed_bytecode) - 2) // 2
                print(f"{name:28} {art.source:48} runtime {size:6} bytes")
    except CompilerError as exc:
        print(exc)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
