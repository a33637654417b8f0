"""End to end: the real demo network (anvil, deployed contracts, 5 node processes on sockets)
computing several queries over the shipped WDBC data, compared with plaintext; the CLI's JSON
output and its bad-input errors; live nodes rejecting forged, tampered and replayed messages."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from eth_account import Account

from offchain.chain.market import ContractRevert
from offchain.devnet.network import DemoNetwork, DemoOptions, validate
from offchain.devnet.provision import DEFAULT_DATA
from offchain.devnet.rpc import dev_accounts
from offchain.encoding import eip712
from offchain.types import JobStatus
from offchain.wire.envelope import Header, seal
from tests.helpers.paths import ROOT

EXE = str(Path(sys.executable).parent / "mpc-market")

QUERIES = [
    "count",
    "sum:benign",
    "mean:mean_radius",
    "var:mean_texture",
    "std:worst_area",
    "pearson:mean_radius,mean_area",
    "histogram:mean_radius:5,10,15,20,25,30",
]


def test_queries_match_plaintext(network: DemoNetwork) -> None:
    for query in QUERIES:
        r = network.run_job(query)
        assert r.contributors == 5, query
        if isinstance(r.plaintext, float):
            assert isinstance(r.result, float)
            assert math.isclose(r.result, r.plaintext, rel_tol=1e-9), (query, r.result,
                                                                       r.plaintext)
        else:
            assert r.result == r.plaintext, query
        job = network.market.get_job(r.job_id)
        assert job.status is JobStatus.FINALIZED
        assert job.result_hash == eip712.result_hash(r.aggregates)
        assert job.provider_count == 5
        assert bin(job.signer_mask).count("1") >= 2  # at least t+1 committee signatures
        gas = {tx["name"]: tx["gas_used"] for tx in r.txs}
        assert gas["postJob"] > 0 and gas["finalizeJob"] > 0
        assert gas["assignCommittee"] > 0 and r.randomness_round >= 1
        assert job.seed_round <= r.randomness_round
    assert network.run_job("count").result == 569


def test_committee_recomputed_from_chain_data(network: DemoNetwork) -> None:
    """Issue 3: the committee the contract recorded equals the one recomputed in Python from
    the seeding round's output and the registry's events alone."""
    from offchain.chain.beacon import BeaconClient
    from offchain.chain.events import EventDecoder
    from offchain.protocol.committee import committee_seed, draw_committee, eligible_from_events

    r = network.run_job("count")
    beacon = BeaconClient(network.market)
    assigned = next(ev for ev in beacon.events("CommitteeAssigned") if ev["job_id"] == r.job_id)
    rnd = beacon.get_round(int(assigned["round_id"]))
    events = EventDecoder(network.market.contract).fetch(0, "latest")
    candidates = eligible_from_events(events, rnd.commit_block)
    assert len(candidates) == 5
    expected = draw_committee(candidates, 3, committee_seed(rnd.output, r.job_id))
    assert expected == r.committee == [str(a) for a in assigned["committee"]]
    assert eip712.committee_hash(expected) == network.market.get_job(r.job_id).committee_hash
    # and the contract's own rule, evaluated by eth_call, agrees
    assert beacon.draw_committee(candidates, 3, committee_seed(rnd.output, r.job_id)) == expected


def test_too_few_providers_times_out_and_refunds(network: DemoNetwork) -> None:
    """A job needing 6 providers when 5 exist: honest members refuse to open (a smaller set
    would reveal more per provider), nothing is finalized, and after the deadline the buyer
    reclaims exactly its escrow."""
    import time

    job_id, _ = network.market.post_job(
        network.buyer, dataset_id=eip712.dataset_id("wdbc"), query="count",
        committee_size=3, threshold=1, min_providers=6, timeout_s=5, payment_wei=10**16)
    time.sleep(2.5)  # real time for the nodes to try (and refuse) to open; < timeout_s
    job = network.market.get_job(job_id)
    assert job.status is JobStatus.OPEN  # no result was finalized
    with pytest.raises(ContractRevert, match="JobDeadlineNotReached"):
        network.market.reclaim_escrow(network.buyer, job_id)
    network.w3.provider.make_request("evm_increaseTime", [10])  # type: ignore[arg-type]
    network.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    before = network.w3.eth.get_balance(network.buyer.address)
    tx = network.market.reclaim_escrow(network.buyer, job_id)
    after = network.w3.eth.get_balance(network.buyer.address)
    gas_cost = tx.gas_used * int(tx.receipt["effectiveGasPrice"])
    assert after - before == 10**16 - gas_cost
    assert network.market.get_job(job_id).status is JobStatus.REFUNDED
    logs = list(network.run_dir.glob("node-*/node.log"))
    assert any("only 5 providers contributed; the job needs 6" in p.read_text() for p in logs)


def test_a_non_utf8_query_does_not_stop_the_nodes(network: DemoNetwork) -> None:
    """Anyone can post a job whose query string is not UTF-8 (the ABI does not check). Nodes
    must skip that one log and keep following the chain: the next job still completes."""
    from eth_abi.abi import encode
    from eth_utils.crypto import keccak

    w3, buyer = network.w3, network.buyer
    selector = keccak(text="postJob(bytes32,string,uint8,uint8,uint16,uint40)")[:4]
    data = selector + encode(["bytes32", "bytes", "uint8", "uint8", "uint16", "uint40"],
                             [eip712.dataset_id("wdbc"), b"count\xff", 3, 1, 1, 60])
    tx = {"to": network.market.address, "data": data, "value": 10**15, "gas": 300_000,
          "chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(buyer.address),
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 10**9}
    tx_hash = w3.eth.send_raw_transaction(buyer.sign_transaction(tx).raw_transaction)
    assert w3.eth.wait_for_transaction_receipt(tx_hash)["status"] == 1
    assert network.run_job("count").result == 569
    logs = [p.read_text() for p in network.run_dir.glob("node-*/node.log")]
    assert any("skipping undecodable JobPosted log" in text for text in logs)


def test_restarted_node_updates_its_endpoint(network: DemoNetwork) -> None:
    """A provider restarts from its config file (port 0: a new port). It updates its endpoint
    on chain, the other nodes follow the NodeEndpointUpdated event, and the next job still
    gets all 5 providers' contributions."""
    i = 1
    address = network.nodes.ready[i]["address"]
    old_endpoint = network.market.get_node(address).endpoint
    old = network.nodes.procs[i]
    old.terminate()
    old.wait(timeout=10)
    network.nodes.start(network.run_dir / f"node-{i}")
    proc = network.nodes.procs[-1]
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    assert ready["address"] == address
    assert ready["endpoint"] != old_endpoint
    assert network.market.get_node(address).endpoint == ready["endpoint"]
    r = network.run_job("count")
    assert r.contributors == 5 and r.result == 569


