"""Signed, encrypted peer envelopes (offchain.wire.envelope) and node keys (offchain.wire.keys)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from offchain.encoding.eip712 import SECP256K1_N
from offchain.wire.envelope import (
    MAX_ENVELOPE_BYTES,
    MAX_PLAINTEXT_BYTES,
    BadSignature,
    EnvelopeError,
    Header,
    Malformed,
    Misaddressed,
    Replayed,
    ReplayGuard,
    Tampered,
    envelope_digest,
    envelope_signer,
    open_envelope,
    seal,
)
from offchain.wire.keys import KeyFileError, NodeKeys

FAST = settings(max_examples=40, deadline=None)
CHAIN = 31337
ALICE, BOB, CAROL, MALLORY = (NodeKeys.generate() for _ in range(4))
CONTRACT = Account.create().address


def header(sender: NodeKeys = ALICE, recipient: NodeKeys = BOB, **kw: Any) -> Header:
    fields: dict[str, Any] = {
        "chain_id": CHAIN, "contract": CONTRACT, "job_id": 7, "kind": "share",
        "sender": sender.address, "recipient": recipient.address,
    }
    fields.update(kw)
    return Header(**fields)


def open_as(node: NodeKeys, sealed: Any, chain_id: int = CHAIN,
            contract: str = CONTRACT) -> tuple[Header, bytes]:
    return open_envelope(sealed, recipient=node.address, recipient_key=node.x25519,
                         chain_id=chain_id, contract=contract)


def resign(sealed: dict[str, Any], signer: NodeKeys) -> dict[str, Any]:
    """Re-sign ``sealed`` (after a modification) with ``signer``'s key."""
    digest = envelope_digest(sealed)
    sig = signer.eth.sign_message(encode_defunct(primitive=digest)).signature
    return {**sealed, "signature": "0x" + bytes(sig).hex()}


def flip(hex_str: str, pos: int = -1) -> str:
    raw = bytearray.fromhex(hex_str[2:])
    raw[pos] ^= 1
    return "0x" + raw.hex()


# ---------------------------------------------------------------- round trip


@FAST
@given(
    plaintext=st.binary(max_size=2000),
    kind=st.from_regex(r"[a-z_]{1,32}", fullmatch=True),
    job_id=st.integers(min_value=0, max_value=2**256 - 1),
    as_bytes=st.booleans(),
)
def test_round_trip(plaintext: bytes, kind: str, job_id: int, as_bytes: bool) -> None:
    h = header(kind=kind, job_id=job_id)
    sealed = seal(h, plaintext, ALICE.eth, BOB.enc_public_key)
    raw: Any = json.dumps(sealed).encode() if as_bytes else sealed
    got_header, got = open_as(BOB, raw)
    assert got == plaintext
    assert got_header == h
    # the transcript digest is what the sender signed, for bytes and dict forms alike
    digest = envelope_digest(raw)
    assert digest == envelope_digest(sealed)
    signer = Account.recover_message(encode_defunct(primitive=digest),
                                     signature=bytes.fromhex(str(sealed["signature"])[2:]))
    assert signer == ALICE.address


def test_fresh_randomness_per_message() -> None:
    a = seal(header(), b"same", ALICE.eth, BOB.enc_public_key)
    b = seal(header(), b"same", ALICE.eth, BOB.enc_public_key)
    assert a["eph_pub"] != b["eph_pub"] and a["nonce"] != b["nonce"]
    assert a["ciphertext"] != b["ciphertext"]


def test_contract_and_recipient_given_in_any_case() -> None:
    sealed = seal(header(), b"x", ALICE.eth, BOB.enc_public_key)
    got = open_envelope(sealed, recipient=BOB.address.lower(), recipient_key=BOB.x25519,
                        chain_id=CHAIN, contract=CONTRACT.lower())
    assert got[1] == b"x"


# ---------------------------------------------------------------- tampering


@pytest.fixture
def sealed() -> dict[str, Any]:
    return dict(seal(header(), b"secret share", ALICE.eth, BOB.enc_public_key))


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "eph_pub"])
def test_tampered_signed_bytes_fail_signature(sealed: dict[str, Any], field: str) -> None:
    with pytest.raises(BadSignature):
        open_as(BOB, {**sealed, field: flip(sealed[field])})


@pytest.mark.parametrize(
    "change", [{"kind": "other"}, {"job_id": 8}, {"sender": CAROL.address}]
)
def test_tampered_header_fails_signature(sealed: dict[str, Any], change: dict[str, Any]) -> None:
    with pytest.raises(BadSignature):
        open_as(BOB, {**sealed, **change})


