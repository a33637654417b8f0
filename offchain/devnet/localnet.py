"""A persistent local network: ``mpc-market up`` / ``mpc-market down``.

``up`` starts, detached from the calling shell, an anvil devnet whose state is kept in the state
directory, P provider node processes and the buyer API server, writes the deployment manifest and
returns once everything answers. ``down`` stops them again (anvil last, so that it writes its
state). A later ``up`` on the same directory resumes the same chain: same contracts, same jobs,
same node keys. Nothing is ever redeployed on a resume.

State directory layout (default ``.mpc-market/`` in the current directory)::

    network.json        what the first ``up`` created: market address and block, chain id,
                        dataset (name, columns, source CSV), node directories and addresses
    deployment.json     the manifest, rewritten by every ``up`` (RPC/API URL, node endpoints)
    pids.json           pid and command line of every running process (only while up)
    anvil/state.json    the chain (anvil --state; also written every 5 s); state.json.prev is
                        the copy taken before the last resume
    nodes/node-I/       keys.json (mode 0600), the node's slice of the data, config.json, state/
    api/                the API's own state (idempotency store)
    logs/               anvil.log, node-I.log, api.log (stdout and stderr, appended)

Ports: anvil listens on a free port chosen at each ``up`` (or ``rpc_port``), the nodes and the
API too; the manifest always names the current ones.

anvil runs with ``--state FILE --state-interval 5`` and the demo's mining (``--block-time 1
--mixed-mining --hardfork prague``): blocks, transactions, receipts, logs, code and storage
survive a restart; a crash (SIGKILL) loses at most the last ~5 s. Historical *state* (an
``eth_call`` at a block before the last restart) survives only with ``preserve_history``
(``--preserve-historical-states``), which costs ~140 kB of state file per block (the whole
state, MPCMarket's code included, is copied for every block: ~0.5 GB per hour at one block a
second, rewritten every 5 s); it is therefore off by default. Within one ``up`` session every
block's state is available either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from offchain.chain.market import deploy_market
from offchain.devnet.anvil import AnvilError, anvil_binary, dev_accounts, start_detached
from offchain.devnet.compile import CompilerError, compile_contracts
from offchain.devnet.network import (
    DEFAULT_DATA,
    DEVNET_ARGS,
    PHASE_BLOCKS,
    STAKE_WEI,
    DemoOptions,
    fund,
    provision_node,
    split_rows,
)
from offchain.encoding.fixedpoint import FixedPointError, parse_decimal
from offchain.errors import MarketError
from offchain.node.datasource import CsvSource, DataSourceError

__all__ = [
    "DEFAULT_STATE_DIR",
    "LocalNetError",
    "UpOptions",
    "api_available",
    "down",
    "running",
    "up",
]

DEFAULT_STATE_DIR = Path(".mpc-market")
NETWORK_FILE = "network.json"
MANIFEST_FILE = "deployment.json"
PIDS_FILE = "pids.json"
LOCK_FILE = ".lock"
STATE_INTERVAL_S = 5
READY_TIMEOUT_S = 60.0  # every node and the API must be ready within this
STOP_TIMEOUT_S = 10.0  # SIGTERM -> SIGKILL
ANVIL_STOP_TIMEOUT_S = 30.0  # anvil writes its state file on SIGTERM: give it time
MIN_NODE_BALANCE_WEI = STAKE_WEI // 2  # resumed nodes below this get STAKE_WEI more for gas
PROJECT_ROOT = Path(__file__).resolve().parents[2]

Say = Callable[[str], None]


class LocalNetError(MarketError, RuntimeError):
    """A user-facing failure with a one-line message; ``code`` 2 for bad input, 1 otherwise."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class UpOptions:
    """What ``up`` was asked for. ``providers``/``data`` None: 5 and data/wdbc.csv on a new
    state directory, the existing network's on a resume (given and different: an error)."""

    state_dir: Path = DEFAULT_STATE_DIR
    providers: int | None = None
    data: Path | None = None
    rpc_port: int = 0
    preserve_history: bool = False
    with_api: bool = True  # False only for tests of the rest without the API package


# ----------------------------------------------------------------------------- files