def test_cast_audit_script(network: DemoNetwork) -> None:
    """scripts/cast-audit.sh checks a finished job with Foundry's cast alone; it fails on a job
    that was never finalized."""
    r = network.run_job("sum:mean_area")
    script = str(ROOT / "scripts" / "cast-audit.sh")
    ok = subprocess.run([script, network.rpc_url, network.market.address, str(r.job_id)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout
    assert ok.stdout.count("PASS  signature by") >= 2
    missing = subprocess.run([script, network.rpc_url, network.market.address, "999"],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0


def test_nodes_reject_bad_messages(network: DemoNetwork) -> None:
    """A live node drops unsigned, tampered, misaddressed, forged and replayed envelopes."""
    r = network.run_job("mean:mean_area")
    member = r.committee[0]
    endpoint = network.market.get_node(member).endpoint
    url = endpoint + "/v1/peer"
    info = network.market.get_node(member)
    outsider = Account.create()
    header = Header(chain_id=network.chain_id, contract=network.market.address,
                    job_id=r.job_id, kind="decline", sender=outsider.address, recipient=member)
    forged = seal(header, b'{"reason":"x"}', outsider, info.enc_key)
    assert httpx.post(url, json=forged).status_code == 403  # unregistered sender

    # a committee member's transcript holds envelopes it received from other nodes
    transcripts = [json.loads(p.read_text()) for p in network.run_dir.glob(
        f"node-*/state/transcripts/job-{r.job_id}.json")]
    transcript, received = next(
        (t, m) for t in transcripts for m in t["messages"]
        if m["recipient"] == t["node"] and m["sender"] != t["node"])
    node_url = network.market.get_node(transcript["node"]).endpoint + "/v1/peer"
    env = received["envelope"]
    assert httpx.post(node_url, json=env).status_code == 409  # replayed
    tampered = dict(env, ciphertext=env["ciphertext"][:-2] + ("00" if env["ciphertext"][-2:]
                                                              != "00" else "01"))
    assert httpx.post(node_url, json=tampered).status_code == 400
    other = next(a for a in r.committee if a != transcript["node"])
    misaddressed = dict(env, recipient=other)
    assert httpx.post(node_url, json=misaddressed).status_code == 400
    assert httpx.post(node_url, content=b"[" * 100_000).status_code == 400  # no crash
    assert httpx.post(node_url, content=b"x" * (2 << 20)).status_code == 413
    # the nodes still work afterwards
    assert network.run_job("count").result == 569


def test_cli_json_demo() -> None:
    out = subprocess.run([EXE, "demo", "--json", "--query", "pearson:mean_radius,benign"],
                         capture_output=True, text=True, timeout=300, check=True)
    r = json.loads(out.stdout)
    for key in ("job_id", "query", "result", "plaintext", "providers", "committee", "txs",
                "latency_s", "randomness_round"):
        assert key in r
    assert math.isclose(r["result"], r["plaintext"], rel_tol=1e-9)
    assert len(r["committee"]) == 3 and r["providers"] == 5
    assert r["randomness_round"] == 1  # the round the job's post opened
    names = {tx["name"] for tx in r["txs"]}
    assert {"deploy", "postJob", "commitRound", "reveal", "assignCommittee",
            "finalizeJob"} <= names
    assert all(tx["gas_used"] > 0 for tx in r["txs"])


def test_cli_randomness_with_withheld_reveals() -> None:
    """Issue 3: T = 2 of 7 nodes never reveal. Their contributions are reconstructed from T+1
    verified shares after the reveal phase (each honest node publishes its shares of both),
    accepted by the chain only because they match the commitments; the output is the hash of all
    seven contributions (recomputed from the opened values), and the withholders - and nobody
    else - are slashed."""
    out = subprocess.run([EXE, "randomness", "--json", "--participants", "7", "--withhold", "2"],
                         capture_output=True, text=True, timeout=300, check=True)
    r = json.loads(out.stdout)
    assert len(r["participants"]) == 7 and r["threshold"] == 2
    assert len(r["revealed"]) == 5 and len(r["recovered"]) == 2
    assert set(r["revealed"]) | set(r["recovered"]) == set(r["participants"])
    assert r["slashed"] == r["recovered"]
    assert r["output_recomputed"] is True
    names = [tx["name"] for tx in r["txs"]]
    assert names[:3] == ["requestRandomness", "commitRound", "reveal"] and "recover" in names
    assert len(r["value"]) == 66 and r["gas_round"] > 0


def test_cli_randomness_with_an_inconsistent_dealer() -> None:
    """Issue 3: a dealer deals one node a share that does not match its Pedersen commitment.
    The recipient detects it (and holds a signed, provable complaint), the leader leaves the
    dealer out of Q, and the round completes at once with the other four."""
    out = subprocess.run([EXE, "randomness", "--json", "--bad-share", "1"],
                         capture_output=True, text=True, timeout=300, check=True)
    r = json.loads(out.stdout)
    assert len(r["excluded"]) == 1 and len(r["participants"]) == 4
    assert r["excluded"][0] not in r["participants"]
    assert sorted(r["revealed"]) == sorted(r["participants"]) and r["recovered"] == []
    assert r["output_recomputed"] is True and r["slashed"] == []
    assert r["latency_s"] < 5


def test_cli_randomness_rejects_bad_options() -> None:
    for args, message in ((["--participants", "2"], "at least 3"),
                          (["--withhold", "5"], "--withhold must be between 0 and 4")):
        proc = subprocess.run([EXE, "randomness", *args], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr


def test_cli_demo_on_another_csv(tmp_path: Path) -> None:
    """Any numeric CSV with a header works: negative values, 12 decimal places, exponents,
    blanks around cells, a non-numeric column that is not queried."""
    lines = ["site, temp_c ,pressure_hpa"]
    for i in range(40):
        temp = f"{(-1) ** i * (i * 1.234567890123):.12f}"
        lines.append(f"s{i}, {temp} ,{1013.25 + i * 0.5e-1}")
    csv_path = tmp_path / "readings.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    for query in ("var:temp_c", "pearson:temp_c,pressure_hpa", "histogram:temp_c:-50,-10,0,10,50"):
        out = subprocess.run([EXE, "demo", "--json", "--data", str(csv_path), "--query", query,
                              "--providers", "3", "--committee", "3"],
                             capture_output=True, text=True, timeout=120, check=True)
        r = json.loads(out.stdout)
        assert r["contributors"] == 3
        if isinstance(r["plaintext"], float):
            assert math.isclose(r["result"], r["plaintext"], rel_tol=1e-9), (query, r)
        else:
            assert r["result"] == r["plaintext"], (query, r)


@pytest.mark.parametrize("args,message", [
    (["--query", "mean:no_such_column"], "unknown column 'no_such_column'"),
    (["--data", "{nonnumeric}", "--query", "mean:a"], "column 'a', row 2"),
    (["--data", "{empty}"], "empty"),
    (["--providers", "3", "--min-providers", "4"], "smaller than --min-providers"),
    (["--threshold", "3", "--committee", "3"], "1 <= T < N"),
    (["--threshold", "2", "--committee", "4"], "needs N >= 2T+1 = 5"),
    (["--committee", "6", "--providers", "5"], "larger than --providers"),
    (["--query", "histogram:mean_radius:10,5,20"], "strictly increasing"),
    (["--data", "{missing}"], "cannot read"),
])
def test_cli_bad_input(network: DemoNetwork, tmp_path: Path, args: list[str],
                       message: str) -> None:
    """Each bad input: one 'error:' line, non-zero exit, and nothing sent to the chain."""
    (tmp_path / "nonnumeric.csv").write_text("a,b\n1,2\nfoo,3\n")
    (tmp_path / "empty.csv").write_text("")
    files = {"nonnumeric": tmp_path / "nonnumeric.csv", "empty": tmp_path / "empty.csv",
             "missing": tmp_path / "missing.csv"}
    args = [a.format(**files) for a in args]
    # blocks keep coming (one a second), so "nothing sent" = the demo's accounts sent nothing
    senders = [a.address for a in dev_accounts(2)]
    nonces = [network.w3.eth.get_transaction_count(a) for a in senders]
    out = subprocess.run([EXE, "demo", "--rpc-url", network.rpc_url, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
    assert message in lines[0]
    assert [network.w3.eth.get_transaction_count(a) for a in senders] == nonces


def test_cli_unreachable_rpc() -> None:
    out = subprocess.run([EXE, "demo", "--rpc-url", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("error:") and "unreachable" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_default_data_is_shipped() -> None:
    assert DEFAULT_DATA.is_file()


@pytest.mark.parametrize("signame", ["SIGINT", "SIGTERM"])
def test_interrupt_stops_devnet_and_nodes(signame: str) -> None:
    """Ctrl-C (or SIGTERM) mid-run: exit 130 with one error line, anvil and nodes all gone."""
    import signal
    import time

    proc = subprocess.Popen([EXE, "demo"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT,
                                                                        signal.SIG_DFL))
    assert proc.stderr is not None
    children: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until anvil and all 5 nodes run
        out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True)
        children = [int(p) for p in out.stdout.split()]
        if len(children) >= 6:
            break
        time.sleep(0.05)
    assert len(children) >= 6, children
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("error: interrupted")
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} still running"


def test_a_committee_member_dying_does_not_stop_the_job() -> None:
    """Sneak's ring never completes when a node dies. Here, with N=5, T=1, one committee member
    (also a provider) is killed before the job: the other four agree (quorum 4), open (3
    needed) and finalize; the chain records 4 contributing providers, and the count is exactly
    the surviving providers' rows."""
    import os
    import signal

    opts = DemoOptions(providers=5, committee=5, threshold=1, min_providers=4, timeout_s=60,
                       collect_timeout_s=2.0)
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows) as net:
        victim = 2
        os.kill(net.nodes.procs[victim].pid, signal.SIGKILL)
        net.nodes.procs[victim].wait()
        r = net.run_job("count")
        victim_rows = len(rows[victim * len(rows) // 5:(victim + 1) * len(rows) // 5])
        assert r.contributors == 4
        assert r.result == 569 - victim_rows
        job = net.market.get_job(r.job_id)
        assert bin(job.signer_mask).count("1") == 4  # the dead member did not sign
        assert r.latency_s < 15  # a grace period per round, not a timeout per round
