"""offchain/wire/fields.py and the checks it is built on (offchain/encoding/eip712/base.py): one
address rule per use (strict on the wire, lenient for user input), one signature check."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from pydantic import BaseModel, ValidationError

from offchain.crypto.field import R
from offchain.crypto.pedersen import P
from offchain.encoding.eip712 import (
    SECP256K1_N,
    AddressError,
    Sig,
    SignatureError,
    checksum_address,
    recover_signer,
    require_checksum_address,
    sign_typed,
)
from offchain.errors import MarketError
from offchain.wire.fields import Address, AddressIn, CoordHex, FieldHex, Hash32, SigModel

CHECKSUM = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
WRONG_CASE = "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # mixed case, bad checksum


class Strict(BaseModel):
    a: Address


class Lenient(BaseModel):
    a: AddressIn


class Numbers(BaseModel):
    f: FieldHex | None = None
    c: CoordHex | None = None
    h: Hash32 | None = None


def test_checksum_address_is_lenient_but_refuses_a_bad_checksum() -> None:
    for spelling in (CHECKSUM, CHECKSUM.lower(), "0x" + CHECKSUM[2:].upper()):
        assert checksum_address(spelling) == CHECKSUM
        assert Lenient(a=spelling).a == CHECKSUM
    for bad in (WRONG_CASE, CHECKSUM[2:], CHECKSUM[:-1], 42, None):
        with pytest.raises(AddressError):
            checksum_address(bad)
    with pytest.raises(ValidationError, match="invalid EIP-55 checksum"):
        Lenient(a=WRONG_CASE)


def test_require_checksum_address_is_strict() -> None:
    assert require_checksum_address(CHECKSUM) == CHECKSUM
    assert Strict(a=CHECKSUM).a == CHECKSUM
    for bad in (CHECKSUM.lower(), WRONG_CASE, "0x1234"):
        with pytest.raises(AddressError):
            require_checksum_address(bad)
        with pytest.raises(ValidationError, match="checksummed address"):
            Strict(a=bad)
    assert issubclass(AddressError, MarketError) and issubclass(AddressError, ValueError)


@pytest.mark.parametrize(("field", "value", "ok"), [
    ("f", hex(R - 1), True), ("f", hex(R), False), ("f", "12", False),
    ("c", hex(P - 1), True), ("c", hex(P), False), ("c", "0x" + "1" * 65, False),
    ("h", "0x" + "ab" * 32, True), ("h", "0x" + "ab" * 31, False), ("h", "0x" + "zz" * 32, False),
])
def test_numeric_fields(field: str, value: str, ok: bool) -> None:
    kwargs: dict[str, Any] = {field: value}
    if ok:
        assert getattr(Numbers(**kwargs), field) == value
    else:
        with pytest.raises(ValidationError):
            Numbers(**kwargs)


def test_sig_model_round_trip_and_recover_signer() -> None:
    acct = Account.create()
    msg = encode_defunct(primitive=b"\x01" * 32)
    sig = sign_typed(acct, msg)
    model = SigModel.of(sig)
    assert model.to_sig() == sig
    assert recover_signer(msg, model.to_sig()) == acct.address
    with pytest.raises(ValidationError):
        SigModel(r=model.r, s=model.s, v=29)
    high_s = Sig(sig.r, (SECP256K1_N - int.from_bytes(sig.s, "big")).to_bytes(32, "big"),
                 55 - sig.v)
    assert Account.recover_message(msg, vrs=(high_s.v, int.from_bytes(high_s.r, "big"),
                                             int.from_bytes(high_s.s, "big"))) == acct.address
    for bad in (high_s, Sig(sig.r, sig.s, 26), Sig(bytes(32), sig.s, sig.v), Sig(sig.r[:31],
                                                                                   sig.s, sig.v)):
        with pytest.raises(SignatureError, match="not canonical"):
            recover_signer(msg, bad)
