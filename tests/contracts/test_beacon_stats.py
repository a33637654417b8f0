"""Statistics of 200 beacon rounds on anvil: uniform outputs and uniform committee selection.

Setup: a fresh MPCMarket with 8 registered nodes (so T = (8 - 1) // 3 = 2). Each of the 200
rounds is opened by posting a job with committee size 3; the same 5 = 2T + 1 nodes take part in
every round and all of them reveal (tests/beacon_driver.plan_round deals real Pedersen sharings
and signs real BeaconCommit messages), then assignCommittee draws the job's committee from the
round's output. To keep the test fast, the four transactions of a round (postJob, commitRound,
reveal, assignCommittee) are signed locally with fixed gas limits and sent without a gas
estimate or a receipt wait (anvil automines each one); success is checked afterwards through
the events: one RoundFinalized and one CommitteeAssigned per round, with the values below.

Exactness checks (no statistics): every output equals keccak256(abi.encode(chainid, market,
roundId, sum of the 5 secrets mod r)) computed in Python, and every committee equals the
partial Fisher-Yates draw recomputed in Python.

Statistical checks, each against a fixed bound, for the 200 outputs (uniform 256-bit values if
keccak256 behaves as a random function) and the 200 committees:

1. Top 4 bits of each output: Pearson chi-square over 16 bins (expected 12.5 each, 15 degrees
   of freedom) must stay below 51.0: P(chi-square(15) > 51.0) = 8.3e-6 (computed by numerical
   integration of the density; the chi-square approximation is good with 12.5 per bin).
2. Total number of one bits over all 200 x 256 = 51,200 output bits: Binomial(51200, 1/2),
   mean 25,600, sigma = sqrt(51200) / 2 = 113.1; must be within 5 sigma (|ones - 25600| <=
   565): false alarm probability ~5.7e-7 (normal tail, two-sided).
3. Each node's selection count over the 200 committees of 3 out of 8: Binomial(200, 3/8),
   mean 75, sigma = sqrt(200 * 3/8 * 5/8) = 6.85; within 5 sigma (|count - 75| <= 34.2):
   ~5.7e-7 per node, < 5e-6 for the 8 nodes (union bound).

Overall false alarm probability: <= 8.3e-6 + 5.7e-7 + 4.6e-6 ~ 1.4e-5 per run (union bound).
The contributions are drawn with ``secrets`` exactly as the nodes draw them, so every run tests
a fresh sample; a failure at these levels means a real bias, not bad luck.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from offchain.chain.beacon import BeaconClient
from offchain.chain.market import MarketClient
from tests.helpers.beacon_driver import expected_output, plan_round
from tests.helpers.env import MIN_PAYMENT_WEI, MIN_STAKE_WEI, Env

SEED_TAG = keccak(b"MPCMarket.committee")  # JobMarket.COMMITTEE_SEED_TAG

N_ROUNDS = 200
N_NODES = 8
N_PARTICIPANTS = 5  # 2T + 1 with T = 2
COMMITTEE = 3
CHI2_15_BOUND = 51.0  # P(chi-square(15) > 51.0) = 8.3e-6
SIGMAS = 5.0
GAS = {"postJob": 400_000, "commitRound": 400_000, "reveal": 500_000, "assignCommittee": 500_000}


class FastSender:
    """Locally signed EIP-1559 transactions with fixed gas and locally counted nonces, sent
    without an estimate or a receipt wait (anvil automines each on arrival)."""

    def __init__(self, market: MarketClient) -> None:
        self.w3 = market.w3
        self.to = market.address
        self.chain_id = market.chain_id
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        self.fees = {"maxFeePerGas": 4 * base + 10**9, "maxPriorityFeePerGas": 10**9}
        self.nonces: dict[str, int] = {}
        self.hashes: list[tuple[str, bytes]] = []

    def send(self, account: LocalAccount, fn: Any, name: str, value: int = 0) -> None:
        addr = account.address
        if addr not in self.nonces:
            self.nonces[addr] = self.w3.eth.get_transaction_count(addr, "pending")
        tx = {
            "to": self.to,
            "data": fn._encode_transaction_data(),
            "value": value,
            "gas": GAS[name],
            "nonce": self.nonces[addr],
            "chainId": self.chain_id,
            "type": 2,
            **self.fees,
        }
        self.nonces[addr] += 1
        signed = account.sign_transaction(tx)
        self.hashes.append((name, self.w3.eth.send_raw_transaction(signed.raw_transaction)))

    def failed(self) -> list[tuple[int, str, int]]:
        """(index, name, gas used) of every transaction that reverted."""
        out = []
        for i, (name, h) in enumerate(self.hashes):
            receipt = self.w3.eth.wait_for_transaction_receipt(h)  # type: ignore[arg-type]
            if receipt["status"] != 1:
                out.append((i, name, int(receipt["gasUsed"])))
        return out


def draw(candidates: list[str], n: int, seed: bytes) -> list[str]:
    """The committee rule (partial Fisher-Yates, then sorted), recomputed in Python."""
    pool = list(candidates)
    for i in range(n):
        word = keccak(abi_encode(["bytes32", "uint256"], [seed, i]))
        j = i + int.from_bytes(word, "big") % (len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return sorted(pool[:n], key=lambda a: int(a, 16))


def test_200_rounds_uniform_outputs_and_selection(env: Env) -> None:
    t0 = time.monotonic()
    market = env.fresh_market()
    beacon = BeaconClient(market)
    nodes = env.nodes[:N_NODES]
    for i, node in enumerate(nodes):
        market.register(node, bytes([i + 1]) * 32, f"http://n{i}", MIN_STAKE_WEI)
    participants = nodes[:N_PARTICIPANTS]
    domain = market.domain()
    fns = market.contract.functions
    sender = FastSender(market)
    submitter = env.buyer  # one sender: its nonces fix the order of all 800 transactions
    first_block = env.w3.eth.block_number + 1
    totals: dict[int, int] = {}

    for k in range(1, N_ROUNDS + 1):  # round k seeds job k (fresh deployment)
        post = fns.postJob(keccak(text="d"), "q", COMMITTEE, 1, 1, 600)
        sender.send(env.buyer, post, "postJob", value=MIN_PAYMENT_WEI)
        run = plan_round(beacon, k, participants, threshold=2, domain=domain)
        sigs = [s.to_tuple() for s in run.sigs]
        commit = fns.commitRound(k, run.participants, run.commitments, sigs)
        sender.send(submitter, commit, "commitRound")
        openings = [run.opening(i).to_tuple() for i in range(N_PARTICIPANTS)]
        sender.send(submitter, fns.reveal(k, run.participants, run.commitments, openings), "reveal")
        sender.send(submitter, fns.assignCommittee(k), "assignCommittee")
        totals[k] = run.total
    t_sent = time.monotonic()
    assert sender.failed() == []

    # Every transaction went through: one finalized round and one committee per job, exactly
    # the values recomputed in Python.
    finalized = beacon.events("RoundFinalized", first_block)
    assigned = beacon.events("CommitteeAssigned", first_block)
    assert [e["round_id"] for e in finalized] == list(range(1, N_ROUNDS + 1))
    assert [(e["job_id"], e["round_id"]) for e in assigned] == [
        (k, k) for k in range(1, N_ROUNDS + 1)
    ]
    outputs = [e["output"] for e in finalized]
    for k, out in enumerate(outputs, start=1):
        assert out == expected_output(market.chain_id, market.address, k, totals[k]), k
    candidates = sorted((n.address for n in nodes), key=lambda a: int(a, 16))
    for k, e in enumerate(assigned, start=1):
        seed = keccak(abi_encode(["bytes32", "bytes32", "uint256"], [SEED_TAG, outputs[k - 1], k]))
        assert e["committee"] == draw(candidates, COMMITTEE, seed), k

    # 1. chi-square of the top 4 bits.
    bins = Counter(out[0] >> 4 for out in outputs)
    expected = N_ROUNDS / 16
    chi2 = sum((bins.get(b, 0) - expected) ** 2 / expected for b in range(16))
    # 2. one bits.
    n_bits = 256 * N_ROUNDS
    ones = sum(int.from_bytes(out, "big").bit_count() for out in outputs)
    bits_sigma = math.sqrt(n_bits) / 2
    # 3. selection counts.
    counts = Counter(a for e in assigned for a in e["committee"])
    p = COMMITTEE / N_NODES
    sel_mean = N_ROUNDS * p
    sel_sigma = math.sqrt(N_ROUNDS * p * (1 - p))
    print(
        f"\n{N_ROUNDS} rounds in {t_sent - t0:.1f} s (+{time.monotonic() - t_sent:.1f} s checks); "
        f"chi2(top 4 bits) = {chi2:.2f} (< {CHI2_15_BOUND}); ones = {ones} "
        f"({(ones - n_bits / 2) / bits_sigma:+.2f} sigma); selections "
        f"{sorted(counts.values())} (mean {sel_mean:.0f}, sigma {sel_sigma:.2f})"
    )
    assert chi2 < CHI2_15_BOUND, (chi2, dict(bins))
    assert abs(ones - n_bits / 2) <= SIGMAS * bits_sigma, ones
    assert set(counts) == set(candidates)
    for node, c in counts.items():
        assert abs(c - sel_mean) <= SIGMAS * sel_sigma, (node, c)
