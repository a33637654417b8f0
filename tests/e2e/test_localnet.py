"""The persistent local network (``mpc-market up`` / ``down``, devnet/localnet.py) with real
detached processes (anvil with a state file, 3 node processes, the API server), and the buyer
CLI (``mpc-market job post|show|wait``, offchain/cli/job.py) against it.

The commands run as ``python -m offchain.cli.net`` / ``python -m offchain.cli.job`` in child
processes, exactly as a user runs them. Without the api/ package, ``up`` refuses to start (tested)
and the network is started through :func:`offchain.devnet.localnet.up` without the API instead; only
the API-dependent assertions are skipped then."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from eth_account import Account
from typer.testing import CliRunner
from web3 import Web3

from offchain.chain.market import JobStatus, MarketClient
from offchain.cli.job import CliError, check_tx, job_app, load_account, parse_amount
from offchain.cli.net import net_app
from offchain.devnet.localnet import UpOptions, down, up
from offchain.devnet.provision import PAYMENT_WEI, fund
from offchain.devnet.rpc import dev_accounts, wait_for_rpc
from offchain.devnet.supervisor import api_available
from offchain.encoding import eip712
from offchain.wire.keys import NodeKeys
from tests.helpers.paths import ROOT

HAVE_API = api_available()
MANIFEST_KEYS = {"chain_id", "rpc_url", "api_url", "contracts", "nodes", "datasets",
                 "state_dir", "started_at"}


def job(*args: str) -> tuple[int, str]:
    """``mpc-market job ARGS`` in process (it only talks HTTP): (exit code, stdout+stderr)."""
    res = CliRunner().invoke(job_app, list(args), terminal_width=200)
    return res.exit_code, res.output


def cli(module: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=env)


def error_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("·")]
    assert lines and lines[0].startswith("error: "), res.stderr
    return " ".join(lines)


def start(state_dir: Path) -> dict[str, Any]:
    """``mpc-market up --providers 3`` (the library without the API if api/ is missing)."""
    if not HAVE_API:
        return up(UpOptions(state_dir=state_dir, providers=None if
                            (state_dir / "network.json").exists() else 3, with_api=False))
    args = ["up", "--state-dir", str(state_dir), "--json"]
    if not (state_dir / "network.json").exists():
        args += ["--providers", "3"]
    res = cli("offchain.cli.net", *args)
    assert res.returncode == 0, res.stderr
    manifest: dict[str, Any] = json.loads(res.stdout)
    return manifest


def pids(state_dir: Path) -> list[int]:
    doc = json.loads((state_dir / "pids.json").read_text())
    return [int(p["pid"]) for p in doc["processes"]]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def market_of(manifest: dict[str, Any]) -> MarketClient:
    w3 = Web3(Web3.HTTPProvider(manifest["rpc_url"], request_kwargs={"timeout": 30}))
    return MarketClient(w3, manifest["contracts"]["MPCMarket"]["address"])


def wait_status(market: MarketClient, job_id: int, timeout_s: float = 90) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = market.get_job(job_id).status
        if status != JobStatus.OPEN or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def post_direct(market: MarketClient, buyer_index: int = 1) -> int:
    buyer = dev_accounts(buyer_index + 1)[buyer_index]
    job_id, _ = market.post_job(buyer, dataset_id=eip712.dataset_id("wdbc"), query="count",
                                committee_size=3, threshold=1, min_providers=3, timeout_s=120,
                                payment_wei=PAYMENT_WEI)
    return job_id


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The buyer CLI keeps signed posts under $XDG_CACHE_HOME: not in the real home."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "net"
    try:
        yield d
    finally:
        down(d)


# ----------------------------------------------------------------------------- the network


def test_up_down_resume(state_dir: Path, tmp_path: Path) -> None:
    t0 = time.monotonic()
    m = start(state_dir)
    t_up = time.monotonic() - t0
    # -- the manifest
    assert set(m) == MANIFEST_KEYS
    assert m == json.loads((state_dir / "deployment.json").read_text())
    assert m["chain_id"] == 31337 and m["state_dir"] == str(state_dir.resolve())
    market_ref = m["contracts"]["MPCMarket"]
    assert Web3.is_checksum_address(market_ref["address"]) and market_ref["block"] >= 1
    assert len(m["nodes"]) == 3
    addresses = [n["address"] for n in m["nodes"]]
    assert all(n["datasets"] == ["wdbc"] for n in m["nodes"])
    (ds,) = m["datasets"]
    assert ds["name"] == "wdbc" and ds["providers"] == addresses
    assert {"name": "mean_radius", "type": "number"} in ds["columns"] and len(ds["columns"]) == 31
    # -- everything answers
    assert wait_for_rpc(m["rpc_url"], 2) == 31337
    for n in m["nodes"]:
        assert httpx.get(n["endpoint"] + "/v1/health").json()["address"] == n["address"]
    running = pids(state_dir)
    assert len(running) == 3 + 1 + (1 if HAVE_API else 0)
    assert not any(gone(p) for p in running)
    market = market_of(m)
    assert market.w3.eth.get_code(market.address)
    assert all(market.is_active(a) for a in addresses)
    if HAVE_API:
        health = httpx.get(m["api_url"] + "/v1/health").json()
        assert health["chain_id"] == 31337 and health["market"] == market.address
    else:
        assert m["api_url"] is None
    # -- a second up is refused, nothing changes
    res = cli("offchain.cli.net", "up", "--state-dir", str(state_dir))
    assert res.returncode == 1
    assert error_line(res) == f"error: already up (mpc-market down --state-dir {state_dir})"
    assert pids(state_dir) == running
    # -- a job
    if HAVE_API:
        key_file = tmp_path / "buyer.json"
        NodeKeys.generate().save(key_file)
        buyer = NodeKeys.load(key_file).address
        fund(market.w3, dev_accounts(3)[2], buyer, 10**18)
        res = cli("offchain.cli.job", "post", "--query", "mean:mean_radius", "--dataset", "wdbc",
                  "--pay", "0.03ether", "--key-file", str(key_file), "--deployment",
                  str(state_dir / "deployment.json"), "--json")
        assert res.returncode == 0, res.stderr
        posted = json.loads(res.stdout)
        job1 = int(posted["job_id"])
        assert posted["idempotency_key"] and posted["tx_hash"].startswith("0x")
        # a retry with the printed key sends the same signed transaction: the same job
        post_args = ["post", "--query", "mean:mean_radius", "--dataset", "wdbc", "--pay",
                     "0.03ether", "--key-file", str(key_file), "--api-url", m["api_url"],
                     "--market", m["contracts"]["MPCMarket"]["address"],
                     "--chain-id", str(m["chain_id"])]
        code, out = job(*post_args, "--idempotency-key", posted["idempotency_key"], "--json")
        assert code == 0, out
        assert json.loads(out)["job_id"] == job1
        other = [a if a != "0.03ether" else "0.04ether" for a in post_args]
        code, out = job(*other, "--idempotency-key", posted["idempotency_key"])
        assert code == 2 and "was used for another job" in out, out
        res = cli("offchain.cli.job", "wait", str(job1), "--timeout-s", "90", "--api-url",
                  m["api_url"])
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith(f"job {job1} finalized: mean:mean_radius = 14.127")
        code, out = job("show", str(job1), "--json", "--api-url", m["api_url"])
        assert code == 0, out
        shown = json.loads(out)
        assert shown["status"] == "finalized" and shown["buyer"] == buyer
        assert shown["escrow_wei"] == str(3 * 10**16)
        assert shown["result"]["provider_count"] == 3
        code, out = job("show", str(job1), "--api-url", m["api_url"])
        assert code == 0 and "finalized" in out and "14.127" in out, out
        code, out = job("show", "999", "--api-url", m["api_url"])
        assert code == 2 and out.startswith("error: Job not found: "), out
    else:
        job1 = post_direct(market)
    assert wait_status(market, job1) == JobStatus.FINALIZED
    # -- down, twice
    t1 = time.monotonic()
    res = cli("offchain.cli.net", "down", "--state-dir", str(state_dir))
    t_down = time.monotonic() - t1
    assert res.returncode == 0, res.stderr
    assert "stopped anvil" in res.stdout
    assert all(gone(p) for p in running)
    assert not (state_dir / "pids.json").exists()
    assert (state_dir / "anvil" / "state.json").stat().st_size > 0
    res = cli("offchain.cli.net", "down", "--state-dir", str(state_dir))
    assert res.returncode == 0 and "nothing is running" in res.stdout
    if HAVE_API:
        code, out = job("show", str(job1), "--deployment", str(state_dir / "deployment.json"))
        assert code == 1 and "cannot reach the API" in out, out
    # -- resume: same contract, same nodes, the job is still there, and new jobs run
    t2 = time.monotonic()
    m2 = start(state_dir)
    t_resume = time.monotonic() - t2
    assert m2["contracts"] == m["contracts"]
    assert [n["address"] for n in m2["nodes"]] == addresses
    market2 = market_of(m2)
    assert market2.get_job(job1).status == JobStatus.FINALIZED
    assert market2.job_count() == job1
    for n in m2["nodes"]:  # the nodes told the registry their new endpoints
        assert market2.get_node(n["address"]).endpoint == n["endpoint"]
    if HAVE_API:
        raw_key = tmp_path / "dev3.key"
        raw_key.write_text("0x" + bytes(dev_accounts(4)[3].key).hex() + "\n")
        res = cli("offchain.cli.job", "post", "--query", "count", "--dataset", "wdbc",
                  "--pay", "30000000gwei", "--key-file", str(raw_key), "--deployment",
                  str(state_dir / "deployment.json"))
        assert res.returncode == 0, res.stderr
        job2 = int(res.stdout.strip())
        code, out = job("wait", str(job2), "--timeout-s", "90", "--deployment",
                        str(state_dir / "deployment.json"), "--json")
        assert code == 0, out
        assert json.loads(out)["result"]["statistic"] == 569
    else:
        job2 = post_direct(market2)
    assert job2 == job1 + 1
    assert wait_status(market2, job2) == JobStatus.FINALIZED
    assert down(state_dir)
    # -- a state file that is gone is reported, and nothing is left running
    (state_dir / "anvil" / "state.json").unlink()
    res = cli("offchain.cli.net", "up", "--state-dir", str(state_dir))
    assert res.returncode == 1 and error_line(res).startswith("error: state lost: ")
    assert not (state_dir / "pids.json").exists()
    print(f"up {t_up:.1f} s, down {t_down:.1f} s, resume {t_resume:.1f} s")


def test_up_bad_input(tmp_path: Path) -> None:
    d = tmp_path / "net"
    res = cli("offchain.cli.net", "up", "--state-dir", str(d), "--providers", "2")
    assert res.returncode == 2
    assert error_line(res).startswith("error: --providers must be at least 3 (got 2)")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    (tmp_path / "text.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n4,5\n")
    for args, message in (
            (["--data", "missing.csv"], "error: --data missing.csv: no such file"),
            (["--providers", "600"], "rows cannot give each of 600 providers a row"),
            (["--data", str(tmp_path / "text.csv")], "2 rows cannot give each of 5 providers"),
            (["--data", str(tmp_path / "ragged.csv"), "--providers", "3"],
             "row 2 has 1 fields, the header has 2"),
            (["--rpc-port", "70000"], "error: --rpc-port must be 0..65535")):
        res2 = CliRunner().invoke(net_app, ["up", "--state-dir", str(d), *args],
                                  terminal_width=200)
        assert res2.exit_code == 2, res2.output
        assert message in res2.output and len(res2.output.strip().splitlines()) == 1
    assert not d.exists()  # nothing was started or written


def test_column_types(tmp_path: Path) -> None:
    from offchain.devnet.state_dir import read_csv

    (tmp_path / "d.csv").write_text("n, t ,e\n1.5,x,1\n-2e3,3,\n0,4, 7 \n")
    _header, rows, columns = read_csv(tmp_path / "d.csv", 3)
    assert len(rows) == 3
    assert columns == [{"name": "n", "type": "number"}, {"name": "t", "type": "string"},
                       {"name": "e", "type": "string"}]


def test_down_when_nothing_ran(tmp_path: Path) -> None:
    res = CliRunner().invoke(net_app, ["down", "--state-dir", str(tmp_path / "never")])
    assert res.exit_code == 0 and "nothing is running" in res.output
    assert not (tmp_path / "never").exists()


# ----------------------------------------------------------------------------- buyer CLI units


def test_parse_amount() -> None:
    assert parse_amount("0.03ether") == 3 * 10**16
    assert parse_amount("0.03 ETH") == 3 * 10**16
    assert parse_amount("30000000gwei") == 3 * 10**16
    assert parse_amount("30000000000000000") == 3 * 10**16
    assert parse_amount("5wei") == 5
    for bad in ("", "1.5", "0.1gwei0", "1e18", "-1ether", "3 dollars", "0.0000000001gwei"):
        with pytest.raises(ValueError):
            parse_amount(bad)


def test_load_account(tmp_path: Path) -> None:
    keys = NodeKeys.generate()
    keys.save(tmp_path / "k.json")
    assert load_account(tmp_path / "k.json").address == keys.address
    acct = Account.create()
    for text in ("0x" + bytes(acct.key).hex(), bytes(acct.key).hex() + "\n"):
        (tmp_path / "k.hex").write_text(text)
        assert load_account(tmp_path / "k.hex").address == acct.address
    for text in ("0x1234", "{}", "0x" + "00" * 32, "0x" + "ff" * 32):
        (tmp_path / "bad").write_text(text)
        with pytest.raises(CliError) as exc:
            load_account(tmp_path / "bad")
        assert exc.value.code == 2 and "0x" + "ff" * 32 not in str(exc.value)
    with pytest.raises(CliError):
        load_account(tmp_path / "missing")


def test_check_tx_refuses_other_transactions() -> None:
    """The buyer CLI signs only exactly the job it asked for, whatever the API prepares."""
    from eth_abi.abi import encode as abi_encode
    from eth_utils.crypto import keccak

    from offchain.encoding.eip712 import dataset_id

    acct = Account.create()
    market = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

    def calldata(name: str = "wdbc", query: str = "mean:mean_radius", n: int = 3) -> str:
        sel = keccak(text="postJob(bytes32,string,uint8,uint8,uint16,uint40)")[:4]
        args = abi_encode(["bytes32", "string", "uint8", "uint8", "uint16", "uint40"],
                          [dataset_id(name), query, n, 1, 3, 600])
        return "0x" + (sel + args).hex()

    request = {"dataset": "wdbc", "query": "mean:mean_radius", "committee_size": 3}
    tx = {"from": acct.address, "to": market, "value": hex(10**16), "chainId": "0x7a69",
          "gas": hex(400_000), "maxFeePerGas": hex(3 * 10**9), "maxPriorityFeePerGas": hex(10**9),
          "data": calldata()}
    check_tx(tx, acct, request, 10**16, market, 31337)
    for change, what in (({"to": acct.address}, "not to MPCMarket"),
                         ({"value": hex(10**18)}, "paying"),
                         ({"chainId": "0x1"}, "for chain 1"),
                         ({"from": Account.create().address}, "not from the key's address"),
                         ({"value": "lots"}, "malformed"),
                         ({"data": "0xdeadbeef"}, "does not call postJob"),
                         ({"data": calldata(name="other")}, "other parameters"),
                         ({"data": calldata(query="count")}, "other parameters"),
                         ({"data": calldata(n=5)}, "other parameters"),
                         ({"maxPriorityFeePerGas": hex(10**15)}, "excessive"),
                         ({"maxFeePerGas": hex(10**13)}, "excessive"),
                         ({"gas": hex(10**7)}, "excessive")):
        with pytest.raises(CliError, match=what):
            check_tx({**tx, **change}, acct, request, 10**16, market, 31337)


def test_api_problems_become_one_error_line(tmp_path: Path) -> None:
    """Against a stub API: a 422 problem prints its title, detail and field errors and exits
    2; a 502 exits 1; an unreachable API exits 1. The key never goes over the wire."""
    import offchain.cli.job as cli_job

    acct = Account.create()
    (tmp_path / "k").write_text("0x" + bytes(acct.key).hex())
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        if request.url.path == "/v1/jobs/prepare":
            return httpx.Response(422, headers={"content-type": "application/problem+json"},
                                  json={"type": "x/unknown-column", "title": "Unknown column",
                                        "status": 422, "detail": "no column 'nope'",
                                        "errors": [{"field": "body.query",
                                                    "message": "no column 'nope'"}]})
        return httpx.Response(502, json={"type": "x/chain", "title": "Chain node unreachable",
                                         "status": 502, "detail": "down"})

    real = cli_job._client
    cli_job._client = lambda timeout_s: httpx.Client(transport=httpx.MockTransport(handler))
    app = typer.Typer()
    app.command("post")(cli_job.post_command)
    app.command("show")(cli_job.show_command)
    try:
        runner = CliRunner()
        res = runner.invoke(app, ["post", "--query", "mean:nope", "--dataset", "wdbc",
                                  "--pay", "0.03ether", "--key-file", str(tmp_path / "k"),
                                  "--api-url", "http://x", "--market",
                                  "0x5FbDB2315678afecb367f032d93F642f64180aa3",
                                  "--chain-id", "31337"])
        assert res.exit_code == 2
        assert "error: Unknown column: no column 'nope'" in res.output
        assert "field body.query" in res.output
        body = json.loads(seen[0])
        assert body == {"dataset": "wdbc", "query": "mean:nope", "buyer": acct.address,
                        "payment_wei": 3 * 10**16}
        assert bytes(acct.key).hex() not in seen[0].decode()
        res = runner.invoke(app, ["show", "1", "--api-url", "http://x"])
        assert res.exit_code == 1 and "error: Chain node unreachable: down" in res.output
    finally:
        cli_job._client = real
    res = cli("offchain.cli.job", "show", "1", "--api-url", "http://127.0.0.1:9")
    assert res.returncode == 1 and "cannot reach the API" in error_line(res)
    res = cli("offchain.cli.job", "show", "1", "--deployment", str(tmp_path / "none.json"))
    assert res.returncode == 2 and "no such file" in error_line(res)
