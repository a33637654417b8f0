"""A node's long-term keys: an Ethereum (secp256k1) key and an X25519 key.

The Ethereum key is the node's identity: it signs transactions, EIP-712 commitments and peer
envelopes (EIP-191). The X25519 key (RFC 7748) receives encrypted peer messages; its public half
is registered on chain (``NodeRegistry.register(encKey, ...)``), which is the only PKI.

Key file: JSON ``{"eth_private_key": "0x<64 hex>", "x25519_private_key": "0x<64 hex>"}``,
written with file mode 0600. It holds both secrets in plain text: protect the file system.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from secrets import token_bytes

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from eth_account import Account
from eth_account.signers.local import LocalAccount

from offchain.encoding.eip712 import SECP256K1_N  # Ethereum private keys lie in [1, N)
from offchain.errors import MarketError

_HEX32 = re.compile(r"0x[0-9a-fA-F]{64}")
_FIELDS = ("eth_private_key", "x25519_private_key")


class KeyFileError(MarketError, ValueError):
    """A key file is unreadable, not the expected JSON, or holds an invalid key."""


def _eth_from_bytes(raw: bytes) -> LocalAccount:
    if not 0 < int.from_bytes(raw, "big") < SECP256K1_N:
        raise KeyFileError("Ethereum private key is not in [1, secp256k1 order)")
    account: LocalAccount = Account.from_key(raw)
    return account


@dataclass(frozen=True, repr=False)
class NodeKeys:
    """The two private keys of a node. ``repr`` shows only the public address."""

    eth: LocalAccount
    x25519: X25519PrivateKey

    @classmethod
    def generate(cls) -> NodeKeys:
        """Fresh keys from the OS CSPRNG (``secrets.token_bytes``).

        The Ethereum key is drawn uniformly from ``[1, N)`` by rejection sampling; the X25519
        key is 32 random bytes (clamped by X25519 itself, RFC 7748 §5).
        """
        while True:
            raw = token_bytes(32)
            if 0 < int.from_bytes(raw, "big") < SECP256K1_N:
                break
        return cls(_eth_from_bytes(raw), X25519PrivateKey.from_private_bytes(token_bytes(32)))

    @property
    def address(self) -> str:
        """The node's checksummed Ethereum address."""
        return str(self.eth.address)

    @property
    def enc_public_key(self) -> bytes:
        """The raw 32-byte X25519 public key (the ``encKey`` registered on chain)."""
        return self.x25519.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def __repr__(self) -> str:
        return f"NodeKeys(address={self.address})"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the key file (JSON, see module docstring) with mode 0600.

        Overwrites an existing file and resets its mode to 0600; refuses to follow a symlink
        at ``path``. Raises ``OSError`` on I/O failure.
        """
        x_raw = self.x25519.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        doc = {
            "eth_private_key": "0x" + bytes(self.eth.key).hex(),
            "x25519_private_key": "0x" + x_raw.hex(),
        }
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fd = -1  # now owned by fh
                json.dump(doc, fh, indent=2)
                fh.write("\n")
        finally:
            if fd != -1:
                os.close(fd)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> NodeKeys:
        """Read and validate a key file written by :meth:`save`.

        Requires a JSON object with exactly the two fields, each ``"0x"`` + 64 hex digits, and
        an Ethereum key in ``[1, N)``. Raises :class:`KeyFileError` otherwise or if the file
        cannot be read. Does not check the file mode.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc}") from exc
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise KeyFileError(f"key file {path} is not valid JSON") from exc
        if not isinstance(doc, dict) or set(doc) != set(_FIELDS):
            raise KeyFileError(f"key file {path} must be an object with fields {_FIELDS}")
        raw: dict[str, bytes] = {}
        for name in _FIELDS:
            value = doc[name]
            if not isinstance(value, str) or not _HEX32.fullmatch(value):
                raise KeyFileError(f"{name} in {path} must be '0x' followed by 64 hex digits")
            raw[name] = bytes.fromhex(value[2:])
        return cls(
            _eth_from_bytes(raw["eth_private_key"]),
            X25519PrivateKey.from_private_bytes(raw["x25519_private_key"]),
        )
