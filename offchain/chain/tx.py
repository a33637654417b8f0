"""Sending locally signed EIP-1559 transactions and decoding Solidity custom errors (web3.py 8).

:class:`TxSender` signs with a :class:`~eth_account.signers.local.LocalAccount`, estimates gas (a
revert there surfaces before anything is sent), sends and waits for the receipt; a mined
transaction that reverted is replayed with ``eth_call`` to learn why. Reverts become
:class:`ContractRevert` carrying the custom error's name and decoded arguments, e.g.
``RegistryNotActive(0xAbc...)``, decoded against the contract ABI's ``error`` entries (web3 8 hands
them over as raw selector + data in ``ContractCustomError``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from offchain.errors import MarketError

DEFAULT_TIP_WEI = 10**9  # 1 gwei priority fee
_GAS_MARGIN_NUM, _GAS_MARGIN_DEN, _GAS_MARGIN_ADD = 6, 5, 10_000  # limit = est * 1.2 + 10k
_ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")  # Error(string)
_PANIC_SELECTOR = bytes.fromhex("4e487b71")  # Panic(uint256)


# ----------------------------------------------------------------------------- errors


class TransactionFailed(MarketError, RuntimeError):
    """A mined transaction reverted and replaying it did not reveal a reason."""

    def __init__(self, name: str, tx_hash: str) -> None:
        super().__init__(f"transaction {name} {tx_hash} reverted (no reason available)")
        self.name = name
        self.tx_hash = tx_hash


def _fmt_arg(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt_arg(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return repr(value)


class ContractRevert(MarketError):
    """The contract reverted with a custom error (or ``Error(string)`` / ``Panic(uint256)``).

    Attributes:
        error_name: Solidity error name, e.g. ``"RegistryStakeTooLow"`` (``"Error"``/``"Panic"``
            for the built-in ones, ``"Unknown"`` for an undecodable payload).
        error_args: decoded arguments in declaration order (addresses checksummed, bytesN as
            ``bytes``, integers as ``int``).
        data: the raw revert data (selector + ABI-encoded arguments).

    ``str(exc)`` reads like the Solidity call, e.g. ``RegistryStakeTooLow(1, 1000)``.
    """

    def __init__(self, error_name: str, args: Sequence[Any] = (), *, data: bytes = b"") -> None:
        self.error_name = error_name
        self.error_args: tuple[Any, ...] = tuple(args)
        self.data = data
        super().__init__(self.message)

    @property
    def message(self) -> str:
        """``Name(arg1, arg2)``."""
        return f"{self.error_name}({', '.join(_fmt_arg(a) for a in self.error_args)})"

    def __str__(self) -> str:
        return self.message


def _abi_type(param: dict[str, Any]) -> str:
    typ = str(param["type"])
    if typ.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){typ[5:]}"
    return typ


def _normalize(typ: str, value: Any) -> Any:
    if typ == "address":
        return to_checksum_address(value)
    if typ == "address[]":
        return [to_checksum_address(v) for v in value]
    return value


class ErrorDecoder:
    """Maps 4-byte selectors of the ABI's error entries to (name, argument types)."""

    def __init__(self, abi: Sequence[dict[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str]]] = {
            _ERROR_STRING_SELECTOR: ("Error", ["string"]),
            _PANIC_SELECTOR: ("Panic", ["uint256"]),
        }
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [_abi_type(p) for p in entry.get("inputs", [])]
            selector = keccak(text=f"{entry['name']}({','.join(types)})")[:4]
            self._errors[selector] = (str(entry["name"]), types)

    def decode(self, data: bytes) -> ContractRevert:
        known = self._errors.get(bytes(data[:4]))
        if known is None:
            return ContractRevert("Unknown", (bytes(data),), data=bytes(data))
        name, types = known
        try:
            values = abi_decode(types, bytes(data[4:]))
        except Exception:  # malformed payload: keep the raw bytes
            return ContractRevert(name, (bytes(data[4:]),), data=bytes(data))
        return ContractRevert(
            name, [_normalize(t, v) for t, v in zip(types, values, strict=True)], data=bytes(data)
        )

    def from_exception(self, exc: ContractLogicError) -> ContractRevert:
        raw = exc.data
        if isinstance(raw, dict):  # some nodes nest the payload
            raw = raw.get("data")
        if isinstance(raw, str) and raw.startswith("Reverted "):
            raw = raw.split(" ", 1)[1]
        if isinstance(raw, str) and raw.startswith("0x") and len(raw) >= 10:
            try:
                return self.decode(bytes.fromhex(raw[2:]))
            except ValueError:
                pass
        return ContractRevert("Error", (exc.message or "execution reverted",))


