"""One error root: every exception class defined in ``offchain`` and ``api`` subclasses
``offchain.errors.MarketError``, and keeps its stdlib base so plain ``except`` clauses still work.

Found by importing every module of both packages (``__main__`` modules excepted: importing them
runs the program) and walking the classes each defines.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import api
import offchain
from offchain.crypto.shamir import SharingError
from offchain.encoding.fixedpoint import FixedPointError
from offchain.errors import MarketError, ProtocolError
from offchain.protocol import beacon, job
from offchain.wire.envelope import EnvelopeError, Malformed


def all_modules() -> list[ModuleType]:
    modules: list[ModuleType] = []
    for package in (offchain, api):
        modules.append(package)
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.rpartition(".")[2] == "__main__":
                continue
            modules.append(importlib.import_module(info.name))
    return modules


def exception_classes() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for module in all_modules():
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if obj.__module__ == module.__name__ and issubclass(obj, BaseException):
                found.append(obj)
    return found


def test_every_exception_class_has_the_one_root() -> None:
    classes = exception_classes()
    assert len(classes) >= 30, [c.__qualname__ for c in classes]
    stray = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, MarketError)]
    assert not stray, f"not MarketError subclasses: {stray}"


def test_stdlib_mixins_keep_plain_except_clauses_working() -> None:
    assert issubclass(SharingError, ValueError) and issubclass(FixedPointError, ValueError)
    assert issubclass(ProtocolError, RuntimeError)
    assert issubclass(Malformed, EnvelopeError) and issubclass(EnvelopeError, MarketError)


def test_both_protocols_raise_the_shared_protocol_error() -> None:
    """The beacon protocol does not borrow its error from the job protocol."""
    assert job.ProtocolError is ProtocolError
    assert beacon.ProtocolError is ProtocolError
    assert "offchain.protocol.job" not in {
        getattr(v, "__module__", None) for v in vars(beacon).values() if inspect.isclass(v)}
