"""A persistent local network: ``mpc-market up`` / ``mpc-market down``.

``up`` starts, detached from the calling shell, an anvil devnet whose state is kept in the state
directory, P provider node processes and the buyer API server, writes the deployment manifest and
returns once everything answers. ``down`` stops them again (anvil last, so that it writes its
state). A later ``up`` on the same directory resumes the same chain: same contracts, same jobs,
same node keys. Nothing is ever redeployed on a resume.

The state directory's layout, its files and its lock are in :mod:`offchain.devnet.state_dir`;
the detached processes are supervised by :mod:`offchain.devnet.supervisor`.

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

import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from web3 import Web3

from offchain.devnet.anvil import AnvilError, anvil_binary, start_detached
from offchain.devnet.compile import CompilerError, compile_contracts
from offchain.devnet.provision import (
    DEFAULT_COLLECT_TIMEOUT_S,
    DEFAULT_DATA,
    DEVNET_ARGS,
    STAKE_WEI,
    deploy_devnet_market,
    fund,
    provision_node,
    split_rows,
)
from offchain.devnet.rpc import dev_accounts
from offchain.devnet.state_dir import (
    DEFAULT_STATE_DIR,
    MANIFEST_FILE,
    NETWORK_FILE,
    PIDS_FILE,
    LocalNetError,
    dataset_name,
    locked,
    read_csv,
    read_json,
    write_json,
)
from offchain.devnet.supervisor import (
    PROJECT_ROOT,
    Proc,
    alive,
    api_available,
    child_env,
    health,
    last_line,
    read_pids,
    ready_event,
    running,
    send_signal,
    spawn,
    stop_all,
)

__all__ = ["UpOptions", "down", "up"]

STATE_INTERVAL_S = 5
READY_TIMEOUT_S = 60.0  # every node and the API must be ready within this
MIN_NODE_BALANCE_WEI = STAKE_WEI // 2  # resumed nodes below this get STAKE_WEI more for gas

Say = Callable[[str], None]


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
        write_json(self.dir / PIDS_FILE, {"state_dir": str(self.dir),
                                           "processes": [p.to_json() for p in self.procs]})

    def abort(self) -> None:
        """Stop what this run started and forget it."""
        stop_all(self.procs)
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
            cfg = read_json(cfg_file)
            cfg["rpc_url"] = rpc_url
            write_json(cfg_file, cfg)
            log = self.logs / f"{node_dir.name}.log"
            cmd = [sys.executable, "-m", "offchain.cli", "node", "--config", str(cfg_file)]
            proc, offset = spawn(cmd, log, cwd=PROJECT_ROOT, env=child_env())
            self.record(Proc("node", node_dir.name, proc.pid, cmd, str(log)))
            started.append((node_dir.name, proc, log, offset))
        ready: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(ready) < len(started):
            for name, proc, log, offset in started:
                if name in ready:
                    continue
                event = ready_event(log, offset)
                if event is not None:
                    ready[name] = event
                elif proc.poll() is not None:
                    raise LocalNetError(f"{name} exited with code {proc.returncode}: "
                                        f"{last_line(log, offset)} (log: {log})")
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
                answer = health(str(event["endpoint"]))
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise LocalNetError(f"{name} does not answer GET /v1/health: {exc} "
                                    f"(log: {log})") from None
            if answer.get("address") != event.get("address"):
                raise LocalNetError(f"{name}: {event.get('endpoint')} answers for "
                                    f"{answer.get('address')}, not {event.get('address')}")
            out.append(event)
        return out

    # -- API

    def start_api(self) -> str:
        manifest = self.dir / MANIFEST_FILE
        log = self.logs / "api.log"
        cmd = [sys.executable, "-m", "api", "--deployment", str(manifest), "--host",
               "127.0.0.1", "--port", "0", "--state-dir", str(self.dir / "api")]
        self.say("starting the API server")
        proc, offset = spawn(cmd, log, cwd=PROJECT_ROOT, env=child_env())
        self.record(Proc("api", "api", proc.pid, cmd, str(log)))
        deadline = time.monotonic() + READY_TIMEOUT_S
        event = None
        while event is None:
            event = ready_event(log, offset)
            if event is None:
                if proc.poll() is not None:
                    raise LocalNetError(f"the API server exited with code {proc.returncode}: "
                                        f"{last_line(log, offset)} (log: {log})")
                if time.monotonic() > deadline:
                    raise LocalNetError(f"the API server was not ready within "
                                        f"{READY_TIMEOUT_S:.0f} s (log: {log})")
                time.sleep(0.05)
        url = str(event.get("url", ""))
        try:
            health(url)
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
        write_json(self.dir / MANIFEST_FILE, doc)
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
    net: dict[str, Any] | None = read_json(net_file) if net_file.is_file() else None
    _check_options(opts, net)
    csv_data = None
    if net is None:
        csv_data = read_csv(opts.data or DEFAULT_DATA, opts.providers or 5)
    with locked(state_dir):
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
        market = deploy_devnet_market(w3, deployer)
        block = int(market.deployment.receipt["blockNumber"])
        name = dataset_name(data)
        run.say(f"provisioning {p} provider nodes under {d / 'nodes'}")
        node_dirs, addresses = [], []
        for i, rows_i in enumerate(split_rows(rows, p)):
            node_dir, keys = provision_node(d / "nodes", i, header, rows_i, rpc_url, market.address,
                                            DEFAULT_COLLECT_TIMEOUT_S, dataset_name=name)
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
        write_json(d / NETWORK_FILE, net)
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
            send_signal(p, signal.SIGKILL)
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
    with locked(state_dir):
        procs = read_pids(state_dir)
        if any(alive(p) for p in procs):
            say("stopping the API, the nodes, then anvil (it writes its state)")
        result = stop_all(procs)
        (state_dir / PIDS_FILE).unlink(missing_ok=True)
    return [(p.name, p.pid, how) for p, how in result]