def test_redirected_to_us_fails_signature() -> None:
    sealed = seal(header(recipient=CAROL), b"for carol", ALICE.eth, CAROL.enc_public_key)
    with pytest.raises(BadSignature):
        open_as(BOB, {**sealed, "recipient": BOB.address})


@pytest.mark.parametrize("pos", [0, 40, 64])
def test_tampered_signature(sealed: dict[str, Any], pos: int) -> None:
    with pytest.raises(BadSignature):
        open_as(BOB, {**sealed, "signature": flip(sealed["signature"], pos)})


def test_high_s_signature_rejected(sealed: dict[str, Any]) -> None:
    sig = bytes.fromhex(sealed["signature"][2:])
    s = int.from_bytes(sig[32:64], "big")
    malleated = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    # eth-account itself accepts the high-s twin; the envelope layer must not.
    assert Account.recover_message(encode_defunct(primitive=envelope_digest(sealed)),
                                   signature=malleated) == ALICE.address
    with pytest.raises(BadSignature, match="canonical"):
        open_as(BOB, {**sealed, "signature": "0x" + malleated.hex()})


def test_envelope_signer_recovers_without_decrypting(sealed: dict[str, Any]) -> None:
    assert envelope_signer(sealed) == (envelope_digest(sealed), ALICE.address)
    assert envelope_signer(resign(sealed, MALLORY))[1] == MALLORY.address
    with pytest.raises(BadSignature):
        envelope_signer({**sealed, "signature": flip(sealed["signature"], 64)})


def test_signed_by_someone_else(sealed: dict[str, Any]) -> None:
    with pytest.raises(BadSignature, match="not by the header's sender"):
        open_as(BOB, resign(sealed, MALLORY))
    # Mallory's own message relabelled as Alice's
    forged = seal(header(sender=MALLORY), b"evil", MALLORY.eth, BOB.enc_public_key)
    with pytest.raises(BadSignature):
        open_as(BOB, {**forged, "sender": ALICE.address})


def test_signed_garbage_is_tampered(sealed: dict[str, Any]) -> None:
    # The sender itself signed a ciphertext that does not decrypt: authentic but undecryptable.
    with pytest.raises(Tampered):
        open_as(BOB, resign({**sealed, "ciphertext": flip(sealed["ciphertext"])}, ALICE))
    low_order = "0x" + bytes(32).hex()
    with pytest.raises(Tampered):
        open_as(BOB, resign({**sealed, "eph_pub": low_order}, ALICE))


def test_encrypted_to_the_wrong_key() -> None:
    sealed = seal(header(), b"x", ALICE.eth, CAROL.enc_public_key)  # header says Bob
    with pytest.raises(Tampered):
        open_as(BOB, sealed)


def test_seal_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError):
        seal(header(), b"x", MALLORY.eth, BOB.enc_public_key)  # not the header's sender
    with pytest.raises(ValueError):
        seal(header(), b"x", ALICE.eth, BOB.enc_public_key[:31])
    with pytest.raises(ValueError):
        seal(header(), b"x", ALICE.eth, bytes(32))  # low-order point
    with pytest.raises(ValueError):
        seal(header(), bytes(MAX_PLAINTEXT_BYTES + 1), ALICE.eth, BOB.enc_public_key)
    with pytest.raises(TypeError):
        seal(header().model_dump(), b"x", ALICE.eth, BOB.enc_public_key)  # type: ignore[arg-type]


# ---------------------------------------------------------------- addressing


def test_wrong_recipient(sealed: dict[str, Any]) -> None:
    with pytest.raises(Misaddressed):
        open_as(CAROL, sealed)


def test_wrong_chain_or_contract(sealed: dict[str, Any]) -> None:
    with pytest.raises(Misaddressed):
        open_as(BOB, sealed, chain_id=1)
    with pytest.raises(Misaddressed):
        open_as(BOB, sealed, contract=Account.create().address)


def test_replay_guard() -> None:
    guard = ReplayGuard()
    h = header()
    guard.accept(h)
    with pytest.raises(Replayed):
        guard.accept(h)
    guard.accept(header(kind="other"))
    guard.accept(header(job_id=8))
    guard.accept(header(sender=CAROL))
    guard.accept(header(chain_id=1))
    assert len(guard) == 5
    guard.forget_job(7)
    assert len(guard) == 1
    guard.accept(h)  # the finished job's records are gone
    guard.forget_job(12345)  # unknown job: no-op
    assert issubclass(Replayed, EnvelopeError)