def decode_revert(abi: Sequence[dict[str, Any]], data: bytes) -> ContractRevert:
    """Decode raw revert ``data`` (4-byte selector + ABI arguments) against ``abi``'s errors."""
    return ErrorDecoder(abi).decode(data)



@dataclass(frozen=True)
class TxResult:
    """A mined transaction.

    Attributes:
        name: contract function (``"postJob"``, ...; ``"deploy"`` for the deployment).
        hash: transaction hash, ``0x``-hex.
        gas_used: gas units consumed.
        block_number: block that includes it.
        receipt: the full web3 receipt.
    """

    name: str
    hash: str
    gas_used: int
    block_number: int
    receipt: TxReceipt


# ----------------------------------------------------------------------------- transactions


def _hex(h: bytes) -> str:
    return "0x" + bytes(h).hex()


class TxSender:
    """Builds, signs and sends EIP-1559 transactions with explicit nonce/gas/fees."""

    def __init__(self, w3: Web3, decoder: ErrorDecoder, tip_wei: int) -> None:
        self.w3 = w3
        self.decoder = decoder
        self.tip_wei = tip_wei
        self.chain_id = w3.eth.chain_id

    @contextlib.contextmanager
    def reverts(self) -> Iterator[None]:
        """Translate web3's contract-logic errors into ContractRevert."""
        try:
            yield
        except ContractLogicError as exc:
            raise self.decoder.from_exception(exc) from None

    def fees(self) -> dict[str, int]:
        base = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        return {"maxFeePerGas": 2 * base + self.tip_wei, "maxPriorityFeePerGas": self.tip_wei}

    def send(self, name: str, account: LocalAccount, fn: Any, value: int = 0,
             extra_gas: int = 0, gas: int | None = None) -> TxResult:
        """``fn``: a bound ContractFunction or ContractConstructor. ``extra_gas`` is added to the
        estimate's margin when the gas used can grow with state other senders change meanwhile
        (e.g. the reveal that completes a beacon round also finalizes it). ``gas``: send with
        exactly this gas limit instead of an estimate; the call is first run by eth_call with
        that gas, so a limit that is too small raises ContractRevert before anything is sent."""
        sender = account.address
        with self.reverts():
            # against the pending block: the one the transaction will be mined in (phase
            # deadlines are block numbers, so "latest" would be one block off)
            if gas is None:
                estimate = int(fn.estimate_gas({"from": sender, "value": value},
                                               block_identifier="pending"))
                gas = estimate * _GAS_MARGIN_NUM // _GAS_MARGIN_DEN + _GAS_MARGIN_ADD + extra_gas
            else:
                fn.call({"from": sender, "value": value, "gas": gas},
                        block_identifier="pending")
        params: dict[str, Any] = {
            "from": sender,
            "value": value,
            "nonce": self.w3.eth.get_transaction_count(sender, "pending"),
            "gas": gas,
            "chainId": self.chain_id,
            "type": 2,
            **self.fees(),
        }
        tx = fn.build_transaction(params)
        signed = account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.05)
        hash_hex = _hex(tx_hash)
        if receipt["status"] != 1:
            self._raise_replayed(name, hash_hex, fn, sender, value, receipt)
        return TxResult(
            name=name,
            hash=hash_hex,
            gas_used=int(receipt["gasUsed"]),
            block_number=int(receipt["blockNumber"]),
            receipt=receipt,
        )

    def _raise_replayed(
        self, name: str, tx_hash: str, fn: Any, sender: str, value: int, receipt: TxReceipt
    ) -> None:
        call = getattr(fn, "call", None)
        if call is not None:
            block = int(receipt["blockNumber"]) - 1
            with self.reverts():
                call({"from": sender, "value": value}, block_identifier=block)
        raise TransactionFailed(name, tx_hash)
