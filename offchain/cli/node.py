"""``mpc-market node`` and ``mpc-market keygen``: run a provider node, create its key file.

    mpc-market node --config FILE [--exit-with-parent] [-v]
    mpc-market keygen --out FILE [--force]

Exit status 2 for a bad config or key file, an unreachable chain or no contract at the market
address (checked before starting), 1 when the node fails or stops on an error.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from offchain.cli.common import fail, guard
from offchain.node.config import ConfigError, NodeConfig, load_config

__all__ = ["keygen_command", "node_command"]


@guard
def keygen_command(
    out: Annotated[Path, typer.Option(help="where to write the node's key file (mode 0600)")],
    force: Annotated[bool, typer.Option(help="overwrite an existing file")] = False,
) -> None:
    """Create a node key file: an Ethereum key (identity, signatures) and an X25519 key
    (peer-message encryption), both from the OS CSPRNG. Prints the node's address."""
    from offchain.wire.keys import NodeKeys

    if out.exists() and not force:
        fail(f"{out} exists; use --force to overwrite it")
    keys = NodeKeys.generate()
    keys.save(out)
    print(keys.address)


def _check_node_config(cfg: NodeConfig) -> None:
    """Fail with one clear line before starting: keys unreadable, chain unreachable, or no
    contract at the market address."""
    from web3 import Web3

    from offchain.devnet.rpc import wait_for_rpc
    from offchain.wire.keys import KeyFileError, NodeKeys

    try:
        NodeKeys.load(cfg.keys_file)
    except KeyFileError as exc:
        fail(f"keys_file: {exc} (create one with `mpc-market keygen --out FILE`)")
    try:
        wait_for_rpc(cfg.rpc_url, timeout_s=3.0)
    except Exception as exc:
        fail(f"rpc_url {cfg.rpc_url} is unreachable: {exc}")
    w3 = Web3(Web3.HTTPProvider(cfg.rpc_url))
    if not Web3.is_address(cfg.market) or not w3.eth.get_code(
            Web3.to_checksum_address(cfg.market)):
        fail(f"market {cfg.market}: no contract at this address on {cfg.rpc_url}")


@guard
def node_command(
    config: Annotated[Path, typer.Option(help="node config file (JSON)")],
    exit_with_parent: Annotated[bool, typer.Option(help="exit when stdin closes")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a provider node from a config file until SIGTERM/SIGINT."""
    from offchain.node.main import NodeStartError, run_node

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("web3").setLevel(logging.WARNING)
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        fail(str(exc), 2)
    _check_node_config(cfg)
    try:
        asyncio.run(run_node(cfg, exit_with_parent=exit_with_parent))
    except KeyboardInterrupt:
        pass
    except NodeStartError as exc:
        fail(str(exc), 1)
    except Exception as exc:
        logging.getLogger("mpc.node").exception("node stopped")
        fail(f"node stopped: {exc}", 1)
