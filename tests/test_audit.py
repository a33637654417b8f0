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
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner
from web3.logs import DISCARD

from offchain import eip712
from offchain.audit import (
    CHECK_NAMES,
    AuditReport,
    ChainLogSource,
    audit_job,
    http_transcript_fetcher,
)
from offchain.chain.beacon import BeaconClient
from offchain.chain.compile import compile_contracts
from offchain.chain.tx import DEFAULT_TIP_WEI, ErrorDecoder, TxSender
from offchain.cli_audit import audit_command, load_deployment
from offchain.demo import DemoNetwork, DemoOptions, DemoResult, validate
from tests.conftest import MIN_PAYMENT_WEI, Env

Event = dict[str, Any]


@pytest.fixture(scope="module")
def network() -> Iterator[DemoNetwork]:
    opts = DemoOptions(timeout_s=120)
    header, rows = validate(opts)
    with DemoNetwork(opts, header, rows) as net:
        yield net


@pytest.fixture(scope="module")
def honest(network: DemoNetwork) -> DemoResult:
    return network.run_job("var:mean_texture")


def deploy_block(net: DemoNetwork) -> int:
    return int(net.market.deployment.receipt["blockNumber"])


def audit(net: DemoNetwork, job_id: int, **kw: Any) -> AuditReport:
    return audit_job(net.w3, net.market.address, job_id, from_block=deploy_block(net), **kw)


class Doctored(ChainLogSource):
    """The real chain, with one event or transaction rewritten on the way to the auditor."""

    def __init__(self, net: DemoNetwork | Env, *, event: Callable[[Event], Event] | None = None,
                 tx: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        super().__init__(net.w3, net.market.contract)
        self.edit_event, self.edit_tx = event, tx

    def events(self, from_block: int) -> list[Event]:
        out = super().events(from_block)
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
    from offchain.audit import _json_depth

    assert _json_depth(b'{"a": [{"b": {"c": "[[[[[[[[[[[[[["}}]}') == 4
    assert _json_depth(b'{"a": "\\"}') == 1
    assert _json_depth(b"[" * 100_000) == 100_000


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


def test_callback_job_of_a_consumer_contract(env: Env) -> None:
    """A contract buyer (examples/StatsConsumer) posts with a callback, so the payment goes
    through the contract and a callback fee is paid on top of the escrow. Finalized by an
    outsider (credited the fee), the job passes the audit (transcripts skipped: the session
    nodes are fake); a second, expired job refunded through the contract passes too; and a
    doctored callback fee fails payments."""
    art = compile_contracts()["StatsConsumer"]
    sender = TxSender(env.w3, ErrorDecoder([*env.market.abi, *art.abi]), DEFAULT_TIP_WEI)
    deployed = sender.send("deploy", env.buyer, env.w3.eth.contract(
        abi=art.abi, bytecode=art.bytecode).constructor(env.market.address))
    stats = env.w3.eth.contract(address=deployed.receipt["contractAddress"], abi=art.abi)
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

    job_id = request(600)
    committee = env.assign(job_id)
    aggregates = [40, 40 * 7 * 10**12]
    inputs = env.inputs(job_id)
    env.market.finalize_job(env.outsider, job_id, aggregates, [m.address for m in committee],
                            inputs, env.signatures(job_id, committee[:2], aggregates, inputs))
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
    sender.send("reclaim", env.buyer, stats.functions.reclaim(expired))
    refunded = audit_env(expired)
    assert refunded.ok and refunded.status == "Refunded", refunded.to_json()
    assert "callback fee" in refunded.check("payments").detail
