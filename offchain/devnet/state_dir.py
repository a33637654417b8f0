"""The state directory of a local network (``mpc-market up`` / ``down``): its layout, its JSON
files, its lock, and the check of the data set a new network is made over.

Layout (default ``.mpc-market/`` in the current directory)::

    network.json        what the first ``up`` created: market address and block, chain id,
                        dataset (name, columns, source CSV), node directories and addresses
    deployment.json     the manifest, rewritten by every ``up`` (RPC/API URL, node endpoints)
    pids.json           pid and command line of every running process (only while up)
    .lock               flock(2)ed by one ``up`` or ``down`` at a time
    anvil/state.json    the chain (anvil --state; also written every 5 s); state.json.prev is
                        the copy taken before the last resume
    nodes/node-I/       keys.json (mode 0600), the node's slice of the data, config.json, state/
    api/                the API's own state (idempotency store)
    logs/               anvil.log, node-I.log, api.log (stdout and stderr, appended)

Node keys and the data slices are secrets of the local network's owner: they never leave the
directory (nothing here prints them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from offchain.encoding.fixedpoint import FixedPointError, parse_decimal
from offchain.errors import MarketError
from offchain.node.datasource import CsvSource, DataSourceError

__all__ = [
    "DEFAULT_STATE_DIR",
    "LOCK_FILE",
    "MANIFEST_FILE",
    "NETWORK_FILE",
    "PIDS_FILE",
    "LocalNetError",
    "dataset_name",
    "locked",
    "read_csv",
    "read_json",
    "write_json",
]

DEFAULT_STATE_DIR = Path(".mpc-market")
NETWORK_FILE = "network.json"
MANIFEST_FILE = "deployment.json"
PIDS_FILE = "pids.json"
LOCK_FILE = ".lock"


class LocalNetError(MarketError, RuntimeError):
    """A user-facing failure with a one-line message; ``code`` 2 for bad input, 1 otherwise."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ----------------------------------------------------------------------------- files


def write_json(path: Path, doc: Any) -> None:
    """Write ``doc`` as indented JSON to ``path`` atomically (a temporary file renamed over
    it: readers such as the API never see half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The JSON document in ``path``; LocalNetError if it cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise LocalNetError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise LocalNetError(f"{path} is not valid JSON: {exc}") from None


@contextlib.contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Exclusive lock on the state directory (created if missing) for one ``up`` or ``down``;
    LocalNetError at once if another holds it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / LOCK_FILE, "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LocalNetError(f"another `mpc-market up` or `down` is running on "
                                f"{state_dir}") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- the data set


def dataset_name(data: Path) -> str:
    """The dataset name a network over ``data`` announces: the file's stem with anything but
    ``[A-Za-z0-9_.-]`` replaced, at most 128 characters, "data" if nothing is left."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", data.stem).strip("_.-")[:128]
    return name or "data"


def read_csv(data: Path, providers: int) -> tuple[list[str], list[list[str]],
                                                    list[dict[str, str]]]:
    """Header, rows and column types of the CSV; LocalNetError (code 2) if it is unusable."""
    if not data.is_file():
        raise LocalNetError(f"--data {data}: no such file", 2)
    try:
        header, body = CsvSource(data).records()
    except DataSourceError as exc:
        raise LocalNetError(f"--data {exc}", 2) from None
    if not all(header):
        raise LocalNetError(f"--data {data}: empty column name in the header", 2)
    for r, row in enumerate(body, start=1):
        if len(row) != len(header):
            raise LocalNetError(f"--data {data}: row {r} has {len(row)} fields, the header has "
                                f"{len(header)}", 2)
    if len(body) < providers:
        raise LocalNetError(f"--data {data}: {len(body)} rows cannot give each of {providers} "
                            "providers a row", 2)
    columns = []
    for i, name in enumerate(header):
        numeric = True
        for row in body:
            try:
                parse_decimal(row[i].strip())
            except FixedPointError:
                numeric = False
                break
        # "number": every cell is a decimal literal (what the nodes can aggregate); anything
        # else is "string" (the API's manifest schema: number | integer | string | boolean).
        columns.append({"name": name, "type": "number" if numeric else "string"})
    return header, body, columns
