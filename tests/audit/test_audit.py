"""Issue 4: auditing a job from chain data alone (``offchain.audit``, ``mpc-market audit``).

One real demo network (anvil, the deployed market, five node processes) runs an honest job;
the audit passes it, including the transcripts the signers publish at
``GET /v1/transcripts/{job}``. Doctored inputs fail exactly the check that covers them: a
tampered log source (aggregates, committee, reward), a flipped byte in a signature of the
finalizeJob calldata, tampered transcripts, and a market deployed with a deliberately wrong
committee rule (``contracts/test/WrongRuleMarket.sol``) whose job real nodes finalize.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner
from web3 import Web3
from web3.logs import DISCARD
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from offchain.audit import (
    CHECK_NAMES,
    FETCH_DEADLINE_S,
    TRANSCRIPTS_BUDGET_S,
    AuditReport,
    ChainLogSource,
    audit_job,
    http_transcript_fetcher,
    registration_from_events,
)
from offchain.chain.beacon import BeaconClient
from offchain.chain.tx import DEFAULT_TIP_WEI, ErrorDecoder, TxSender
from offchain.cli.audit import audit_command, load_deployment
from offchain.devnet.compile import compile_contracts
from offchain.devnet.network import DemoNetwork, DemoOptions, DemoResult, validate
from offchain.encoding import eip712
from tests.helpers.env import MIN_PAYMENT_WEI, Env

Event = dict[str, Any]


@pytest.fixture(scope="module")
def honest(network: DemoNetwork) -> DemoResult:
    return network.run_job("var:mean_texture")


def deploy_block(net: DemoNetwork) -> int:
    return int(net.market.deployment.receipt["blockNumber"])


def audit(net: DemoNetwork, job_id: int, **kw: Any) -> AuditReport:
    return audit_job(net.w3, net.market.address, job_id, from_block=deploy_block(net), **kw)


class Doctored(ChainLogSource):
    """The real chain, with one event or transaction rewritten (or events dropped) on the way
    to the auditor."""

    def __init__(self, net: DemoNetwork | Env, *, event: Callable[[Event], Event] | None = None,
                 tx: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 drop: Callable[[Event], bool] | None = None, w3: Web3 | None = None) -> None:
        super().__init__(w3 or net.w3, net.market.contract)
        self.edit_event, self.edit_tx, self.drop = event, tx, drop

    def events(self, from_block: int) -> list[Event]:
        out = [e for e in super().events(from_block) if not (self.drop and self.drop(e))]
        return [self.edit_event(dict(e)) if self.edit_event else e for e in out]

    def transaction(self, tx_hash: str) -> dict[str, Any]:
        tx = super().transaction(tx_hash)
        return self.edit_tx(dict(tx)) if self.edit_tx else tx


def only(job_id: int, name: str, change: Callable[[Event], None]) -> Callable[[Event], Event]:
    def edit(ev: Event) -> Event:
        if ev["event"] == name and ev.get("job_id") == job_id:
            change(ev)
        return ev
    return edit


def test_honest_job_passes_every_check(network: DemoNetwork, honest: DemoResult) -> None:
    report = audit(network, honest.job_id)
    assert [c.name for c in report.checks] == list(CHECK_NAMES)
    assert report.ok, report.to_json()
    assert all(c.verdict == "PASS" for c in report.checks), report.to_json()
    assert report.status == "Finalized" and report.query == "var:mean_texture"
    assert report.statistic == honest.result
    assert "published" not in report.check("transcripts").detail  # every signer served it
    assert "recover to committee members" in report.check("signatures.valid").detail


def test_cli_audit_command(network: DemoNetwork, honest: DemoResult, tmp_path: Path) -> None:
    app = typer.Typer()
    app.command()(audit_command)
    runner = CliRunner()
    dep = tmp_path / "deployment.json"
    dep.write_text(json.dumps({
        "chain_id": network.chain_id, "rpc_url": network.rpc_url, "api_url": None,
        "contracts": {"MPCMarket": {"address": network.market.address,
                                    "block": deploy_block(network)}}, "nodes": []}))
    assert load_deployment(dep).from_block == deploy_block(network)

    human = runner.invoke(app, [str(honest.job_id), "--deployment", str(dep)])
    assert human.exit_code == 0, human.output
    lines = human.stdout.splitlines()
    for name in CHECK_NAMES:
        assert any(line.startswith("PASS") and f" {name} " in line for line in lines), name

    as_json = runner.invoke(app, [str(honest.job_id), "--deployment", str(dep), "--json"])
    assert as_json.exit_code == 0
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is True and [c["name"] for c in doc["checks"]] == list(CHECK_NAMES)

    # the market given as a plain "market" key, the RPC URL on the command line
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"market": network.market.address}))
    ok = runner.invoke(app, [str(honest.job_id), "--deployment", str(plain), "--rpc-url",
                             network.rpc_url, "--json"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True

    for args, message in (
        ([str(10**6), "--deployment", str(dep)], "does not exist"),
        ([str(honest.job_id), "--deployment", str(dep), "--rpc-url", "http://127.0.0.1:9"],
         "unreachable"),
        ([str(honest.job_id), "--deployment", str(tmp_path / "missing.json")], "cannot read"),
        ([str(honest.job_id), "--deployment", str(plain)], "no RPC URL"),
    ):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2, (args, bad.output)
        err = [line for line in bad.stderr.splitlines() if line.strip()]
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], bad.stderr


def test_doctored_aggregates_fail_result_hash(network: DemoNetwork, honest: DemoResult) -> None:
    def change(ev: Event) -> None:
        ev["aggregates"] = [ev["aggregates"][0] - 1, *ev["aggregates"][1:]]

    source = Doctored(network, event=only(honest.job_id, "JobFinalized", change))
    report = audit(network, honest.job_id, log_source=source)
    assert report.failed() == ["result.hash"], report.to_json()
    assert "not the logged resultHash" in report.check("result.hash").detail


def test_swapped_committee_member_fails_selection_rule(network: DemoNetwork,
                                                       honest: DemoResult) -> None:
    outsider = next(a for a in network.registered if a not in honest.committee)

    def change(ev: Event) -> None:
        ev["committee"] = sorted([outsider, *ev["committee"][1:]], key=lambda a: int(a, 16))

    source = Doctored(network, event=only(honest.job_id, "CommitteeAssigned", change))
    report = audit(network, honest.job_id, log_source=source)
    assert report.failed() == ["committee.selection_rule"], report.to_json()
    assert "committeeHash" in report.check("committee.selection_rule").detail


def test_doctored_reward_fails_payments(network: DemoNetwork, honest: DemoResult) -> None:
    def change(ev: Event) -> None:
        ev["reward_per_signer_wei"] += 1

    source = Doctored(network, event=only(honest.job_id, "JobFinalized", change))
    report = audit(network, honest.job_id, log_source=source)
    assert report.failed() == ["payments"], report.to_json()


def test_doctored_round_output_fails_selection_rule(network: DemoNetwork,
                                                    honest: DemoResult) -> None:
    """A tampered ContributionOpened secret no longer opens its commitment, and the output is
    no longer the hash of the opened secrets."""
    def edit(ev: Event) -> Event:
        if ev["event"] == "ContributionOpened" and ev["round_id"] == honest.randomness_round:
            ev["secret"] = ev["secret"] ^ 1
        return ev

    report = audit(network, honest.job_id, log_source=Doctored(network, event=edit))
    assert report.failed() == ["committee.selection_rule"], report.to_json()
    detail = report.check("committee.selection_rule").detail
    assert "does not match its commitment" in detail and "sum of the opened secrets" in detail


def test_flipped_signature_byte_fails_signatures(network: DemoNetwork,
                                                 honest: DemoResult) -> None:
    finalized = next(ev for ev in network.market.job_finalized_events(deploy_block(network))
                     if ev["job_id"] == honest.job_id)
    raw = ChainLogSource(network.w3, network.market.contract).transaction(finalized["tx_hash"])
    _fn, args = network.market.contract.decode_function_input(raw["input"])
    r = bytes(args["signatures"][0]["sig"]["r"])
    assert raw["input"].count(r) == 1

    def flip(tx: dict[str, Any]) -> dict[str, Any]:
        if tx["hash"] == finalized["tx_hash"]:
            at = tx["input"].index(r) + 31
            tx["input"] = tx["input"][:at] + bytes([tx["input"][at] ^ 1]) + tx["input"][at + 1:]
        return tx

    report = audit(network, honest.job_id, log_source=Doctored(network, tx=flip))
    failed = report.failed()
    assert "signatures.valid" in failed, report.to_json()
    # with the other signatures still valid, only the threshold may follow (if just t+1 signed)
    assert set(failed) <= {"signatures.valid", "signatures.threshold"}, failed
    assert len(args["signatures"]) > 2 or "signatures.threshold" in failed


def test_transcript_endpoint(network: DemoNetwork, honest: DemoResult) -> None:
    signer = honest.committee[0]
    endpoint = network.market.get_node(signer).endpoint
    doc = httpx.get(f"{endpoint}/v1/transcripts/{honest.job_id}").json()
    assert doc["job_id"] == honest.job_id and doc["node"] == signer
    assert {m["kind"] for m in doc["messages"]} >= {"share", "received", "agree", "open"}
    for path in ("999999", "abc", "-1", "9" * 100):
        assert httpx.get(f"{endpoint}/v1/transcripts/{path}").status_code == 404, path


def _tampered(change: Callable[[dict[str, Any]], None]) -> Callable[[str, int], Any]:
    fetch = http_transcript_fetcher()

    def tampered(endpoint: str, job_id: int) -> dict[str, Any] | None:
        doc = fetch(endpoint, job_id)
        if doc is not None:
            change(doc)
        return doc
    return tampered


def test_tampered_transcripts_fail(network: DemoNetwork, honest: DemoResult) -> None:
    def ciphertext(doc: dict[str, Any]) -> None:
        env = doc["messages"][0]["envelope"]
        env["ciphertext"] = env["ciphertext"][:-2] + ("00" if env["ciphertext"][-2:] != "00"
                                                      else "01")

    def signature(doc: dict[str, Any]) -> None:  # leaves every digest, hence the root, intact
        a, b = doc["messages"][0]["envelope"], doc["messages"][1]["envelope"]
        a["signature"] = b["signature"]

    def dropped(doc: dict[str, Any]) -> None:
        doc["messages"] = doc["messages"][1:]

    def wrong_job(doc: dict[str, Any]) -> None:
        doc["job_id"] += 1

    for change, expected in ((ciphertext, "recorded digest is not the envelope's"),
                             (wrong_job, "transcript is for job"),
                             (signature, "not by its sender"),
                             (dropped, "is not the signed transcriptRoot")):
        report = audit(network, honest.job_id, fetch_transcript=_tampered(change))
        assert report.failed() == ["transcripts"], (change.__name__, report.to_json())
        assert expected in report.check("transcripts").detail, change.__name__


def test_fetcher_refuses_deep_nesting() -> None:
    """Endpoints are untrusted: nesting is bounded before any JSON parsing."""
    from offchain.audit.fetch import json_depth

    assert json_depth(b'{"a": [{"b": {"c": "[[[[[[[[[[[[[["}}]}') == 4
    assert json_depth(b'{"a": "\\"}') == 1
    assert json_depth(b"[" * 100_000) == 100_000


def test_unpublished_transcripts_are_skipped(network: DemoNetwork, honest: DemoResult) -> None:
    report = audit(network, honest.job_id, fetch_transcript=lambda endpoint, job_id: None)
    assert report.ok and report.check("transcripts").verdict == "SKIP"


def test_refunded_job(network: DemoNetwork) -> None:
    """A job needing 6 providers of 5 is never finalized: while Open the audit fails its
    payments (escrow locked); after the refund, payments and deadlines pass and the result
    checks are skipped."""
    job_id, _ = network.market.post_job(
        network.buyer, dataset_id=eip712.dataset_id("wdbc"), query="count",
        committee_size=3, threshold=1, min_providers=6, timeout_s=5, payment_wei=10**16)
    beacon = BeaconClient(network.market)
    end = time.monotonic() + 4  # the committee is drawn ~1 s after the post
    while time.monotonic() < end and not any(
            ev["job_id"] == job_id for ev in beacon.events("CommitteeAssigned")):
        time.sleep(0.1)
    open_report = audit(network, job_id)
    assert open_report.status == "Open" and not open_report.ok
    assert open_report.failed() == ["payments"], open_report.to_json()
    network.w3.provider.make_request("evm_increaseTime", [10])  # type: ignore[arg-type]
    network.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    network.market.reclaim_escrow(network.buyer, job_id)
    report = audit(network, job_id)
    assert report.ok and report.status == "Refunded", report.to_json()
    verdicts = {c.name: c.verdict for c in report.checks}
    assert verdicts["payments"] == verdicts["deadlines"] == "PASS"
    assert verdicts["job.parameters"] == verdicts["job.escrow"] == "PASS"
    for name in ("signatures.valid", "signatures.threshold", "inputs.providers", "result.hash",
                 "result.statistic", "transcripts"):
        assert verdicts[name] == "SKIP", name
    assert "refunded to the buyer" in report.check("payments").detail
    assert verdicts["committee.selection_rule"] in ("PASS", "SKIP")


def test_wrong_selection_rule_fails_only_that_check() -> None:
    """A market whose drawCommittee deviates from the rule: real nodes run and finalize the job
    on it as usual, and the audit fails committee.selection_rule and nothing else."""
    wrong = compile_contracts(include_tests=True)["WrongRuleMarket"]
    opts = DemoOptions(providers=4, committee=3, timeout_s=60, market_artifact=wrong)
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows) as net:
        r = net.run_job("mean:mean_radius")
        report = audit(net, r.job_id)
    assert report.failed() == ["committee.selection_rule"], report.to_json()
    assert "the selection rule gives" in report.check("committee.selection_rule").detail
    assert report.check("transcripts").verdict == "PASS"


_CONSUMER: dict[str, tuple[Any, Any, TxSender]] = {}  # market -> (artifact, contract, sender)


def _stats_consumer(env: Env) -> tuple[Callable[[int], int], Callable[..., AuditReport]]:
    """Deploy examples/StatsConsumer on ``env``'s market: (request(timeout_s) -> a job posted
    through it with a callback, audit(job_id, **kw) with transcripts not fetched)."""
    art = compile_contracts()["StatsConsumer"]
    sender = TxSender(env.w3, ErrorDecoder([*env.market.abi, *art.abi]), DEFAULT_TIP_WEI)
    deployed = sender.send("deploy", env.buyer, env.w3.eth.contract(
        abi=art.abi, bytecode=art.bytecode).constructor(env.market.address))
    stats = env.w3.eth.contract(address=deployed.receipt["contractAddress"], abi=art.abi)
    _CONSUMER[env.market.address] = (art, stats, sender)
    fee = int(env.market.contract.functions.jobCallbackFeeWei(120_000).call())
    value = MIN_PAYMENT_WEI + 3 * fee  # the fee is taken at the block's gas price; rest escrow

    def request(timeout_s: int) -> int:
        tx = sender.send("requestMean", env.buyer, stats.functions.requestMean(
            env.dataset, "radius", 3, 1, 3, timeout_s), value=value)
        logs = env.market.contract.events.JobPosted().process_receipt(tx.receipt,
                                                                      errors=DISCARD)
        return int(logs[0]["args"]["jobId"])

    def audit_env(job_id: int, **kw: Any) -> AuditReport:
        return audit_job(env.w3, env.market.address, job_id,
                         fetch_transcript=lambda endpoint, job: None, **kw)

    return request, audit_env


def _finalize_callback_job(env: Env, job_id: int) -> int:
    """Draw the committee of ``job_id`` and finalize it by an outsider (2 signatures)."""
    committee = env.assign(job_id)
    aggregates = [40, 40 * 7 * 10**12]
    inputs = env.inputs(job_id)
    env.market.finalize_job(env.outsider, job_id, aggregates, [m.address for m in committee],
                            inputs, env.signatures(job_id, committee[:2], aggregates, inputs))
    return job_id


def test_callback_job_of_a_consumer_contract(env: Env) -> None:
    """A contract buyer (examples/StatsConsumer) posts with a callback, so the payment goes
    through the contract and a callback fee is paid on top of the escrow. Finalized by an
    outsider (credited the fee), the job passes the audit (transcripts skipped: the session
    nodes are fake); a second, expired job refunded through the contract passes too; and a
    doctored callback fee fails payments."""
    request, audit_env = _stats_consumer(env)
    job_id = _finalize_callback_job(env, request(600))
    report = audit_env(job_id)
    assert report.ok and report.check("transcripts").verdict == "SKIP", report.to_json()
    assert report.failed() == [] and report.statistic == 7.0
    assert "callback fee" in report.check("payments").detail
    assert "buyer contract" in report.check("job.escrow").detail

    def change(ev: Event) -> Event:
        if ev["event"] == "JobCallback" and ev["job_id"] == job_id:
            ev["fee_wei"] += 1
        return ev

    assert audit_env(job_id, log_source=Doctored(env, event=change)).failed() == ["payments"]

    expired = request(5)
    env.advance(10)
    _, stats, sender = _CONSUMER[env.market.address]
    sender.send("reclaim", env.buyer, stats.functions.reclaim(expired))
    refunded = audit_env(expired)
    assert refunded.ok and refunded.status == "Refunded", refunded.to_json()
    assert "callback fee" in refunded.check("payments").detail


def test_dropped_callback_logs_fail(env: Env) -> None:
    """The callback is read from storage too (jobCallback): a log source that hides a callback
    job's JobCallbackRequested and JobCallback fails job.escrow (storage has a callback gas
    limit, no log requests one) and payments (no callback delivered); a logged gas limit that
    differs from the stored one fails job.escrow."""
    request, audit_env = _stats_consumer(env)
    job_id = _finalize_callback_job(env, request(600))
    assert audit_env(job_id).ok
    hidden = Doctored(env, drop=lambda ev: ev["event"] in ("JobCallbackRequested", "JobCallback")
                      and ev.get("job_id") == job_id)
    report = audit_env(job_id, log_source=hidden)
    assert {"job.escrow", "payments"} <= set(report.failed()), report.to_json()
    assert "no JobCallbackRequested log" in report.check("job.escrow").detail
    assert "0 JobCallback logs" in report.check("payments").detail

    def limit(ev: Event) -> None:
        ev["callback_gas_limit"] += 1

    report = audit_env(job_id, log_source=Doctored(
        env, event=only(job_id, "JobCallbackRequested", limit)))
    assert report.failed() == ["job.escrow"], report.to_json()
    assert "callback gas limit" in report.check("job.escrow").detail


# ----------------------------------------------------------------------------- slow endpoints


@contextmanager
def drip_server(*, headers: bool) -> Iterator[str]:
    """A raw-socket HTTP server that answers 200 with a chunked body one byte every 0.4 s (or,
    with ``headers``, drips even its status line and headers byte by byte), forever: each byte
    arrives well within a client's per-read timeout."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")

    def drip(conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                for i in range(len(head)) if headers else ():
                    conn.sendall(head[i:i + 1])
                    if stop.wait(0.4):
                        return
                if not headers:
                    conn.sendall(head)
                conn.sendall(b"1\r\n{\r\n")
                while not stop.wait(0.4):
                    conn.sendall(b"1\r\n \r\n")
            except OSError:  # the client hung up
                return

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        srv.close()


@pytest.mark.parametrize("headers", [False, True], ids=["body", "headers"])
def test_fetcher_cuts_off_a_dripping_endpoint(headers: bool) -> None:
    """httpx's timeout bounds each read only: the fetcher's wall-clock deadline ends a fetch
    from an endpoint that drips its body (or its headers) a byte at a time."""
    fetch = http_transcript_fetcher(timeout_s=3.0, deadline_s=1.5)
    with drip_server(headers=headers) as url:
        start = time.monotonic()
        assert fetch(url, 1) is None
        assert time.monotonic() - start < 2.5


def test_default_fetcher_deadline() -> None:
    assert FETCH_DEADLINE_S <= 5 and TRANSCRIPTS_BUDGET_S <= 15
    with drip_server(headers=False) as url:
        start = time.monotonic()
        assert http_transcript_fetcher()(url, 1) is None
        assert time.monotonic() - start < FETCH_DEADLINE_S + 1


def test_transcripts_budget(network: DemoNetwork, honest: DemoResult) -> None:
    """A transcript fetched after the check's budget is spent counts as unavailable, not as
    verified; the check is skipped when none arrived in time."""
    real = http_transcript_fetcher()

    def slow(endpoint: str, job_id: int) -> dict[str, Any] | None:
        time.sleep(0.6)
        return real(endpoint, job_id)

    report = audit(network, honest.job_id, fetch_transcript=slow, transcript_budget_s=1.0)
    check = report.check("transcripts")
    assert report.ok and check.verdict == "PASS", report.to_json()
    assert check.detail.startswith("1 signer transcript(s) match"), check.detail
    assert "unavailable within the 1 s budget" in check.detail

    with drip_server(headers=False) as url:
        dripping = http_transcript_fetcher(deadline_s=1.0)
        start = time.monotonic()
        report = audit(network, honest.job_id, transcript_budget_s=1.5,
                       fetch_transcript=lambda endpoint, job_id: dripping(url, job_id))
        elapsed = time.monotonic() - start
    check = report.check("transcripts")
    assert report.ok and check.verdict == "SKIP", report.to_json()
    assert "budget" in check.detail or "did not answer" in check.detail
    assert elapsed < 20


# ----------------------------------------------------------------------------- no history


class NoHistoryProvider(HTTPProvider):
    """anvil restarted without --preserve-history: ``eth_call``/``eth_getBalance`` at a block
    before ``cutoff`` fail as anvil fails them; the current state still answers."""

    def __init__(self, url: str, cutoff: int) -> None:
        super().__init__(url)
        self.cutoff = cutoff

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if method in ("eth_call", "eth_getBalance") and len(params) > 1 and \
                isinstance(params[1], str) and params[1].startswith("0x") and \
                int(params[1], 16) < self.cutoff:
            return {"jsonrpc": "2.0", "id": 1,  # type: ignore[typeddict-item]
                    "error": {"code": -32000, "message": "historical state not available"}}
        return super().make_request(method, params)


def test_audit_without_historical_state(network: DemoNetwork, honest: DemoResult) -> None:
    """Without state at past blocks the auditor never compares the current state with itself:
    an honest job passes (payments says its storage deltas went unchecked), and registrations
    are replayed from the registry's events, so a signer whose (doctored) registration comes
    after the finalize block fails signatures.valid."""
    w3 = Web3(NoHistoryProvider(network.rpc_url, network.w3.eth.block_number + 1))
    with pytest.raises(Exception, match="historical state"):
        w3.eth.get_balance(network.market.address, block_identifier=deploy_block(network))
    report = audit_job(w3, network.market.address, honest.job_id,
                       from_block=deploy_block(network))
    assert report.ok and all(c.verdict == "PASS" for c in report.checks), report.to_json()
    payments = report.check("payments").detail
    assert "rewardsWei deltas" in payments and "no historical state" in payments, payments
    assert "replayed from the registry's events" in report.check("signatures.valid").detail
    assert "replayed from the registry's events" in report.check("inputs.providers").detail

    final = next(ev for ev in network.market.job_finalized_events(deploy_block(network))
                 if ev["job_id"] == honest.job_id)
    mask = int(final["signer_mask"])
    signer = honest.committee[(mask & -mask).bit_length() - 1]

    def late(ev: Event) -> Event:
        if ev["event"] == "NodeRegistered" and ev["node"] == signer:
            ev["block_number"] = int(final["block_number"]) + 1
        return ev

    report = audit_job(w3, network.market.address, honest.job_id,
                       from_block=deploy_block(network),
                       log_source=Doctored(network, event=late, w3=w3))
    failed = report.failed()
    assert "signatures.valid" in failed, report.to_json()
    assert f"signer {signer} was not registered" in report.check("signatures.valid").detail
    assert set(failed) <= {"signatures.valid", "signatures.threshold",
                           "committee.selection_rule", "inputs.providers"}, failed


def test_registration_from_events() -> None:
    a, b = "0x" + "11" * 20, "0x" + "22" * 20

    def ev(name: str, block: int, node: str, **kw: Any) -> Event:
        return {"event": name, "block_number": block, "node": node, **kw}

    events = [ev("NodeRegistered", 2, a, stake_wei=100), ev("NodeRegistered", 3, b, stake_wei=50),
              ev("NodeSlashed", 5, a, amount_wei=30, exit_at=0),
              ev("NodeExitRequested", 6, b, exit_at=0), ev("NodeExited", 8, b),
              ev("NodeRegistered", 9, b, stake_wei=70)]
    assert registration_from_events(events, a, 1) == (0, 0)
    assert registration_from_events(events, a, 4) == (100, 1)
    assert registration_from_events(events, a, 5) == (70, 2)
    assert registration_from_events(events, b, 6) == (50, 2)
    assert registration_from_events(events, b, 8) == (0, 0)
    assert registration_from_events(events, b, 9) == (70, 1)
