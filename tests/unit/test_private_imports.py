"""Private stays private, checked on the source: no module of ``offchain`` or ``api`` imports an
underscore name (``from offchain.x import _y``) from another project module, counting top-level,
lazy and ``if TYPE_CHECKING:`` imports alike. A name a sibling needs is made public once, in the
module that owns it.

Ruff's ``PLC2701`` (import-private-name, a preview rule) cannot hold this line here: it exempts
imports within the same top-level package, which is every import this test is about.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

PROJECT = ("offchain", "api")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_modules() -> dict[str, Path]:
    files = [p for top in PROJECT for p in (ROOT / top).rglob("*.py")]
    return {module_name(p): p for p in sorted(files)}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(name: str, source: str, is_pkg: bool) -> Iterator[tuple[int, str, str]]:
    """(line, module, private name) of each project-private name that module ``name`` imports
    from another module: ``from m import _x`` and ``import m._x`` (a private module)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, *([base] if base else [])])
            if base.split(".")[0] not in PROJECT or base == name:
                continue
            for part in base.split("."):
                if is_private(part):
                    yield node.lineno, base, part
            for alias in node.names:
                if is_private(alias.name):
                    yield node.lineno, base, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in PROJECT:
                    for part in parts:
                        if is_private(part):
                            yield node.lineno, alias.name, part


@pytest.mark.parametrize("name", sorted(source_modules()))
def test_no_private_import(name: str) -> None:
    path = source_modules()[name]
    bad = [f"{name} imports {private} from {module} at line {line}"
           for line, module, private in private_imports(name, path.read_text(),
                                                        path.name == "__init__.py")]
    assert not bad, "\n".join(bad)


def test_the_rule_catches_a_private_import() -> None:
    """The checker itself: each form of private import is found, public and dunder names and
    third-party modules are not."""
    source = (
        "from offchain.encoding.eip712 import Sig, _recover\n"
        "from .context import _Skip\n"
        "import offchain.audit._helpers\n"
        "from offchain import __version__\n"
        "from eth_keys.exceptions import BadSignature as _Bad\n"
        "def f() -> None:\n"
        "    from offchain.audit.report import _STATUS\n"
    )
    found = sorted(private_imports("offchain.audit.job", source, is_pkg=False))
    assert found == [
        (1, "offchain.encoding.eip712", "_recover"),
        (2, "offchain.audit.context", "_Skip"),
        (3, "offchain.audit._helpers", "_helpers"),
        (7, "offchain.audit.report", "_STATUS"),
    ]
