"""Provider data sources: CSV and SQLite, and their error messages."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from offchain.node.datasource import (
    CsvSource,
    DataSourceError,
    SqliteSource,
    open_source,
    write_sqlite,
)
from tests.helpers.paths import ROOT


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "d.csv"
    p.write_text(text)
    return p


def test_csv_reads_exact_decimals(tmp_path: Path) -> None:
    src = CsvSource(write(tmp_path, "a,b\n0.1,2\n-3e2,4.50\n"))
    assert src.columns() == ["a", "b"]
    assert src.read_columns(["b", "a"]) == [(Decimal(2), Decimal("0.1")),
                                            (Decimal("4.50"), Decimal("-300"))]


def test_csv_tolerates_blanks_around_values(tmp_path: Path) -> None:
    src = CsvSource(write(tmp_path, "a, b\n1, 2\n 3 ,4\n"))
    assert src.read_columns(["b"]) == [(Decimal(2),), (Decimal(4),)]


def test_shipped_dataset() -> None:
    src = CsvSource(ROOT / "data" / "wdbc.csv")
    assert len(src.columns()) == 31
    rows = src.read_columns(["mean_radius", "benign"])
    assert len(rows) == 569
    assert sum(r[1] for r in rows) == 357  # 357 benign, 212 malignant (UCI description)


@pytest.mark.parametrize("text,cols,msg", [
    ("a,b\n1,2\n", ["c"], "unknown column 'c'"),
    ("a,b\n1,x\n", ["b"], r"column 'b', row 1"),
    ("a,b\n1,2\n3,nan\n", ["b"], r"row 2"),
    ("a,b\n1,\n", ["b"], r"column 'b', row 1"),
    ("", ["a"], "empty"),
    ("a,b\n", ["a"], "no data rows"),
    ("a,b\n1,2,3\n", ["a"], "3 fields"),
    ("a,a\n1,2\n", ["a"], "duplicate column"),
])
def test_csv_errors(tmp_path: Path, text: str, cols: list[str], msg: str) -> None:
    with pytest.raises(DataSourceError, match=msg):
        CsvSource(write(tmp_path, text)).read_columns(cols)


def test_csv_missing_and_binary(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="cannot read"):
        CsvSource(tmp_path / "nope.csv").read_columns(["a"])
    bad = tmp_path / "bin.csv"
    bad.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(DataSourceError):
        CsvSource(bad).read_columns(["a"])


def test_sqlite_round_trip(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    write_sqlite(db, ["x", "y"], [["0.1", "1"], ["0.2", "2"]])
    src = open_source(db)
    assert isinstance(src, SqliteSource)
    assert src.read_columns(["x"]) == [(Decimal("0.1"),), (Decimal("0.2"),)]
    assert src.read_columns([]) == [(), ()]  # a count query reads no column
    write_sqlite(db, ["x"], [[" 1.5 "]])
    assert open_source(db).read_columns(["x"]) == [(Decimal("1.5"),)]
    with pytest.raises(DataSourceError, match="unknown column"):
        src.read_columns(["z"])


def test_sqlite_real_values_and_errors(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE records (v REAL, s TEXT)")
        con.execute("INSERT INTO records VALUES (0.1, 'x')")
    con.close()
    src = SqliteSource(db, "records")
    assert src.read_columns(["v"]) == [(Decimal("0.1"),)]
    with pytest.raises(DataSourceError, match="column 's', row 1"):
        src.read_columns(["s"])
    with pytest.raises(DataSourceError, match="no table"):
        SqliteSource(db, "other").columns()
    with pytest.raises(DataSourceError, match="no such file"):
        SqliteSource(tmp_path / "none.db", "records").columns()
