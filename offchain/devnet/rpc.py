"""Reaching a devnet as a client: wait until its JSON-RPC answers (:func:`wait_for_rpc`), and
the funded default accounts to sign with (:func:`dev_accounts`).

:func:`dev_accounts` derives anvil's funded default accounts from the well-known public test
mnemonic "test test ... junk" (BIP-44 path ``m/44'/60'/0'/0/i``). Those keys are public: use them
on a devnet only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from functools import lru_cache

from eth_account import Account
from eth_account.signers.local import LocalAccount

__all__ = ["ANVIL_MNEMONIC", "dev_accounts", "wait_for_rpc"]

#: The public mnemonic of anvil's (and hardhat's) default accounts.
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"


def wait_for_rpc(url: str, timeout_s: float) -> int:
    """Poll ``eth_chainId`` at ``url`` until it answers; returns the chain id.

    Raises:
        TimeoutError: no valid answer within ``timeout_s`` seconds (the last error is chained).
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        req = urllib.request.Request(  # noqa: S310 - caller-supplied devnet URL
            url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=max(0.1, timeout_s)) as resp:  # noqa: S310
                answer = json.loads(resp.read())
            return int(answer["result"], 16)
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no JSON-RPC answer from {url} within {timeout_s} s") from last
        time.sleep(0.02)


@lru_cache(maxsize=1)
def _derived(n: int) -> tuple[LocalAccount, ...]:
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)
    )


def dev_accounts(n: int = 10) -> list[LocalAccount]:
    """The first ``n`` anvil default accounts (funded with 10,000 ETH on a fresh anvil).

    Derived with eth-account from the public mnemonic :data:`ANVIL_MNEMONIC` at
    ``m/44'/60'/0'/0/i``; account 0 is 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266.
    Raises ValueError if n < 0.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    # Derive in blocks of 10 so repeated calls with small n hit the cache.
    size = max(10, -(-n // 10) * 10)
    return list(_derived(size)[:n])
