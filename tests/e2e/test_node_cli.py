"""A provider node run on its own from a config file (`mpc-market node --config FILE`), as an
operator would: key generation, registration on a real anvil, clean stop, and one clear error
line for each bad configuration."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from offchain.types import NodeStatus
from offchain.wire.keys import NodeKeys
from tests.helpers.env import MIN_STAKE_WEI, Env

EXE = str(Path(sys.executable).parent / "mpc-market")


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


def write_config(tmp_path: Path, **fields: object) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(fields))
    return path


def test_keygen(tmp_path: Path) -> None:
    out = run_cli("keygen", "--out", str(tmp_path / "keys.json"))
    assert out.returncode == 0
    keys = NodeKeys.load(tmp_path / "keys.json")
    assert out.stdout.strip() == keys.address
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    again = run_cli("keygen", "--out", str(tmp_path / "keys.json"))
    assert again.returncode != 0 and again.stderr.startswith("error:")


def test_standalone_node_registers_and_stops(env: Env, tmp_path: Path) -> None:
    account = env.unregistered[0]  # a funded dev account that is not registered yet
    NodeKeys(eth=account, x25519=X25519PrivateKey.generate()).save(tmp_path / "keys.json")
    rpc_url = env.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    config = write_config(tmp_path, rpc_url=rpc_url, market=env.market.address,
                          keys_file="keys.json", register_stake_wei=MIN_STAKE_WEI)
    proc = subprocess.Popen([EXE, "node", "--config", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["address"] == account.address
        node = env.market.get_node(account.address)
        assert node.status is NodeStatus.ACTIVE and node.endpoint == ready["endpoint"]
        assert node.stake_wei == MIN_STAKE_WEI
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0  # SIGTERM is a clean stop
    # stopping is not leaving
    assert env.market.get_node(account.address).status is NodeStatus.ACTIVE


@pytest.mark.parametrize("case,message", [
    ("missing_config", "cannot read"),
    ("bad_json", "config.json"),
    ("unknown_field", "extra_field"),
    ("missing_keys", "keys_file"),
    ("unreachable_rpc", "is unreachable"),
    ("no_contract", "no contract at this address"),
    ("not_registered", "is not registered and the config sets no register_stake_wei"),
])
def test_node_config_errors(env: Env, tmp_path: Path, case: str, message: str) -> None:
    rpc_url = env.w3.provider.endpoint_uri  # type: ignore[attr-defined]
    NodeKeys.generate().save(tmp_path / "keys.json")
    good = {"rpc_url": rpc_url, "market": env.market.address, "keys_file": "keys.json"}
    if case == "missing_config":
        config = tmp_path / "nope.json"
    elif case == "bad_json":
        config = tmp_path / "config.json"
        config.write_text("{not json")
    elif case == "unknown_field":
        config = write_config(tmp_path, **good, extra_field=1)
    elif case == "missing_keys":
        config = write_config(tmp_path, **{**good, "keys_file": "absent.json"})
    elif case == "unreachable_rpc":
        config = write_config(tmp_path, **{**good, "rpc_url": "http://127.0.0.1:9"})
    elif case == "no_contract":
        config = write_config(tmp_path, **{**good, "market": env.buyer.address})
    else:
        config = write_config(tmp_path, **good)
    block = env.w3.eth.block_number
    out = run_cli("node", "--config", str(config))
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and message in last, out.stderr
    assert "Traceback" not in out.stderr
    assert env.w3.eth.block_number == block  # nothing sent to the chain
