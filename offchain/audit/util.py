"""Small formatting and address helpers shared by the audit's modules."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from eth_utils.address import to_checksum_address


def _cs(address: Any) -> str:
    """Checksummed address as a plain str."""
    return str(to_checksum_address(address))


def _h(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _short(b: bytes | str) -> str:
    text = b if isinstance(b, str) else _h(b)
    return text[:10] + "…"


def _sorted_strictly(addresses: Sequence[str]) -> bool:
    ints = [int(a, 16) for a in addresses]
    return all(a < b for a, b in itertools.pairwise(ints))
