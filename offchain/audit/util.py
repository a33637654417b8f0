"""Small formatting and address helpers shared by the audit's modules."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from eth_utils.address import to_checksum_address


def checksum(address: Any) -> str:
    """``address`` (a hex str or 20 bytes, as the ABI decoder gives it) as an EIP-55 str.
    Raises ValueError if it is not an address. The audit normalises what the chain returned;
    user input goes through :func:`offchain.encoding.eip712.checksum_address`."""
    return str(to_checksum_address(address))


def hex_bytes(b: bytes) -> str:
    """``b`` as lower-case ``0x`` hex."""
    return "0x" + bytes(b).hex()


def short(b: bytes | str) -> str:
    """The first 8 hex digits of a hash (bytes or ``0x`` str) and an ellipsis, for details."""
    text = b if isinstance(b, str) else hex_bytes(b)
    return text[:10] + "…"


def strictly_ascending(addresses: Sequence[str]) -> bool:
    """Whether the addresses are strictly ascending as 160-bit integers (the contract's order
    of committees, providers and signers; no duplicates)."""
    ints = [int(a, 16) for a in addresses]
    return all(a < b for a, b in itertools.pairwise(ints))
