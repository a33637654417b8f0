"""Building the buyer's unsigned postJob transaction, and checking, broadcasting and following
a signed one. The API never holds a buyer's key: it prepares, the wallet signs, the API relays.

Blocking functions here run in a worker thread (``Chain.run``); they raise ProblemError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError
from web3.logs import DISCARD
from web3.types import TxReceipt

from api.models import UnsignedTx
from api.problems import ProblemError
from api.services.chain import Chain
from api.services.validation import CheckedJob
from offchain.chain.market import decode_post_job, encode_post_job
from offchain.chain.tx import DEFAULT_TIP_WEI, ContractRevert

#: gas limit = estimate + max(20 %, 100k): a job that joins an open beacon round costs less
#: than one that opens a round, and which one it is can change between estimate and inclusion.
GAS_HEADROOM = 100_000


def _q(value: int) -> str:
    return hex(value)


def _revert_problem(slug: str, rev: ContractRevert, what: str, *, field: str,
                    **extra: Any) -> ProblemError:
    return ProblemError(slug, f"{what}: {rev.message}", field=field, error=rev.error_name,
                        error_args=[str(a) if not isinstance(a, bytes) else "0x" + a.hex()
                                    for a in rev.error_args], **extra)


def _rpc_message(exc: Exception) -> str:
    msg = exc.args[0] if exc.args else str(exc)
    if isinstance(msg, dict):
        msg = msg.get("message", str(msg))
    return str(msg)


def _estimate(chain: Chain, call: dict[str, Any], what: str, field: str) -> int:
    try:
        return int(chain.w3.eth.estimate_gas(call, "pending"))  # type: ignore[arg-type]
    except ContractLogicError as exc:
        raise _revert_problem("transaction-would-revert", chain.errors.from_exception(exc),
                              what, field=field) from None
    except Web3RPCError as exc:
        msg = _rpc_message(exc)
        slug = "insufficient-funds" if "insufficient funds" in msg.lower() else \
            "transaction-rejected"
        raise ProblemError(slug, f"{what}: {msg}", field=field) from None


def _check_funds(chain: Chain, sender: str, value: int, gas: int, max_fee: int,
                 field: str | None) -> None:
    balance = int(chain.w3.eth.get_balance(sender))  # type: ignore[arg-type]
    need = value + gas * max_fee
    if balance < need:
        raise ProblemError("insufficient-funds", f"{sender} holds {balance} wei; the job needs "
                           f"{need} wei (payment {value} + gas {gas} x max fee {max_fee})",
                           field=field, balance_wei=str(balance), needed_wei=str(need))


def build_post_job(chain: Chain, p: CheckedJob) -> UnsignedTx:
    """The unsigned EIP-1559 postJob transaction for ``p`` (blocking)."""
    data = encode_post_job(p.dataset.dataset_id, p.query, p.committee_size, p.threshold,
                           p.min_providers, p.timeout_s)
    call = {"from": p.buyer, "to": chain.address, "value": p.payment_wei, "data": data}
    estimate = _estimate(chain, call, "postJob", "body.buyer")
    gas = estimate + max(estimate // 5, GAS_HEADROOM)
    base = int(chain.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    max_fee = 2 * base + DEFAULT_TIP_WEI
    _check_funds(chain, p.buyer, p.payment_wei, gas, max_fee, "body.buyer")
    nonce = int(chain.w3.eth.get_transaction_count(p.buyer, "pending"))  # type: ignore[arg-type]
    return UnsignedTx.model_validate({
        "from": p.buyer, "to": chain.address, "data": "0x" + data.hex(),
        "value": _q(p.payment_wei), "gas": _q(gas), "chainId": _q(chain.chain_id),
        "nonce": _q(nonce), "maxFeePerGas": _q(max_fee),
        "maxPriorityFeePerGas": _q(DEFAULT_TIP_WEI), "type": "0x2"})


# ----------------------------------------------------------------------------- signed txs


@dataclass(frozen=True)
class SignedTx:
    raw: bytes
    hash: str
    sender: str
    chain_id: int
    to: str | None
    value: int
    gas: int
    nonce: int
    max_fee: int
    data: bytes


def decode_signed(raw_hex: str) -> SignedTx:
    """Parse raw EIP-2718 bytes: an EIP-1559 (type 2) transaction with a valid signature."""
    raw = bytes.fromhex(raw_hex[2:])
    if not raw or raw[0] != 2:
        kind = "a legacy transaction" if raw and raw[0] >= 0xC0 else \
            f"type {raw[0]}" if raw else "empty"
        raise ProblemError("malformed-transaction", f"expected an EIP-1559 (type 2) "
                           f"transaction, got {kind}", field="body.signed_tx")
    try:
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        sender = to_checksum_address(Account.recover_transaction(raw))
    except Exception as exc:  # rlp / signature errors of several types
        raise ProblemError("malformed-transaction", f"the signed transaction does not decode: "
                           f"{type(exc).__name__}: {exc}"[:300], field="body.signed_tx") from None
    to = fields.get("to")
    return SignedTx(raw=raw, hash="0x" + keccak(raw).hex(), sender=sender,
                    chain_id=int(fields["chainId"]),
                    to=to_checksum_address(bytes(to)) if to else None,
                    value=int(fields["value"]), gas=int(fields["gas"]),
                    nonce=int(fields["nonce"]), max_fee=int(fields["maxFeePerGas"]),
                    data=bytes(fields["data"]))


def check_envelope(chain: Chain, tx: SignedTx) -> tuple[bytes, bytes, int, int, int, int]:
    """Chain, recipient and function of a signed transaction; returns the decoded postJob
    arguments (dataset id, raw query, n, t, m, timeout)."""
    if tx.chain_id != chain.chain_id:
        raise ProblemError("wrong-chain", f"the transaction is for chain {tx.chain_id}; this "
                           f"market is on chain {chain.chain_id}", field="signed_tx.chainId")
    if tx.to != chain.address:
        raise ProblemError("wrong-contract", f"the transaction goes to {tx.to or 'no address'}; "
                           f"the market is {chain.address}", field="signed_tx.to")
    try:
        return decode_post_job(tx.data)
    except LookupError:
        raise ProblemError("wrong-function", f"the calldata (selector 0x{tx.data[:4].hex()}) "
                           "does not call postJob", field="signed_tx.data") from None
    except ValueError as exc:
        raise ProblemError("malformed-transaction", str(exc), field="signed_tx.data") from None


def find_receipt(chain: Chain, tx_hash: str) -> TxReceipt | None:
    try:
        return chain.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return None


def in_pool(chain: Chain, tx_hash: str) -> bool:
    try:
        chain.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        return True
    except TransactionNotFound:
        return False


def preflight(chain: Chain, tx: SignedTx) -> None:
    """Nonce, gas and funds of a transaction not yet known to the chain node (blocking)."""
    pending = int(chain.w3.eth.get_transaction_count(tx.sender, "pending"))  # type: ignore[arg-type]
    if tx.nonce != pending:
        why = "already used" if tx.nonce < pending else "leaves a gap (it would never be mined)"
        raise ProblemError("nonce-conflict", f"nonce {tx.nonce} of {tx.sender} {why}; the next "
                           f"nonce is {pending}: prepare the transaction again",
                           field="signed_tx.nonce")
    call = {"from": tx.sender, "to": chain.address, "value": tx.value, "data": tx.data}
    estimate = _estimate(chain, call, "postJob", "body.signed_tx")
    if tx.gas < estimate:
        raise ProblemError("gas-too-low", f"gas limit {tx.gas} is below the estimate "
                           f"{estimate}", field="signed_tx.gas")
    _check_funds(chain, tx.sender, tx.value, tx.gas, tx.max_fee, "signed_tx.value")


def broadcast(chain: Chain, tx: SignedTx) -> None:
    """eth_sendRawTransaction; "already known" is fine (a concurrent retry sent it)."""
    try:
        chain.w3.eth.send_raw_transaction(tx.raw)
    except Web3RPCError as exc:
        msg = _rpc_message(exc)
        low = msg.lower()
        if "already known" in low or "already imported" in low:
            return
        if "nonce" in low:
            raise ProblemError("nonce-conflict", msg, field="signed_tx.nonce") from None
        if "insufficient funds" in low:
            raise ProblemError("insufficient-funds", msg, field="signed_tx.value") from None
        raise ProblemError("transaction-rejected", msg, field="body.signed_tx") from None


def job_of_receipt(chain: Chain, tx: SignedTx, receipt: TxReceipt) -> int:
    """The job id a mined transaction created; ProblemError transaction-reverted if it
    reverted (the reason from replaying it with eth_call on the parent block)."""
    tx_hash = tx.hash
    if int(receipt["status"]) != 1:
        call = {"from": tx.sender, "to": chain.address, "value": tx.value, "data": tx.data,
                "gas": tx.gas}
        try:
            chain.w3.eth.call(call, int(receipt["blockNumber"]) - 1)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise _revert_problem("transaction-reverted", chain.errors.from_exception(exc),
                                  f"postJob {tx_hash} reverted", tx_hash=tx_hash,
                                  field="body.signed_tx") from None
        except Exception as exc:  # e.g. anvil's Web3RPCError "EVM error OutOfGas"
            # The receipt says it reverted; the replay only fails to give a contract reason.
            msg = _rpc_message(exc)
            error = "OutOfGas" if "outofgas" in msg.lower().replace(" ", "") else "Unknown"
            raise ProblemError("transaction-reverted", f"postJob {tx_hash} reverted ({msg})"[:300],
                               tx_hash=tx_hash, error=error, field="body.signed_tx") from None
        raise ProblemError("transaction-reverted", f"postJob {tx_hash} reverted (out of gas or "
                           "no reason available)", tx_hash=tx_hash, error="Unknown",
                           field="body.signed_tx")
    events = chain.market.contract.events.JobPosted().process_receipt(receipt, errors=DISCARD)
    ours = [e for e in events if to_checksum_address(e["address"]) == chain.address]
    if len(ours) != 1:
        raise ProblemError("wrong-function", f"transaction {tx_hash} posted no job",
                           tx_hash=tx_hash, field="body.signed_tx")
    return int(ours[0]["args"]["jobId"])