# ---------------------------------------------------------------- malformed input


def test_size_limits(sealed: dict[str, Any]) -> None:
    big = seal(header(), bytes(MAX_PLAINTEXT_BYTES), ALICE.eth, BOB.enc_public_key)
    raw = json.dumps(big).encode()
    assert len(raw) <= MAX_ENVELOPE_BYTES
    assert open_as(BOB, raw)[1] == bytes(MAX_PLAINTEXT_BYTES)
    with pytest.raises(Malformed, match="exceeds"):
        open_as(BOB, raw + b" " * (MAX_ENVELOPE_BYTES - len(raw) + 1))
    oversize = {**sealed, "ciphertext": "0x" + "00" * (MAX_ENVELOPE_BYTES // 2)}
    with pytest.raises(Malformed):
        open_as(BOB, oversize)


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[]", b"{}", b"123", b"null", b'{"v": 1', b"\xff\xfe",
     b"[" * 100_000, b"{" * 100_000, b'{"v": {"a": 1}}', b'{"v": NaN}', b'{"v": 1, "v": 1}',
     "text", 42, None],
)
def test_garbage(raw: Any) -> None:
    with pytest.raises(Malformed):
        open_as(BOB, raw)


@pytest.mark.parametrize(
    "change",
    [{"v": 2}, {"v": True}, {"v": 1.0}, {"chain_id": "31337"}, {"job_id": -1},
     {"job_id": 2**256}, {"kind": "Share"}, {"kind": ""}, {"kind": "a" * 33},
     {"kind": "share\n"}, {"sender": ALICE.address.lower()}, {"recipient": "0x1234"},
     {"nonce": "0x00"}, {"eph_pub": None}, {"signature": "0x" + "AB" * 65},
     {"ciphertext": "0x" + "00" * 15}, {"ciphertext": "0x0"}, {"extra": 1}],
)
def test_schema_violations(sealed: dict[str, Any], change: dict[str, Any]) -> None:
    with pytest.raises(Malformed):
        open_as(BOB, {**sealed, **change})
    with pytest.raises(Malformed):
        envelope_digest({**sealed, **change})


def test_missing_field(sealed: dict[str, Any]) -> None:
    for name in sealed:
        partial = {k: v for k, v in sealed.items() if k != name}
        with pytest.raises(Malformed):
            open_as(BOB, partial)


def test_header_validation() -> None:
    with pytest.raises(ValidationError):
        header(kind="UPPER")
    with pytest.raises(ValidationError):
        header(chain_id=0)
    with pytest.raises(ValidationError):
        header(contract=CONTRACT.lower())
    assert hash(header()) == hash(header())  # frozen and hashable


# ---------------------------------------------------------------- node keys


def test_keys_save_load(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    ALICE.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = NodeKeys.load(path)
    assert loaded.address == ALICE.address
    assert loaded.enc_public_key == ALICE.enc_public_key
    assert len(loaded.enc_public_key) == 32
    doc = json.loads(path.read_text())
    assert set(doc) == {"eth_private_key", "x25519_private_key"}
    # overwriting a pre-existing, world-readable file tightens it to 0600
    other = tmp_path / "other.json"
    other.write_text("{}")
    os.chmod(other, 0o644)
    BOB.save(other)
    assert stat.S_IMODE(other.stat().st_mode) == 0o600
    assert NodeKeys.load(other).address == BOB.address


def test_keys_repr_hides_secrets() -> None:
    text = repr(ALICE)
    assert ALICE.address in text
    assert bytes(ALICE.eth.key).hex() not in text


def test_generate_is_fresh() -> None:
    assert NodeKeys.generate().address != NodeKeys.generate().address


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", "{}",
     json.dumps({"eth_private_key": "0x" + "11" * 32}),
     json.dumps({"eth_private_key": "0x" + "11" * 32, "x25519_private_key": "0x" + "22" * 31}),
     json.dumps({"eth_private_key": "11" * 32, "x25519_private_key": "0x" + "22" * 32}),
     json.dumps({"eth_private_key": "0x" + "00" * 32, "x25519_private_key": "0x" + "22" * 32}),
     json.dumps({"eth_private_key": hex(SECP256K1_N), "x25519_private_key": "0x" + "22" * 32}),
     json.dumps({"eth_private_key": "0x" + "11" * 32, "x25519_private_key": "0x" + "22" * 32,
                 "extra": 1})],
)
def test_keys_load_rejects(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(KeyFileError):
        NodeKeys.load(path)


def test_keys_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError):
        NodeKeys.load(tmp_path / "absent.json")
