"""What every command of the ``mpc-market`` CLI shares: one way to fail, one SIGTERM handler,
one place that catches the package's error root, and the transaction table.

Errors print one line ``error: <message>`` on stderr (then one indented line per extra detail)
and exit with the given status: 2 for bad input, 1 for a failure, 130 when interrupted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from offchain.errors import MarketError

__all__ = ["err", "fail", "guard", "progress_printer", "safe", "terminate", "tx_table"]

err = Console(stderr=True)
"""The stderr console: progress lines and errors."""

P = ParamSpec("P")
R = TypeVar("R")


def safe(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` for the terminal: Rich markup escaped, and control characters (a query string on
    chain may hold any, ANSI escapes included) shown as escapes; ``keep_newlines`` leaves line
    breaks as they are (multi-line error messages)."""
    return escape("".join(c if c.isprintable() or (keep_newlines and c == "\n")
                          else repr(c)[1:-1] for c in text))


def fail(message: str, code: int = 2, lines: Iterable[str] = ()) -> NoReturn:
    """Print ``error: message`` (and each of ``lines`` indented) on stderr, with markup and
    control characters escaped, and exit with status ``code`` (raises typer.Exit)."""
    err.print(f"[bold red]error:[/] {safe(message, keep_newlines=True)}", highlight=False,
              soft_wrap=True)
    for line in lines:
        err.print(f"  {safe(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def terminate(signum: int, frame: object) -> None:
    """SIGTERM handler: raise KeyboardInterrupt, so SIGTERM runs the same clean-up as Ctrl-C."""
    raise KeyboardInterrupt


def guard(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so that any :class:`~offchain.errors.MarketError` it lets through ends as
    one ``error:`` line: the exit status is the error's ``code`` attribute when it has an int
    one (CliError, LocalNetError), else 1. Details in a ``lines`` attribute are printed too.
    The one place the CLI catches the error root."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except MarketError as exc:
            code = getattr(exc, "code", 1)
            fail(str(exc), code if isinstance(code, int) else 1, getattr(exc, "lines", ()))

    return wrapper


def progress_printer(as_json: bool) -> Callable[[str], None] | None:
    """A progress callback printing dim ``· msg`` lines on stderr; None with ``--json``."""
    if as_json:
        return None
    return lambda msg: err.print(f"[dim]· {safe(msg)}[/]", highlight=False)


def tx_table(txs: Iterable[Mapping[str, Any]], *, block: bool = False) -> Table:
    """A Rich table of transactions: name, full hash (for ``cast``), optionally the block, and
    gas used. Each item needs ``name``, ``hash`` and ``gas_used`` (and ``block``)."""
    table = Table(title="transactions")
    table.add_column("name")
    table.add_column("hash", overflow="fold", min_width=20)
    if block:
        table.add_column("block", justify="right")
    table.add_column("gas used", justify="right")
    for tx in txs:
        cells = [str(tx.get("name")), str(tx.get("hash"))]
        if block:
            cells.append(str(tx.get("block")))
        cells.append(f"{int(tx.get('gas_used', 0)):,}")
        table.add_row(*cells)
    return table
