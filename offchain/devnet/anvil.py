"""A local development chain: Foundry's ``anvil`` from ``node_modules`` (npm @foundry-rs/anvil).

:class:`Anvil` starts ``anvil --host 127.0.0.1 --port 0 --hardfork prague`` (chain id 31337 unless
overridden, 10 accounts funded with 10,000 ETH each), learns the port the OS picked from its
``Listening on 127.0.0.1:PORT`` line and stops it again (SIGTERM, then SIGKILL) on
:meth:`Anvil.stop`, on interpreter exit and on SIGTERM/SIGHUP of the owning process. When started
from the main thread on Linux it is also asked to die with its parent (``PR_SET_PDEATHSIG``), so a
SIGKILLed owner does not leak it.

:func:`start_detached` starts an anvil that outlives its starter instead (own session, output
appended to a log file), for ``mpc-market up``: the caller records its pid and stops it with
SIGTERM, on which anvil writes its ``--state`` file.

Its funded default accounts and the wait for its JSON-RPC are in :mod:`offchain.devnet.rpc`.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from offchain.devnet.compile import repo_root
from offchain.devnet.rpc import wait_for_rpc
from offchain.devnet.supervisor import spawn
from offchain.errors import MarketError

__all__ = [
    "Anvil",
    "AnvilError",
    "DetachedAnvil",
    "anvil_binary",
    "anvil_command",
    "start_detached",
]

_ANVIL_REL = Path("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil")
_LISTEN_RE = re.compile(r"Listening on (\d+\.\d+\.\d+\.\d+):(\d+)")
_PR_SET_PDEATHSIG = 1


class AnvilError(MarketError, RuntimeError):
    """anvil is missing, failed to start, or did not answer in time."""


def anvil_binary() -> Path:
    """Path of the native anvil binary in ``node_modules`` (AnvilError if absent)."""
    try:
        path = repo_root() / _ANVIL_REL
    except RuntimeError as exc:
        raise AnvilError(str(exc)) from exc
    if not path.is_file():
        raise AnvilError(f"{path} not found: run `make install`")
    return path


def anvil_command(
    extra_args: Sequence[str] = (), *, port: int = 0, binary: Path | None = None
) -> list[str]:
    """The anvil command line: ``anvil --host 127.0.0.1 --port PORT --hardfork prague ARGS``
    (port 0: the OS picks a free one, read back from the "Listening on" line)."""
    return [
        str(binary or anvil_binary()),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--hardfork", "prague",
        *extra_args,
    ]  # fmt: skip


@dataclass(frozen=True)
class DetachedAnvil:
    """An anvil started by :func:`start_detached`: nothing here stops it (the caller records
    ``pid`` and signals it; SIGTERM makes anvil dump its ``--state`` file)."""

    pid: int
    cmd: list[str]
    port: int

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_detached(
    extra_args: Sequence[str] = (),
    *,
    log_file: Path,
    port: int = 0,
    startup_timeout_s: float = 15.0,
    binary: Path | None = None,
) -> DetachedAnvil:
    """Start anvil in its own session (it outlives this process: no parent-death signal, no
    clean-up at exit), stdin from /dev/null, stdout and stderr appended to ``log_file``; return
    once it answers JSON-RPC.

    Raises:
        AnvilError: binary missing, anvil exited (e.g. port taken, unreadable ``--state``
            file) or did not answer within the timeout; it is killed then, and the message
            carries the last line it printed.
    """
    cmd = anvil_command(extra_args, port=port, binary=binary)
    proc, offset = spawn(cmd, log_file)
    deadline = time.monotonic() + startup_timeout_s

    def output() -> str:
        with open(log_file, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def last_line() -> str:  # anvil's error line if it printed one (usage hints follow it)
        lines = [ln.strip() for ln in output().splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.lower().startswith("error")]
        return (errors or lines or ["(no output)"])[-1]

    try:
        found: int | None = None
        while found is None:
            m = _LISTEN_RE.search(output())
            if m:
                found = int(m.group(2))
            elif proc.poll() is not None:
                raise AnvilError(f"anvil exited with code {proc.returncode}: {last_line()}")
            elif time.monotonic() > deadline:
                raise AnvilError(f"anvil did not report its port within {startup_timeout_s} s: "
                                 f"{last_line()}")
            else:
                time.sleep(0.02)
        try:
            wait_for_rpc(f"http://127.0.0.1:{found}", max(0.5, deadline - time.monotonic()))
        except TimeoutError as exc:
            raise AnvilError(f"anvil did not answer JSON-RPC: {exc}") from exc
    except BaseException:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        raise
    return DetachedAnvil(pid=proc.pid, cmd=cmd, port=found)


# ----------------------------------------------------------------------------- cleanup registry

_live: weakref.WeakSet[Anvil] = weakref.WeakSet()
_handlers_installed = False
_registry_lock = threading.Lock()


def _stop_all() -> None:
    for node in list(_live):
        node.stop()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    # Restore the default action and re-deliver so the process ends as it would have.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_cleanup() -> None:
    global _handlers_installed
    with _registry_lock:
        if _handlers_installed:
            return
        _handlers_installed = True
        atexit.register(_stop_all)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                # Only take over signals nobody else handles.
                if signal.getsignal(sig) is signal.SIG_DFL:
                    signal.signal(sig, _on_signal)


def _load_prctl() -> Any:
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


# Resolved in the parent so the child only makes one foreign call between fork and exec.
_PRCTL = _load_prctl()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


# ----------------------------------------------------------------------------- Anvil


class Anvil:
    """A running anvil devnet (context manager).

    Args:
        extra_args: further anvil arguments (e.g. ``["--block-time", "1"]``,
            ``["--state", path]``, ``["--chain-id", "1337"]``).
        startup_timeout_s: seconds to wait for the "Listening on" line and the first RPC answer.
        binary: anvil executable (default: :func:`anvil_binary`).

    Usage::

        with Anvil() as node:
            w3 = Web3(Web3.HTTPProvider(node.rpc_url))

    Raises:
        AnvilError: binary missing, process exited early, or no answer within the timeout
            (the message carries anvil's last output lines).
    """

    def __init__(
        self,
        extra_args: Sequence[str] = (),
        *,
        startup_timeout_s: float = 15.0,
        binary: Path | None = None,
    ) -> None:
        self._extra_args = list(extra_args)
        self._timeout_s = startup_timeout_s
        self._binary = binary
        self._proc: subprocess.Popen[str] | None = None
        self._port: int | None = None
        self._lines: collections.deque[str] = collections.deque(maxlen=200)
        self._ready = threading.Event()
        self._stop_lock = threading.Lock()
        self._reader: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> Anvil:
        """Start anvil and wait until it answers JSON-RPC; returns self. Idempotent."""
        if self._proc is not None:
            return self
        cmd = anvil_command(self._extra_args, binary=self._binary)
        _install_cleanup()
        in_main_thread = threading.current_thread() is threading.main_thread()
        pdeathsig = _PRCTL is not None and in_main_thread
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent if pdeathsig else None,
        )
        _live.add(self)
        self._reader = threading.Thread(
            target=self._drain, name=f"anvil-{self._proc.pid}-stdout", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + self._timeout_s
        try:
            while not self._ready.wait(0.02):
                if self._proc.poll() is not None:
                    raise AnvilError(
                        f"anvil exited with code {self._proc.returncode}:\n{self._tail()}"
                    )
                if time.monotonic() > deadline:
                    raise AnvilError(
                        f"anvil did not report its port within {self._timeout_s} s:\n{self._tail()}"
                    )
            wait_for_rpc(self.rpc_url, max(0.5, deadline - time.monotonic()))
        except BaseException:
            self.stop()
            raise
        return self

    def _drain(self) -> None:
        proc = self._proc
        if proc is None or proc.stdout is None:
            return
        for line in proc.stdout:  # keeps the pipe empty so anvil never blocks on logging
            self._lines.append(line.rstrip("\n"))
            if self._port is None:
                m = _LISTEN_RE.search(line)
                if m:
                    self._port = int(m.group(2))
                    self._ready.set()

    def _tail(self) -> str:
        return "\n".join(list(self._lines)[-20:])

    def stop(self) -> None:
        """Terminate anvil (SIGTERM, SIGKILL after 5 s). Safe to call twice or before start."""
        with self._stop_lock:
            proc = self._proc
            if proc is None or proc.returncode is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=5)
            if self._reader is not None:
                self._reader.join(timeout=1)
            _live.discard(self)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- properties

    @property
    def port(self) -> int:
        """TCP port anvil listens on (AnvilError if not started)."""
        if self._port is None:
            raise AnvilError("anvil is not running")
        return self._port

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """OS process id of anvil, None if not started."""
        return None if self._proc is None else self._proc.pid

    @property
    def output(self) -> list[str]:
        """The last (up to 200) lines anvil printed."""
        return list(self._lines)
