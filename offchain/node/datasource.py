"""A provider's private records: CSV files and SQLite tables.

A data source is read only by the provider node that owns it; nothing in it leaves the node except
through the shares of its local aggregates (``offchain/query.py``). Values are parsed as exact
decimals (``offchain/fixedpoint.parse_decimal``), so ``0.1`` stays ``0.1``.

Errors: every problem (missing or unreadable file, no header, empty data, unknown column, a
non-numeric or out-of-range value) raises :class:`DataSourceError` whose message names the file,
the column and the 1-based data row.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from offchain.encoding.fixedpoint import MAX_TERMS, FixedPointError, parse_decimal
from offchain.errors import MarketError

MAX_ROWS = MAX_TERMS  # per source; the committee refuses a total beyond it (protocol.job)


class DataSourceError(MarketError, ValueError):
    """The data cannot be used: the message says which file, column and row, and why."""


class DataSource(Protocol):
    """Tabular records with named columns."""

    def columns(self) -> list[str]:
        """Column names, in file order."""
        ...

    def read_columns(self, names: Sequence[str]) -> list[tuple[Decimal, ...]]:
        """Per row, the values of ``names`` in order (exact decimals). Raises DataSourceError."""
        ...


def _parse(value: object, where: str, column: str, row: int) -> Decimal:
    if isinstance(value, float):  # SQLite REAL: shortest repr is the value the writer meant
        value = repr(value)
    elif isinstance(value, str):  # blanks around a cell are layout, not data (CSV and TEXT)
        value = value.strip()
    try:
        return parse_decimal(str(value) if value is not None else "")
    except FixedPointError as exc:
        raise DataSourceError(f"{where}: column {column!r}, row {row}: {exc}") from exc


def _check_names(where: str, have: Sequence[str], names: Sequence[str]) -> list[int]:
    index = {name: i for i, name in enumerate(have)}
    missing = [n for n in names if n not in index]
    if missing:
        raise DataSourceError(
            f"{where}: unknown column {missing[0]!r}; columns are: {', '.join(have)}"
        )
    return [index[n] for n in names]


@dataclass(frozen=True)
class CsvSource:
    """A CSV file with a header row (UTF-8, comma separated)."""

    path: Path

    def records(self) -> tuple[list[str], list[list[str]]]:
        """The header and the data rows as raw text (blank lines skipped). DataSourceError if
        the file cannot be read, is empty, or repeats a column name."""
        try:
            with open(self.path, newline="", encoding="utf-8-sig") as f:
                rows = [r for r in csv.reader(f) if any(cell.strip() for cell in r)]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise DataSourceError(f"{self.path}: cannot read: {exc}") from exc
        if not rows:
            raise DataSourceError(f"{self.path}: the file is empty")
        header = [h.strip() for h in rows[0]]
        if len(set(header)) != len(header):
            raise DataSourceError(f"{self.path}: duplicate column names in the header")
        return header, rows[1:]

    def columns(self) -> list[str]:
        """The header's column names, in file order. Raises DataSourceError."""
        return self.records()[0]

    def read_columns(self, names: Sequence[str]) -> list[tuple[Decimal, ...]]:
        """Per data row, the values of ``names`` in order (exact decimals). Raises
        DataSourceError for an unknown column, no or more than ``MAX_ROWS`` rows, a short
        row, or a cell that is not a decimal."""
        header, rows = self.records()
        idx = _check_names(str(self.path), header, names)
        if not rows:
            raise DataSourceError(f"{self.path}: header only, no data rows")
        if len(rows) > MAX_ROWS:
            raise DataSourceError(f"{self.path}: more than {MAX_ROWS} rows")
        out: list[tuple[Decimal, ...]] = []
        for r, row in enumerate(rows, start=1):
            if len(row) != len(header):
                raise DataSourceError(
                    f"{self.path}: row {r} has {len(row)} fields, the header has {len(header)}"
                )
            out.append(tuple(_parse(row[i], str(self.path), names[k], r)
                             for k, i in enumerate(idx)))
        return out


@dataclass(frozen=True)
class SqliteSource:
    """One table of a SQLite database file, opened read-only."""

    path: Path
    table: str

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise DataSourceError(f"{self.path}: no such file")
        try:
            return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise DataSourceError(f"{self.path}: cannot open: {exc}") from exc

    def columns(self) -> list[str]:
        """The table's column names, in table order. Raises DataSourceError (no file, no
        table, unreadable)."""
        with self._connect() as con:
            try:
                info = con.execute("SELECT name FROM pragma_table_info(?)", (self.table,))
                cols = [str(r[0]) for r in info]
            except sqlite3.Error as exc:
                raise DataSourceError(f"{self.path}: cannot read: {exc}") from exc
        if not cols:
            raise DataSourceError(f"{self.path}: no table {self.table!r}")
        return cols

    def read_columns(self, names: Sequence[str]) -> list[tuple[Decimal, ...]]:
        """Per table row, the values of ``names`` in order (exact decimals; REAL cells by
        their shortest repr). Raises DataSourceError like :meth:`CsvSource.read_columns`."""
        where = f"{self.path}:{self.table}"
        _check_names(where, self.columns(), names)
        # Identifiers were checked against the table's own column list above; quote them anyway.
        cols = ", ".join('"' + n.replace('"', '""') + '"' for n in names) or "1"
        table = '"' + self.table.replace('"', '""') + '"'
        with self._connect() as con:
            try:
                rows = con.execute(f"SELECT {cols} FROM {table}").fetchall()  # noqa: S608
            except sqlite3.Error as exc:
                raise DataSourceError(f"{where}: cannot read: {exc}") from exc
        if not rows:
            raise DataSourceError(f"{where}: the table has no rows")
        return [tuple(_parse(v, where, names[k], r) for k, v in enumerate(row[: len(names)]))
                for r, row in enumerate(rows, start=1)]


def open_source(path: str | Path, table: str | None = None) -> DataSource:
    """A CsvSource, or a SqliteSource when ``table`` is given or the file ends in .db/.sqlite."""
    p = Path(path)
    if table is not None or p.suffix in (".db", ".sqlite", ".sqlite3"):
        return SqliteSource(p, table or "records")
    return CsvSource(p)


def write_sqlite(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]],
                 table: str = "records") -> None:
    """Write rows (kept as exact TEXT) into a new SQLite table; used to provision providers."""
    path.unlink(missing_ok=True)
    cols = ", ".join('"' + h.replace('"', '""') + '" TEXT' for h in header)
    marks = ", ".join("?" for _ in header)
    with sqlite3.connect(path) as con:
        con.execute(f'CREATE TABLE "{table}" ({cols})')
        con.executemany(f'INSERT INTO "{table}" VALUES ({marks})', rows)  # noqa: S608
    con.close()