def _write_json(path: Path, doc: Any) -> None:
    """Write atomically (readers such as the API never see half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise LocalNetError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise LocalNetError(f"{path} is not valid JSON: {exc}") from None


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    """Exclusive lock on the state directory for one ``up`` or ``down``."""
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


# ----------------------------------------------------------------------------- processes


@dataclass
class Proc:
    """A process started by ``up`` (a pids.json entry)."""

    role: str  # "anvil" | "node" | "api"
    name: str  # "anvil", "node-0", ..., "api"
    pid: int
    cmd: list[str]
    log: str
    started_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Proc:
        return cls(role=str(doc["role"]), name=str(doc["name"]), pid=int(doc["pid"]),
                   cmd=[str(c) for c in doc["cmd"]], log=str(doc["log"]),
                   started_at=float(doc.get("started_at", 0)))


# Popen objects of the detached children, kept so they are not garbage-collected while running.
_children: list[subprocess.Popen[bytes]] = []


def _alive(proc: Proc) -> bool:
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


def _signal(proc: Proc, sig: signal.Signals) -> None:
    """Signal the process's group (each was started as a session leader), else the process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def _stop(procs: Sequence[Proc], timeout_s: float) -> list[tuple[Proc, str]]:
    """SIGTERM every live one, wait up to ``timeout_s`` for all, SIGKILL the rest."""
    live = [p for p in procs if _alive(p)]
    for p in live:
        _signal(p, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    pending = list(live)
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [p for p in pending if _alive(p)]
    for p in pending:
        _signal(p, signal.SIGKILL)
    end = time.monotonic() + 5.0
    while any(_alive(p) for p in pending) and time.monotonic() < end:
        time.sleep(0.05)
    return [(p, "killed" if p in pending else "stopped") for p in live]


def _stop_all(procs: Sequence[Proc]) -> list[tuple[Proc, str]]:
    """SIGTERM the API, then the nodes, and wait for them (together); then anvil, last, as
    it writes its state file on SIGTERM and the others may still be sending it requests."""
    rank = {"api": 0, "node": 1}
    first = sorted((p for p in procs if p.role in rank), key=lambda p: rank[p.role])
    out = _stop(first, STOP_TIMEOUT_S)
    out += _stop([p for p in procs if p.role not in rank], ANVIL_STOP_TIMEOUT_S)
    return out


def _read_pids(state_dir: Path) -> list[Proc]:
    path = state_dir / PIDS_FILE
    if not path.is_file():
        return []
    doc = _read_json(path)
    try:
        return [Proc.from_json(p) for p in doc["processes"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise LocalNetError(f"{path} is malformed ({exc}); stop its processes by hand and "
                            "remove it") from None


def running(state_dir: Path) -> list[Proc]:
    """The recorded processes of ``state_dir`` that are still alive."""
    return [p for p in _read_pids(state_dir.resolve()) if _alive(p)]


def _spawn(cmd: list[str], log_file: Path, *, cwd: Path | None = None,
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


def _log_since(log_file: Path, offset: int) -> list[str]:
    try:
        with open(log_file, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return text.splitlines()


def _last_line(log_file: Path, offset: int) -> str:
    lines = [ln.strip() for ln in _log_since(log_file, offset) if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _ready_event(log_file: Path, offset: int) -> dict[str, Any] | None:
    """The ``{"event": "ready", ...}`` line a node or the API printed, if any yet."""
    for line in _log_since(log_file, offset):
        line = line.strip()
        if line.startswith("{") and '"ready"' in line:
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and doc.get("event") == "ready":
                    return doc
    return None


def _child_env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(PROJECT_ROOT) + (os.pathsep + path if path else "")}


def _health(url: str) -> dict[str, Any]:
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


# ----------------------------------------------------------------------------- the data set


def _dataset_name(data: Path) -> str:
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


# ----------------------------------------------------------------------------- up


class _Up:
    """One run of ``up``: everything it started, for the clean-up on failure."""

    def __init__(self, opts: UpOptions, say: Say) -> None:
        self.opts = opts
        self.dir = opts.state_dir.resolve()
        self.say = say
        self.procs: list[Proc] = []
        self.logs = self.dir / "logs"

    # -- bookkeeping

    def record(self, proc: Proc) -> None:
        self.procs.append(proc)
        _write_json(self.dir / PIDS_FILE, {"state_dir": str(self.dir),
                                           "processes": [p.to_json() for p in self.procs]})

    def abort(self) -> None:
        """Stop what this run started and forget it."""
        _stop_all(self.procs)
        (self.dir / PIDS_FILE).unlink(missing_ok=True)

    # -- anvil

    def start_anvil(self) -> str:
        state = self.dir / "anvil" / "state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        args = [*DEVNET_ARGS, "--state", str(state), "--state-interval", str(STATE_INTERVAL_S)]
        if self.opts.preserve_history:
            args.append("--preserve-historical-states")
        log = self.logs / "anvil.log"
        self.say("starting anvil" + (f" from {state}" if state.is_file() else ""))
        try:
            anvil = start_detached(args, log_file=log, port=self.opts.rpc_port)
        except AnvilError as exc:
            raise LocalNetError(f"anvil did not start: {exc} (log: {log})") from None
        self.record(Proc("anvil", "anvil", anvil.pid, anvil.cmd, str(log)))
        return anvil.rpc_url

    # -- nodes

    def start_nodes(self, node_dirs: list[Path], rpc_url: str) -> list[dict[str, Any]]:
        """Start a node per directory (its config's rpc_url set to ``rpc_url``); return their
        ready events once each answers GET /v1/health."""
        started = []
        for node_dir in node_dirs:
            cfg_file = node_dir / "config.json"
            cfg = _read_json(cfg_file)
            cfg["rpc_url"] = rpc_url
            _write_json(cfg_file, cfg)
            log = self.logs / f"{node_dir.name}.log"
            cmd = [sys.executable, "-m", "offchain.cli", "node", "--config", str(cfg_file)]
            proc, offset = _spawn(cmd, log, cwd=PROJECT_ROOT, env=_child_env())
            self.record(Proc("node", node_dir.name, proc.pid, cmd, str(log)))
            started.append((node_dir.name, proc, log, offset))
        ready: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(started):
            for name, proc, log, offset in started:
                if name in ready:
                    continue
                event = _ready_event(log, offset)
                if event is not None:
                    ready[name] = event
                elif proc.poll() is not None:
                    raise LocalNetError(f"{name} exited with code {proc.returncode}: "
                                        f"{_last_line(log, offset)} (log: {log})")
            if len(ready) < len(started):
                if time.monotonic() > deadline:
                    late = next(n for n, *_ in started if n not in ready)
                    raise LocalNetError(f"{late} was not ready within {READY_TIMEOUT_S:.0f} s "
                                        f"(log: {self.logs / (late + '.log')})")
                time.sleep(0.05)
        out = []
        for name, _proc, log, _offset in started:
            event = ready[name]
            try:
                health = _health(str(event["endpoint"]))
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise LocalNetError(f"{name} does not answer GET /v1/health: {exc} "
                                    f"(log: {log})") from None
            if health.get("address") != event.get("address"):
                raise LocalNetError(f"{name}: {event.get('endpoint')} answers for "
                                    f"{health.get('address')}, not {event.get('address')}")
            out.append(event)
        return out

    # -- API

    def start_api(self) -> str:
        manifest = self.dir / MANIFEST_FILE
        log = self.logs / "api.log"
        cmd = [sys.executable, "-m", "api", "--deployment", str(manifest), "--host",
               "127.0.0.1", "--port", "0", "--state-dir", str(self.dir / "api")]
        self.say("starting the API server")
        proc, offset = _spawn(cmd, log, cwd=PROJECT_ROOT, env=_child_env())
        self.record(Proc("api", "api", proc.pid, cmd, str(log)))
        deadline = time.monotonic() + READY_TIMEOUT_S
        event = None
        while event is None:
            event = _ready_event(log, offset)
            if event is None:
                if proc.poll() is not None:
                    raise LocalNetError(f"the API server exited with code {proc.returncode}: "
                                        f"{_last_line(log, offset)} (log: {log})")
                if time.monotonic() > deadline:
                    raise LocalNetError(f"the API server was not ready within "
                                        f"{READY_TIMEOUT_S:.0f} s (log: {log})")
                time.sleep(0.05)
        url = str(event.get("url", ""))
        try:
            _health(url)
        except (httpx.HTTPError, ValueError) as exc:
            raise LocalNetError(f"the API server does not answer GET {url}/v1/health: {exc} "
                                f"(log: {log})") from None
        return url

    # -- manifest

    def manifest(self, net: dict[str, Any], rpc_url: str, nodes: list[dict[str, Any]],
                 api_url: str | None, started_at: int) -> dict[str, Any]:
        addresses = [str(n["address"]) for n in nodes]
        doc = {
            "chain_id": net["chain_id"],
            "rpc_url": rpc_url,
            "api_url": api_url,
            "contracts": {"MPCMarket": dict(net["market"])},
            "nodes": [{"address": str(n["address"]), "endpoint": str(n["endpoint"]),
                       "datasets": [net["dataset"]["name"]]} for n in nodes],
            "datasets": [{"name": net["dataset"]["name"],
                          "columns": net["dataset"]["columns"], "providers": addresses}],
            "state_dir": str(self.dir),
            "started_at": started_at,
        }
        _write_json(self.dir / MANIFEST_FILE, doc)
        return doc


def _check_options(opts: UpOptions, net: dict[str, Any] | None) -> None:
    if opts.providers is not None and opts.providers < 3:
        raise LocalNetError(f"--providers must be at least 3 (got {opts.providers}): the "
                            "randomness beacon that draws committees needs 3 nodes", 2)
    if not 0 <= opts.rpc_port <= 65535:
        raise LocalNetError(f"--rpc-port must be 0..65535 (got {opts.rpc_port})", 2)
    if net is None:
        return
    have = len(net["nodes"])
    if opts.providers is not None and opts.providers != have:
        raise LocalNetError(f"{opts.state_dir} holds a network of {have} providers, not "
                            f"{opts.providers}: omit --providers to resume it, or use another "
                            "--state-dir", 2)
    if opts.data is not None and opts.data.resolve() != Path(net["dataset"]["source"]):
        raise LocalNetError(f"{opts.state_dir} holds a network over "
                            f"{net['dataset']['source']}, not {opts.data}: omit --data to "
                            "resume it, or use another --state-dir", 2)


def up(opts: UpOptions, progress: Say | None = None) -> dict[str, Any]:
    """Start the network of ``opts.state_dir`` (create it on first use, resume it after) and
    return the manifest once anvil, every node and the API answer.

    Raises:
        LocalNetError: bad options or data (code 2, nothing started), already up, state lost,
            or a process that did not start (code 1; everything started was stopped again).
    """
    say = progress or (lambda msg: None)
    state_dir = opts.state_dir.resolve()
    net_file = state_dir / NETWORK_FILE
    net: dict[str, Any] | None = _read_json(net_file) if net_file.is_file() else None
    _check_options(opts, net)
    csv_data = None
    if net is None:
        csv_data = read_csv(opts.data or DEFAULT_DATA, opts.providers or 5)
    with _locked(state_dir):
        if running(state_dir):
            raise LocalNetError(f"already up (mpc-market down --state-dir {opts.state_dir})")
        (state_dir / PIDS_FILE).unlink(missing_ok=True)  # stale: nothing it names runs
        if opts.with_api and not api_available():
            raise LocalNetError("the API server is not installed: `python -m api` (the api/ "
                                f"package) is missing under {PROJECT_ROOT}")
        try:
            anvil_binary()
        except AnvilError as exc:
            raise LocalNetError(str(exc)) from None
        run = _Up(opts, say)
        try:
            if net is None:
                assert csv_data is not None
                return _first_up(run, (opts.data or DEFAULT_DATA).resolve(),
                                 opts.providers or 5, *csv_data)
            return _resume(run, net)
        except BaseException:
            run.abort()
            raise


def _compile() -> None:
    """Compile here first, so that the nodes and the API started next all find the artifacts
    cached instead of each compiling them at once."""
    try:
        compile_contracts()
    except CompilerError as exc:
        raise LocalNetError(f"compiler: {str(exc).splitlines()[0]}") from None


def _first_up(run: _Up, data: Path, p: int, header: list[str], rows: list[list[str]],
              columns: list[dict[str, str]]) -> dict[str, Any]:
    d = run.dir
    # Leftovers of an `up` that failed before the network was complete: start afresh.
    for sub in ("anvil", "nodes", "api"):
        shutil.rmtree(d / sub, ignore_errors=True)
    (d / MANIFEST_FILE).unlink(missing_ok=True)
    completed = False
    try:
        started_at = int(time.time())
        rpc_url = run.start_anvil()
        w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        chain_id = int(w3.eth.chain_id)
        deployer = dev_accounts(1)[0]
        run.say("compiling and deploying MPCMarket")
        _compile()
        market = deploy_market(w3, deployer, min_stake_wei=STAKE_WEI, exit_delay_s=7 * 86400,
                               min_payment_wei=10**15, max_timeout_s=86400,
                               phase_blocks=PHASE_BLOCKS)
        block = int(market.deployment.receipt["blockNumber"])
        name = _dataset_name(data)
        run.say(f"provisioning {p} provider nodes under {d / 'nodes'}")
        node_dirs, addresses = [], []
        collect_timeout_s = DemoOptions().collect_timeout_s
        for i, rows_i in enumerate(split_rows(rows, p)):
            node_dir, keys = provision_node(d / "nodes", i, header, rows_i, rpc_url, market.address,
                                        collect_timeout_s, dataset_name=name)
            fund(w3, deployer, keys.address, 2 * STAKE_WEI)
            node_dirs.append(node_dir)
            addresses.append(keys.address)
        net = {
            "version": 1, "created_at": started_at, "chain_id": chain_id,
            "market": {"address": market.address, "block": block},
            "dataset": {"name": name, "source": str(data), "columns": columns},
            "nodes": [{"dir": str(nd.relative_to(d)), "address": a}
                      for nd, a in zip(node_dirs, addresses, strict=True)],
        }
        run.say(f"starting {p} provider nodes (they register themselves)")
        nodes = run.start_nodes(node_dirs, rpc_url)
        manifest = run.manifest(net, rpc_url, nodes, None, started_at)
        if run.opts.with_api:
            manifest = run.manifest(net, rpc_url, nodes, run.start_api(), started_at)
        _write_json(d / NETWORK_FILE, net)
        completed = True
        return manifest
    finally:
        if not completed:
            run.abort()
            for sub in ("anvil", "nodes", "api"):
                shutil.rmtree(d / sub, ignore_errors=True)
            (d / MANIFEST_FILE).unlink(missing_ok=True)


def _resume(run: _Up, net: dict[str, Any]) -> dict[str, Any]:
    d = run.dir
    state = d / "anvil" / "state.json"
    market = str(net["market"]["address"])
    if not state.is_file():
        raise LocalNetError(f"state lost: {state} is missing, so the chain with MPCMarket "
                            f"{market} is gone (remove {d} to start a new network)")
    shutil.copyfile(state, state.with_name("state.json.prev"))
    started_at = int(time.time())
    rpc_url = run.start_anvil()
    w3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
    chain_id = int(w3.eth.chain_id)
    if chain_id != net["chain_id"] or not w3.eth.get_code(Web3.to_checksum_address(market)):
        # Do not let anvil write this chain over the state file: kill it, no SIGTERM.
        for p in run.procs:
            _signal(p, signal.SIGKILL)
        raise LocalNetError(f"state lost: no MPCMarket code at {market} on the chain loaded "
                            f"from {state} (a copy of the file is in state.json.prev; remove "
                            f"{d} to start a new network)")
    run.say(f"resumed the chain at block {w3.eth.block_number}; MPCMarket {market}")
    deployer = dev_accounts(1)[0]
    for node in net["nodes"]:
        address = Web3.to_checksum_address(node["address"])
        if w3.eth.get_balance(address) < MIN_NODE_BALANCE_WEI:
            fund(w3, deployer, address, STAKE_WEI)
    node_dirs = [d / str(n["dir"]) for n in net["nodes"]]
    run.say("compiling the contracts (the nodes and the API load the cached ABI)")
    _compile()
    run.say(f"restarting {len(node_dirs)} provider nodes")
    nodes = run.start_nodes(node_dirs, rpc_url)
    manifest = run.manifest(net, rpc_url, nodes, None, started_at)
    if run.opts.with_api:
        manifest = run.manifest(net, rpc_url, nodes, run.start_api(), started_at)
    return manifest


# ----------------------------------------------------------------------------- down


def down(state_dir: Path, progress: Say | None = None) -> list[tuple[str, int, str]]:
    """Stop what ``up`` started in ``state_dir`` (API, nodes, then anvil, which writes its
    state); returns (name, pid, "stopped" | "killed") per process that was running, [] if none
    was. Removes pids.json."""
    say = progress or (lambda msg: None)
    state_dir = state_dir.resolve()
    if not (state_dir / PIDS_FILE).is_file():
        return []
    with _locked(state_dir):
        procs = _read_pids(state_dir)
        if any(_alive(p) for p in procs):
            say("stopping the API, the nodes, then anvil (it writes its state)")
        result = _stop_all(procs)
        (state_dir / PIDS_FILE).unlink(missing_ok=True)
    return [(p.name, p.pid, how) for p, how in result]
