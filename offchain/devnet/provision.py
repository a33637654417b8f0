"""Provisioning a local devnet with a market and provider nodes, shared by the demo
(:mod:`offchain.devnet.network`) and the persistent network (:mod:`offchain.devnet.localnet`).

:func:`deploy_devnet_market` deploys MPCMarket with the devnet's parameters; :func:`split_rows`
deals a data file's rows to P providers in disjoint slices; :func:`provision_node` writes a
node's directory (fresh X25519/Ethereum keys in ``keys.json``, its slice of the data as CSV or
SQLite, ``config.json``); :func:`fund` sends it ETH for its stake and gas; :func:`receipt_tx`
is a row of the demo's transaction table.

Leakage: a node directory holds that node's secret keys and its slice of the data, readable by
whoever can read the directory; nothing here prints them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3

from offchain.chain.market import MarketClient, deploy_market
from offchain.node.datasource import write_sqlite
from offchain.wire.keys import NodeKeys

__all__ = [
    "DATASET_NAME",
    "DEFAULT_COLLECT_TIMEOUT_S",
    "DEFAULT_DATA",
    "DEVNET_ARGS",
    "PAYMENT_WEI",
    "PHASE_BLOCKS",
    "STAKE_WEI",
    "deploy_devnet_market",
    "fund",
    "provision_node",
    "receipt_tx",
    "split_rows",
]

DATASET_NAME = "wdbc"
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "data" / "wdbc.csv"
STAKE_WEI = 10**18
PAYMENT_WEI = 3 * 10**16
DEVNET_ARGS = ("--block-time", "1", "--mixed-mining")
PHASE_BLOCKS = 10  # beacon phases on the devnet: 10 one-second blocks each
DEFAULT_COLLECT_TIMEOUT_S = 10.0  # how long members wait for every registered provider


def deploy_devnet_market(w3: Web3, deployer: LocalAccount, *,
                         abi: Sequence[dict[str, Any]] | None = None,
                         bytecode: str | None = None) -> MarketClient:
    """Deploy MPCMarket (or the given artifact, constructor as MPCMarket's) with the devnet's
    parameters: stake :data:`STAKE_WEI`, exit delay 7 days, minimum payment 10**15 wei, job
    timeout at most 1 day, beacon phases of :data:`PHASE_BLOCKS` blocks. Raises what
    :func:`offchain.chain.market.deploy_market` raises."""
    return deploy_market(w3, deployer, min_stake_wei=STAKE_WEI, exit_delay_s=7 * 86400,
                         min_payment_wei=10**15, max_timeout_s=86400, phase_blocks=PHASE_BLOCKS,
                         abi=abi, bytecode=bytecode)


def split_rows(rows: list[list[str]], p: int) -> list[list[list[str]]]:
    """P disjoint contiguous slices of (nearly) equal size: each provider's share of the data."""
    return [rows[i * len(rows) // p:(i + 1) * len(rows) // p] for i in range(p)]


def provision_node(run_dir: Path, index: int, header: list[str], rows: list[list[str]],
                   rpc_url: str, market: str, collect_timeout_s: float,
                   beacon_fault: str | None = None,
                   dataset_name: str = DATASET_NAME) -> tuple[Path, NodeKeys]:
    """Write ``run_dir/node-INDEX/`` (the directory must not exist yet): fresh keys in
    ``keys.json``, ``rows`` under ``header`` as ``records.csv`` (even ``index``) or the SQLite
    table ``records`` in ``records.db`` (odd), and ``config.json`` naming ``rpc_url``, the
    market address, the dataset ``dataset_name``, the stake :data:`STAKE_WEI`, the members'
    ``collect_timeout_s`` (seconds) and the fault to inject in the beacon (None, "withhold",
    "bad_share"). Returns the directory and the keys (secret). Raises OSError
    (FileExistsError if the directory exists)."""
    node_dir = run_dir / f"node-{index}"
    node_dir.mkdir(parents=True)
    keys = NodeKeys.generate()
    keys.save(node_dir / "keys.json")
    if index % 2 == 0:
        data_file = node_dir / "records.csv"
        with open(data_file, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
        dataset: dict[str, Any] = {"path": data_file.name}
    else:
        data_file = node_dir / "records.db"
        write_sqlite(data_file, header, rows)
        dataset = {"path": data_file.name, "table": "records"}
    config = {
        "rpc_url": rpc_url, "market": market, "keys_file": "keys.json",
        "host": "127.0.0.1", "port": 0, "datasets": {dataset_name: dataset},
        "register_stake_wei": STAKE_WEI, "state_dir": "state",
        "collect_timeout_s": collect_timeout_s, "beacon_fault": beacon_fault,
    }
    (node_dir / "config.json").write_text(json.dumps(config, indent=2))
    return node_dir, keys


def fund(w3: Web3, sender: LocalAccount, to: str, amount_wei: int) -> str:
    """Send ``amount_wei`` from ``sender`` to ``to`` (an EIP-1559 transfer, 21000 gas); returns
    the 0x-hex tx hash once mined. Raises web3's errors (e.g. TimeExhausted after 30 s)."""
    tx: dict[str, Any] = {"to": to, "value": amount_wei, "gas": 21000, "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
          "maxFeePerGas": 2 * w3.eth.gas_price + 10**9, "maxPriorityFeePerGas": 10**9}
    signed = sender.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    return "0x" + bytes(tx_hash).hex()


def receipt_tx(w3: Web3, name: str, tx_hash: str) -> dict[str, Any]:
    """``{"name", "hash", "gas_used"}`` of a mined transaction (a row of the demo's tx table)."""
    receipt = w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    return {"name": name, "hash": tx_hash, "gas_used": int(receipt["gasUsed"])}
