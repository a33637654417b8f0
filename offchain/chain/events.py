"""All of the market's events in one ``eth_getLogs`` call, decoded in chain order.

Nodes follow the chain by polling: one ``eth_blockNumber`` per interval and, only when new blocks
exist, one ``eth_getLogs`` over the market address for the new range. Every log is decoded by its
first topic (the event signature hash) against the contract ABI; logs the ABI does not know are
skipped, and so is a log that does not decode (anyone can put non-UTF-8 bytes in a string
argument), with a warning. Order is (block, log index), i.e. the order in which the state changes
happened.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from eth_typing import ABIEvent
from eth_utils.abi import event_abi_to_log_topic
from hexbytes import HexBytes
from web3.contract import Contract

_log = logging.getLogger("mpc.events")


def plain_value(value: Any) -> Any:
    """Decoded event value with HexBytes turned into bytes (recursively in lists)."""
    if isinstance(value, HexBytes | bytes):
        return bytes(value)
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value


def snake_case(name: str) -> str:
    """``jobId`` -> ``job_id``, ``rewardPerSignerWei`` -> ``reward_per_signer_wei``."""
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


class EventDecoder:
    """Decodes the market's logs into dicts with ``event`` (the event name), the arguments in
    snake_case (``jobId`` -> ``job_id``, ``encKey`` -> ``enc_key``), ``block_number``,
    ``tx_hash`` (0x-hex) and ``log_index``."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        events: list[dict[str, Any]] = [dict(e) for e in contract.abi
                                          if e.get("type") == "event"]
        self.by_topic: dict[bytes, str] = {
            event_abi_to_log_topic(cast(ABIEvent, e)): str(e["name"]) for e in events
        }

    def fetch(self, from_block: int, to_block: int | str,
              name: str | None = None) -> list[dict[str, Any]]:
        """Decoded logs of blocks [from_block, to_block] (inclusive; to_block may be "latest"),
        in chain order; only events called ``name`` if given."""
        params: dict[str, Any] = {"address": self.contract.address, "fromBlock": from_block,
                                  "toBlock": to_block}
        if name is not None:
            topic = next(t for t, n in self.by_topic.items() if n == name)
            params["topics"] = ["0x" + topic.hex()]
        logs = self.contract.w3.eth.get_logs(params)  # type: ignore[arg-type]
        out = []
        for log in sorted(logs, key=lambda lg: (lg["blockNumber"], lg["logIndex"])):
            if not log["topics"]:
                continue
            name = self.by_topic.get(bytes(log["topics"][0]))
            if name is None:
                continue
            try:
                event = self.contract.events[name]().process_log(log)
            except Exception as exc:  # e.g. a string argument that is not UTF-8
                # Anyone can emit arbitrary bytes into a log (a query, an endpoint); one bad log
                # must not stop a node from following every later event.
                log_ = "0x" + bytes(log["transactionHash"]).hex()
                _log.warning("skipping undecodable %s log in tx %s: %s", name, log_, exc)
                continue
            entry: dict[str, Any] = {
                "event": name,
                "block_number": int(log["blockNumber"]),
                "tx_hash": "0x" + bytes(log["transactionHash"]).hex(),
                "log_index": int(log["logIndex"]),
            }
            for key, value in event["args"].items():
                entry[snake_case(key)] = plain_value(value)
            out.append(entry)
        return out
