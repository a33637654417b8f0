"""The layer rule, checked on the source: no module imports a layer above its own, and the
import graph has no cycle, counting every import (top-level, lazy inside functions, and
``if TYPE_CHECKING:`` imports alike).

The layers, bottom-up (``offchain/README.md`` lists the modules of each):

0. ``offchain.errors``, ``offchain.types``  -- the error root and the shared vocabulary
1. ``offchain.crypto``                        -- field, Shamir, Pedersen, Merkle
2. ``offchain.encoding``                      -- fixed point, query grammar, EIP-712 types
3. ``offchain.wire``                          -- keys, envelopes, payloads, transcripts
4. ``offchain.protocol``                      -- pure state machines
5. ``offchain.chain``                         -- web3 clients
6. ``offchain.node``                          -- the daemon
7. ``offchain.audit``                         -- re-verification from chain data
8. ``offchain.devnet``                        -- local-network tools (never under node/audit/api)
9. ``offchain.cli``, ``api``                  -- the user-facing top
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

LAYERS: list[tuple[str, ...]] = [
    ("offchain.errors", "offchain.types"),
    ("offchain.crypto",),
    ("offchain.encoding",),
    ("offchain.wire",),
    ("offchain.protocol",),
    ("offchain.chain",),
    ("offchain.node",),
    ("offchain.audit",),
    ("offchain.devnet",),
    ("offchain.cli", "api"),
]
# Packages that may not import each other although one sits above the other.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "api": ("offchain.devnet", "offchain.cli", "offchain.node"),
}


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    files = [*(ROOT / "offchain").rglob("*.py"), *(ROOT / "api").rglob("*.py")]
    return {module_name(p): p for p in sorted(files)}


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[tuple[str, int]]:
    """Every project module ``name`` imports, with the line, resolving ``from pkg import mod``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != name:
                yield t, node.lineno


def layer_of(name: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(name == p or name.startswith(p + ".") for p in prefixes):
            return rank
    if name == "offchain":
        return -1
    raise AssertionError(f"{name} belongs to no layer: add it to LAYERS in {__file__}")


def top_package(name: str) -> str:
    for prefixes in LAYERS:
        for p in prefixes:
            if name == p or name.startswith(p + "."):
                return p
    return name


GRAPH = {
    name: sorted(set(imports_of(name, path, set(source_modules()))))
    for name, path in source_modules().items()
}


def test_every_module_has_a_layer() -> None:
    for name in GRAPH:
        layer_of(name)


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_upward_import(name: str) -> None:
    mine = layer_of(name)
    bad = [
        f"{name} (layer {mine}) imports {dep} (layer {layer_of(dep)}) at line {line}"
        for dep, line in GRAPH[name]
        if layer_of(dep) > mine
        or any(dep == f or dep.startswith(f + ".") for f in FORBIDDEN.get(top_package(name), ()))
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle() -> None:
    deps = {n: {d for d, _ in ds} for n, ds in GRAPH.items()}
    # A package's __init__ re-exporting its own modules is not a cycle through its children.
    for n in deps:
        deps[n] = {d for d in deps[n] if not d.startswith(n + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(deps.get(n, ())):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d):], d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(deps):
        if n not in state:
            visit(n)


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import and a cycle in a synthetic tree are found."""
    pkg = tmp_path / "offchain" / "crypto"
    pkg.mkdir(parents=True)
    bad = pkg / "field.py"
    bad.write_text("from offchain.node import main\nimport offchain.chain.market\n")
    known = {"offchain.crypto.field", "offchain.node.main", "offchain.chain.market"}
    found = sorted(imports_of("offchain.crypto.field", bad, known))
    assert found == [("offchain.chain.market", 2), ("offchain.node.main", 1)]
    assert all(layer_of(d) > layer_of("offchain.crypto.field") for d, _ in found)
