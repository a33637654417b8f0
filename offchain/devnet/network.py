"""The main job, end to end: a buyer's MPC job on real data, computed by separate node processes
and finalized on a local devnet (or on an existing chain given by ``rpc_url``).

Steps: validate every input (nothing is posted if anything is wrong); start anvil; compile and
deploy the market; deal the file's rows to P providers in disjoint slices (alternately a CSV file
and a SQLite database each, in the node's own directory); start P node processes that register
themselves with stake and their X25519 keys; post the job with escrow; wait for the nodes to
finalize it; decode the opened aggregates from the chain, compute the statistic, and compare it
with the plaintext statistic over the whole file.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from offchain.chain.beacon import BeaconClient
from offchain.chain.market import TxResult
from offchain.devnet.anvil import Anvil
from offchain.devnet.compile import CompiledContract, compile_contracts
from offchain.devnet.provision import (
    DATASET_NAME,
    DEFAULT_COLLECT_TIMEOUT_S,
    DEFAULT_DATA,
    DEVNET_ARGS,
    PAYMENT_WEI,
    STAKE_WEI,
    deploy_devnet_market,
    fund,
    provision_node,
    receipt_tx,
    split_rows,
)
from offchain.devnet.reference import plaintext_statistic
from offchain.devnet.rpc import dev_accounts, wait_for_rpc
from offchain.encoding import eip712
from offchain.encoding.query import QueryError, StatisticError, parse_query, statistic
from offchain.errors import MarketError
from offchain.node.datasource import CsvSource, DataSourceError, open_source

READY_TIMEOUT_S = 60.0


class DemoError(MarketError, RuntimeError):
    """A user-facing failure: the message is one line naming the problem."""


@dataclass
class DemoOptions:
    """What the user asked for. ``min_providers`` None means every provider must contribute."""

    data: Path = DEFAULT_DATA
    query: str = "mean:mean_radius"
    providers: int = 5
    committee: int = 3
    threshold: int = 1
    min_providers: int | None = None
    rpc_url: str | None = None
    timeout_s: int = 120
    collect_timeout_s: float = DEFAULT_COLLECT_TIMEOUT_S  # members' wait for every provider
    beacon_withhold: int = 0  # fault injection: this many nodes never reveal beacon contributions
    beacon_bad_share: int = 0  # fault injection: this many (further) nodes deal a bad share
    # deploy this artifact (constructor as MPCMarket's) instead of MPCMarket, e.g. a test double
    market_artifact: CompiledContract | None = None


@dataclass
class DemoResult:
    job_id: int
    query: str
    result: int | float | list[int]
    plaintext: int | float | list[int]
    aggregates: list[int]
    providers: int
    contributors: int
    committee: list[str]
    threshold: int
    txs: list[dict[str, Any]]
    latency_s: float
    randomness_round: int = 0
    node_peak_rss_mib: list[float] = field(default_factory=list)
    chain_id: int = 0
    market: str = ""
    rpc_url: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def validate(opts: DemoOptions) -> tuple[list[str], list[list[str]]]:
    """Check every option and the data file; return the CSV header and rows. Raises DemoError."""
    p, n, t = opts.providers, opts.committee, opts.threshold
    m = p if opts.min_providers is None else opts.min_providers
    if p < 3:
        raise DemoError(f"--providers must be at least 3 (got {p}): the randomness beacon "
                        "that draws committees needs 3 registered nodes")
    if m < 1:
        raise DemoError(f"--min-providers must be at least 1 (got {m})")
    if p < m:
        raise DemoError(f"--providers {p} is smaller than --min-providers {m}")
    if n < 2:
        raise DemoError(f"--committee must be at least 2 (got {n})")
    if n > p:
        raise DemoError(f"--committee {n} is larger than --providers {p}: the committee is "
                        "drawn from the registered nodes")
    if t < 1 or t >= n:
        raise DemoError(f"--threshold must satisfy 1 <= T < N (got T={t}, N={n})")
    if n < 2 * t + 1:
        raise DemoError(f"--committee {n} is too small for --threshold {t}: an honest majority "
                        f"needs N >= 2T+1 = {2 * t + 1}")
    try:
        spec = parse_query(opts.query)
    except QueryError as exc:
        raise DemoError(f"--query: {exc}") from exc
    source = CsvSource(opts.data)
    try:
        values = source.read_columns(spec.columns)
        header, rows = source.records()
    except DataSourceError as exc:
        raise DemoError(str(exc)) from exc
    if len(rows) < p:
        raise DemoError(f"{opts.data}: {len(rows)} rows cannot give each of {p} providers a row")
    try:
        plaintext_statistic(spec, values)
    except StatisticError as exc:
        raise DemoError(f"{opts.query}: {exc}") from exc
    return header, rows


@contextmanager
def _chain(opts: DemoOptions) -> Iterator[str]:
    if opts.rpc_url:
        try:
            wait_for_rpc(opts.rpc_url, timeout_s=3.0)
        except Exception as exc:
            raise DemoError(f"--rpc-url {opts.rpc_url} is unreachable: {exc}") from exc
        yield opts.rpc_url
        return
    # Mixed mining: transactions are mined at once, and an empty block comes every second as on
    # a live chain, so the beacon's block-bounded phases end even when nobody transacts.
    with Anvil(DEVNET_ARGS) as anvil:
        yield anvil.rpc_url


def _fault_of(opts: DemoOptions, index: int) -> str | None:
    if index < opts.beacon_withhold:
        return "withhold"
    if index < opts.beacon_withhold + opts.beacon_bad_share:
        return "bad_share"
    return None


class NodeProcesses:
    """The provider node processes; stopped (SIGTERM, then SIGKILL) on close."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.ready: list[dict[str, Any]] = []

    def start(self, node_dir: Path) -> None:
        log = open(node_dir / "node.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "offchain.cli", "node", "--config",
             str(node_dir / "config.json"), "--exit-with-parent"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.procs.append(proc)

    def wait_ready(self, run_dir: Path) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for i, proc in enumerate(self.procs):
            assert proc.stdout is not None
            line = ""
            while not line and time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    break
            if not line:
                tail = (run_dir / f"node-{i}" / "node.log").read_text()[-800:]
                raise DemoError(f"node {i} did not start; its log ends with:\n{tail}")
            self.ready.append(json.loads(line))

    def peak_rss_mib(self) -> list[float]:
        out = []
        for proc in self.procs:
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    out.append(round(int(line.split()[1]) / 1024, 1))
        return out

    def close(self) -> None:
        """SIGTERM every node, then wait for all of them together (5 s), then SIGKILL."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


def _txr(tx: TxResult) -> dict[str, Any]:
    return {"name": tx.name, "hash": tx.hash, "gas_used": tx.gas_used}


class DemoNetwork:
    """A chain (anvil started here, or ``rpc_url``), a deployed market and P provider node
    processes, each with its own slice of ``data``. Use as a context manager: everything it
    started is stopped on exit, also on errors and Ctrl-C."""

    def __init__(self, opts: DemoOptions, header: list[str], rows: list[list[str]],
                 progress: Any = None) -> None:
        self.opts = opts
        self.header, self.rows = header, rows
        self.say = progress or (lambda msg: None)
        self.stack = ExitStack()
        self.txs: list[dict[str, Any]] = []
        self.nodes = NodeProcesses()

    def __enter__(self) -> DemoNetwork:
        try:
            self._start()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.stack.close()
        # The run directory holds node keys and slices of the data: remove it after a clean
        # run, keep it (for its node logs) after a failure.
        if exc_type is None and getattr(self, "run_dir", None) is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _start(self) -> None:
        opts, p = self.opts, self.opts.providers
        self.rpc_url = self.stack.enter_context(_chain(opts))
        self.w3 = w3 = Web3(Web3.HTTPProvider(self.rpc_url, request_kwargs={"timeout": 30}))
        self.chain_id = w3.eth.chain_id
        deployer, self.buyer = dev_accounts(2)
        if w3.eth.get_balance(deployer.address) < (p + 1) * 2 * STAKE_WEI:
            raise DemoError(f"{deployer.address} on {self.rpc_url} lacks funds for the demo")
        self.say("compiling contracts")
        compile_contracts()
        self.say("deploying the market")
        art = opts.market_artifact
        self.market = deploy_devnet_market(w3, deployer, abi=art.abi if art else None,
                                           bytecode=art.bytecode if art else None)
        self.txs.append(_txr(self.market.deployment))
        self.run_dir = Path(tempfile.mkdtemp(prefix="mpc-market-demo-"))
        self.stack.callback(self.nodes.close)
        rows = self.rows
        slices = split_rows(rows, p)
        self.say(f"starting {p} provider node processes, each with its own slice of the data "
                 f"(CSV or SQLite) under {self.run_dir}")
        for i in range(p):
            node_dir, keys = provision_node(self.run_dir, i, self.header, slices[i], self.rpc_url,
                                        self.market.address, opts.collect_timeout_s,
                                        _fault_of(opts, i))
            tx_hash = fund(w3, deployer, keys.address, 2 * STAKE_WEI)
            self.txs.append(receipt_tx(w3, f"fund node-{i}", tx_hash))
            self.nodes.start(node_dir)
        self.nodes.wait_ready(self.run_dir)
        registered = {ev["node"]: ev["tx_hash"] for ev in self.market.node_registered_events(0)}
        for i, ready in enumerate(self.nodes.ready):
            if ready["address"] in registered:
                self.txs.append(receipt_tx(w3, f"register node-{i}",
                                            registered[ready["address"]]))
        self.registered = sorted((r["address"] for r in self.nodes.ready),
                                 key=lambda a: int(a, 16))

    def run_job(self, query: str) -> DemoResult:
        """Post one job for ``query`` and wait until the nodes finalize it."""
        opts, spec = self.opts, parse_query(query)
        m = opts.providers if opts.min_providers is None else opts.min_providers
        self.say(f"posting the job {spec} with escrow (committee of {opts.committee} drawn by "
                 f"the nodes' randomness beacon, threshold {opts.threshold}, at least {m} "
                 "providers)")
        start_block = self.w3.eth.block_number
        t0 = time.perf_counter()
        job_id, post = self.market.post_job(
            self.buyer, dataset_id=eip712.dataset_id(DATASET_NAME), query=str(spec),
            committee_size=opts.committee, threshold=opts.threshold, min_providers=m,
            timeout_s=opts.timeout_s, payment_wei=PAYMENT_WEI)
        finalized = None
        deadline = time.monotonic() + opts.timeout_s
        seen_block = start_block - 1
        while finalized is None and time.monotonic() < deadline:
            head = self.w3.eth.block_number  # cheap; fetch logs only when a block was added
            if head > seen_block:
                finalized = next((ev for ev in self.market.job_finalized_events(seen_block + 1,
                                                                                head)
                                  if ev["job_id"] == job_id), None)
                seen_block = head
            if finalized is None:
                time.sleep(0.005)
        latency_s = time.perf_counter() - t0
        if finalized is None:
            raise DemoError(f"job {job_id} was not finalized within {opts.timeout_s} s; "
                            f"node logs are kept in {self.run_dir}")
        beacon_txs, committee, seed_round = self._beacon_txs(job_id, start_block,
                                                             int(finalized["block_number"]))
        aggregates = [int(a) for a in finalized["aggregates"]]
        values = open_source(opts.data).read_columns(spec.columns)
        return DemoResult(
            job_id=job_id, query=str(spec), result=statistic(spec, aggregates),
            plaintext=plaintext_statistic(spec, values), aggregates=aggregates,
            providers=opts.providers, contributors=int(finalized["provider_count"]),
            committee=committee, threshold=opts.threshold,
            txs=[*self.txs, _txr(post), *beacon_txs,
                 receipt_tx(self.w3, "finalizeJob", finalized["tx_hash"])],
            latency_s=round(latency_s, 4), randomness_round=seed_round,
            node_peak_rss_mib=self.nodes.peak_rss_mib(),
            chain_id=self.chain_id, market=self.market.address, rpc_url=self.rpc_url)

    def _beacon_txs(self, job_id: int, from_block: int,
                    to_block: int) -> tuple[list[dict[str, Any]], list[str], int]:
        """The beacon round's and the committee draw's transactions for ``job_id``, its
        committee, and the round that seeded it."""
        beacon = BeaconClient(self.market)
        assigned = next(ev for ev in beacon.events("CommitteeAssigned", from_block, to_block)
                        if ev["job_id"] == job_id)
        seed_round = int(assigned["round_id"])
        txs: dict[str, str] = {}
        for name, tx_name in (("RoundCommitted", "commitRound"),
                              ("ContributionOpened", "reveal"), ("RoundFinalized", "reveal")):
            for ev in beacon.events(name, from_block, to_block):
                if ev["round_id"] == seed_round and ev["tx_hash"] not in txs:
                    label = tx_name if name != "ContributionOpened" or not ev["recovered"] \
                        else "recover"
                    txs[ev["tx_hash"]] = label
        out = [receipt_tx(self.w3, label, h) for h, label in txs.items()]
        out.append(receipt_tx(self.w3, "assignCommittee", assigned["tx_hash"]))
        committee = [str(Web3.to_checksum_address(a)) for a in assigned["committee"]]
        return out, committee, seed_round


def run_demo(opts: DemoOptions, *, progress: Any = None) -> DemoResult:
    """Run the whole job once; raises DemoError (one clear line) on bad input or failure."""
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows, progress) as net:
        return net.run_job(opts.query)
