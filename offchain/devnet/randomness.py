"""``mpc-market randomness``: one beacon round on a local network, reported from the chain.

Starts the same network as the demo (anvil with one-second blocks plus automine, the deployed
market, P node processes), buys one random value with ``requestRandomness``, waits until the
nodes finalize the round, and reads everything it reports from the chain: the output, the
participants (RoundCommitted), who revealed and whose contribution was recovered
(ContributionOpened), who was slashed (NodeSlashed), the delivered value, and every transaction
with its gas. It also recomputes the output from the opened contributions
(``offchain.protocol.beacon.round_output``) and checks each opening against its commitment.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address

from offchain.chain.beacon import BeaconClient, RoundStatus
from offchain.chain.events import EventDecoder
from offchain.devnet.network import DemoError, DemoNetwork, DemoOptions, validate
from offchain.devnet.provision import receipt_tx
from offchain.protocol.beacon import round_output
from offchain.protocol.committee import eligible_from_events


@dataclass
class RandomnessResult:
    """What one round produced. Gas in gas units, latency in seconds, addresses checksummed."""

    round_id: int
    request_id: int
    output: str
    value: str
    output_recomputed: bool
    threshold: int
    participants: list[str]
    excluded: list[str]
    revealed: list[str]
    recovered: list[str]
    slashed: list[str]
    txs: list[dict[str, Any]] = field(default_factory=list)
    gas_round: int = 0
    latency_s: float = 0.0
    chain_id: int = 0
    market: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_round(net: DemoNetwork, *, timeout_s: float = 120.0) -> RandomnessResult:
    """Request one value on ``net`` and wait for its round. Raises DemoError on timeout or a
    failed round (the message names the round and the node logs' directory)."""
    beacon = BeaconClient(net.market)
    start = net.w3.eth.block_number
    t0 = time.perf_counter()
    request_id, round_id, req_tx = beacon.request_randomness(net.buyer)
    deadline = time.monotonic() + timeout_s
    while True:
        resolved = beacon.resolve_round(round_id)
        info = beacon.get_round(resolved)
        if info.status is RoundStatus.FINALIZED:
            break
        if time.monotonic() > deadline:
            raise DemoError(f"round {round_id} did not finish within {timeout_s:.0f} s; node "
                            f"logs are kept in {net.run_dir}")
        time.sleep(0.005)
    latency_s = time.perf_counter() - t0
    if resolved != round_id:
        raise DemoError(f"round {round_id} failed visibly; its request moved to round "
                        f"{resolved}")
    end = net.w3.eth.block_number
    committed = next(ev for ev in beacon.events("RoundCommitted", start, end)
                     if ev["round_id"] == round_id)
    participants = [str(to_checksum_address(a)) for a in committed["participants"]]
    opened = [ev for ev in beacon.events("ContributionOpened", start, end)
              if ev["round_id"] == round_id]
    revealed = [str(to_checksum_address(ev["participant"])) for ev in opened if not ev["recovered"]]
    recovered = [str(to_checksum_address(ev["participant"])) for ev in opened if ev["recovered"]]
    final = next(ev for ev in beacon.events("RoundFinalized", start, end)
                 if ev["round_id"] == round_id)
    slashed = [str(to_checksum_address(ev["node"]))
               for ev in beacon.events("NodeSlashed", start, end)]
    # Nodes Active when the round opened that are not in Q (left out: their shares failed).
    active = eligible_from_events(EventDecoder(net.market.contract).fetch(0, end),
                                  info.open_block)
    excluded = [a for a in active if a not in participants]
    recomputed = round_output(net.chain_id, net.market.address, round_id,
                              [int(ev["secret"]) for ev in opened])
    tx_names: dict[str, str] = {committed["tx_hash"]: "commitRound"}
    for ev in opened:
        tx_names.setdefault(ev["tx_hash"], "recover" if ev["recovered"] else "reveal")
    round_txs = [receipt_tx(net.w3, name, h) for h, name in tx_names.items()]
    value = beacon.randomness_of(request_id)
    return RandomnessResult(
        round_id=round_id, request_id=request_id, output="0x" + bytes(final["output"]).hex(),
        value="0x" + value.hex(), output_recomputed=recomputed == bytes(final["output"]),
        threshold=info.threshold, participants=participants, excluded=excluded,
        revealed=revealed,
        recovered=recovered, slashed=slashed,
        txs=[receipt_tx(net.w3, "requestRandomness", req_tx.hash), *round_txs],
        gas_round=sum(t["gas_used"] for t in round_txs), latency_s=round(latency_s, 4),
        chain_id=net.chain_id, market=net.market.address)


def run_randomness(opts: DemoOptions, *, progress: Any = None,
                   timeout_s: float = 120.0) -> RandomnessResult:
    """Start a local network (``opts``: providers = participants, beacon_withhold) and run one
    round. Raises DemoError on bad options or failure."""
    header, rows = validate(opts)
    if opts.beacon_withhold < 0 or opts.beacon_withhold >= opts.providers:
        raise DemoError(f"--withhold must be between 0 and {opts.providers - 1}")
    if opts.beacon_bad_share < 0 or opts.beacon_withhold + opts.beacon_bad_share >= opts.providers:
        raise DemoError("--withhold plus --bad-share must leave at least one honest node")
    with DemoNetwork(opts, header, rows, progress) as net:
        if progress:
            progress("requesting a random value; the nodes run a beacon round")
        return run_round(net, timeout_s=timeout_s)
