"""Supervising the detached processes of a local network: start one in its own session with
its output appended to a log, recognise it again later (pid *and* command line, so a recycled
pid is not mistaken for it), wait for its ``{"event": "ready"}`` line, and stop it (SIGTERM to
its process group, SIGKILL after a timeout).

The processes outlive the ``mpc-market up`` that started them; ``pids.json`` in the state
directory (:mod:`offchain.devnet.state_dir`) records them for ``down``. Children inherit this
process's environment plus ``PYTHONUNBUFFERED=1`` and the project root on ``PYTHONPATH``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from offchain.devnet.state_dir import PIDS_FILE, LocalNetError, read_json

__all__ = [
    "ANVIL_STOP_TIMEOUT_S",
    "PROJECT_ROOT",
    "STOP_TIMEOUT_S",
    "Proc",
    "alive",
    "api_available",
    "child_env",
    "health",
    "last_line",
    "log_since",
    "read_pids",
    "ready_event",
    "running",
    "send_signal",
    "spawn",
    "stop",
    "stop_all",
]

STOP_TIMEOUT_S = 10.0  # SIGTERM -> SIGKILL
ANVIL_STOP_TIMEOUT_S = 30.0  # anvil writes its state file on SIGTERM: give it time
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    """A process started by ``up`` (a pids.json entry): ``pid`` and ``cmd`` (its argv, what
    :func:`alive` compares /proc/PID/cmdline with), ``log`` (path) and ``started_at`` (Unix
    seconds)."""

    role: str  # "anvil" | "node" | "api"
    name: str  # "anvil", "node-0", ..., "api"
    pid: int
    cmd: list[str]
    log: str
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The pids.json entry: every field by name."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Proc:
        """Inverse of :meth:`to_json`; KeyError, TypeError or ValueError if malformed."""
        return cls(role=str(doc["role"]), name=str(doc["name"]), pid=int(doc["pid"]),
                   cmd=[str(c) for c in doc["cmd"]], log=str(doc["log"]),
                   started_at=float(doc.get("started_at", 0)))


# Popen objects of the detached children, kept so they are not garbage-collected while running.
_children: list[subprocess.Popen[bytes]] = []


def alive(proc: Proc) -> bool:
    """Whether ``proc`` still runs: its pid exists, is not a zombie, and (on Linux) runs the
    recorded command line, so a recycled pid is not mistaken for it."""
    with contextlib.suppress(ChildProcessError, OSError):
        pid, _status = os.waitpid(proc.pid, os.WNOHANG)  # reap it if it is our exited child
        if pid == proc.pid:
            return False
    try:
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: the pid was recycled
    proc_dir = Path(f"/proc/{proc.pid}")
    if not proc_dir.is_dir():
        return True  # no procfs: trust the pid
    try:
        stat = (proc_dir / "stat").read_text()
        cmdline = (proc_dir / "cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    return cmdline.rstrip(b"\0").split(b"\0") == [c.encode() for c in proc.cmd]


def send_signal(proc: Proc, sig: signal.Signals) -> None:
    """Signal the process's group (each was started as a session leader), else the process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def stop(procs: Sequence[Proc], timeout_s: float) -> list[tuple[Proc, str]]:
    """SIGTERM every live one, wait up to ``timeout_s`` for all, SIGKILL the rest."""
    live = [p for p in procs if alive(p)]
    for p in live:
        send_signal(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    pending = list(live)
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [p for p in pending if alive(p)]
    for p in pending:
        send_signal(p, signal.SIGKILL)
    end = time.monotonic() + 5.0
    while any(alive(p) for p in pending) and time.monotonic() < end:
        time.sleep(0.05)
    return [(p, "killed" if p in pending else "stopped") for p in live]


def stop_all(procs: Sequence[Proc]) -> list[tuple[Proc, str]]:
    """SIGTERM the API, then the nodes, and wait for them (together); then anvil, last, as
    it writes its state file on SIGTERM and the others may still be sending it requests."""
    rank = {"api": 0, "node": 1}
    first = sorted((p for p in procs if p.role in rank), key=lambda p: rank[p.role])
    out = stop(first, STOP_TIMEOUT_S)
    out += stop([p for p in procs if p.role not in rank], ANVIL_STOP_TIMEOUT_S)
    return out


def read_pids(state_dir: Path) -> list[Proc]:
    """The processes ``state_dir/pids.json`` records, alive or not ([] without the file).
    Raises LocalNetError if the file is not valid JSON or not a list of processes."""
    path = state_dir / PIDS_FILE
    if not path.is_file():
        return []
    doc = read_json(path)
    try:
        return [Proc.from_json(p) for p in doc["processes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise LocalNetError(f"{path} is malformed ({exc}); stop its processes by hand and "
                            "remove it") from None


def running(state_dir: Path) -> list[Proc]:
    """The recorded processes of ``state_dir`` that are still alive."""
    return [p for p in read_pids(state_dir.resolve()) if alive(p)]


def spawn(cmd: list[str], log_file: Path, *, cwd: Path | None = None,
          env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``cmd`` in its own session, stdin /dev/null, stdout+stderr appended to
    ``log_file``; returns the process and the log offset its output starts at."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        offset = log.tell()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd,
                                env=env)
    _children.append(proc)
    return proc, offset


def log_since(log_file: Path, offset: int) -> list[str]:
    """The lines ``log_file`` holds from byte ``offset`` on (undecodable bytes replaced; []
    if it cannot be read)."""
    try:
        with open(log_file, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()


def last_line(log_file: Path, offset: int) -> str:
    """The last non-blank line of ``log_file`` from ``offset`` on, or "(no output)"."""
    lines = [ln.strip() for ln in log_since(log_file, offset) if ln.strip()]
    return lines[-1] if lines else "(no output)"


def ready_event(log_file: Path, offset: int) -> dict[str, Any] | None:
    """The ``{"event": "ready", ...}`` line a node or the API printed, if any yet."""
    for line in log_since(log_file, offset):
        line = line.strip()
        if line.startswith("{") and '"ready"' in line:
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("event") == "ready":
                    return doc
    return None


def child_env() -> dict[str, str]:
    """This process's environment plus ``PYTHONUNBUFFERED=1`` and the project root first on
    ``PYTHONPATH``, so a child runs this checkout's ``offchain`` and ``api``."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(PROJECT_ROOT) + (os.pathsep + path if path else "")}


def health(url: str) -> dict[str, Any]:
    """GET url/v1/health; raises httpx.HTTPError unless it answers 200 with a JSON object."""
    r = httpx.get(url.rstrip("/") + "/v1/health", timeout=5.0)
    r.raise_for_status()
    doc = r.json()
    if not isinstance(doc, dict):
        raise httpx.HTTPError("health answer is not a JSON object")
    return doc


def api_available() -> bool:
    """Whether ``python -m api`` (the buyer API package) exists."""
    if (PROJECT_ROOT / "api" / "__main__.py").is_file():
        return True
    try:
        return importlib.util.find_spec("api.__main__") is not None
    except (ImportError, ValueError):
        return False
