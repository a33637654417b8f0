"""offchain/encoding/eip712/ as pure functions: signing, recovery, validation and derived hashes
(their agreement with the contract is in tests/contracts/test_eip712_digests.py)."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_abi.packed import encode_packed
from eth_account import Account
from eth_utils import keccak

from offchain.encoding import eip712
from tests.helpers.env import by_address

DOMAIN = eip712.market_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


# ============================================================================ pure


def test_sign_and_recover_roundtrip() -> None:
    acct = Account.create()
    c = keccak(b"commitment")
    sig = eip712.sign_input_commitment(acct, DOMAIN, 5, c)
    assert sig.v in (27, 28) and len(sig.r) == 32 and len(sig.s) == 32
    assert int.from_bytes(sig.s, "big") <= eip712.SECP256K1_N // 2
    assert eip712.recover_input_signer(DOMAIN, 5, c, sig) == acct.address
    assert eip712.recover_input_signer(DOMAIN, 6, c, sig) != acct.address
    other_domain = eip712.market_domain(1, DOMAIN["verifyingContract"])
    assert eip712.recover_input_signer(other_domain, 5, c, sig) != acct.address

    rh, ih, root = keccak(b"1"), keccak(b"2"), keccak(b"3")
    rsig = eip712.sign_result_commitment(acct, DOMAIN, 5, rh, ih, root)
    assert eip712.recover_result_signer(DOMAIN, 5, rh, ih, root, rsig) == acct.address
    assert eip712.recover_result_signer(DOMAIN, 5, rh, ih, keccak(b"4"), rsig) != acct.address
    assert eip712.Sig.from_bytes(rsig.to_bytes()) == rsig
    assert rsig.to_tuple() == (rsig.r, rsig.s, rsig.v)


def test_recover_rejects_malleable_and_malformed() -> None:
    acct = Account.create()
    c = keccak(b"c")
    sig = eip712.sign_input_commitment(acct, DOMAIN, 1, c)
    twin = eip712.Sig(
        sig.r, (eip712.SECP256K1_N - int.from_bytes(sig.s, "big")).to_bytes(32, "big"), 55 - sig.v
    )
    for bad in (
        twin,
        eip712.Sig(sig.r, sig.s, 29),
        eip712.Sig(sig.r, sig.s, 0),
        eip712.Sig(sig.r[:31], sig.s, sig.v),
        eip712.Sig(bytes(32), sig.s, sig.v),
        eip712.Sig(sig.r, bytes(32), sig.v),
    ):
        with pytest.raises(ValueError):
            eip712.recover_input_signer(DOMAIN, 1, c, bad)
    with pytest.raises(ValueError):
        eip712.Sig.from_bytes(b"\x00" * 64)


def test_argument_validation() -> None:
    acct = Account.create()
    with pytest.raises(ValueError):
        eip712.sign_input_commitment(acct, DOMAIN, 1, b"short")
    with pytest.raises(ValueError):
        eip712.sign_input_commitment(acct, DOMAIN, -1, bytes(32))
    with pytest.raises(ValueError):
        eip712.market_domain(0, DOMAIN["verifyingContract"])
    with pytest.raises(ValueError):
        eip712.market_domain(1, "0x1234")
    with pytest.raises(ValueError):
        eip712.result_hash([2**255])
    with pytest.raises(ValueError):
        eip712.result_hash([-(2**255) - 1])
    with pytest.raises(ValueError):
        eip712.spec_hash(b"x", "q")


def test_hash_chains_require_strictly_ascending_addresses() -> None:
    a, b = (x.address for x in by_address([Account.create(), Account.create()]))
    v = keccak(b"v")
    assert eip712.inputs_hash([]) == bytes(32)
    h1 = keccak(bytes(32) + bytes(12) + bytes.fromhex(a[2:]) + v)
    assert eip712.inputs_hash([(a, v)]) == h1
    assert eip712.inputs_hash([(a, v), (b, v)]) == keccak(h1 + bytes(12) + bytes.fromhex(b[2:]) + v)
    assert eip712.proof_hash([(a.lower(), v)]) == h1
    for bad in ([(b, v), (a, v)], [(a, v), (a, v)]):
        with pytest.raises(ValueError):
            eip712.inputs_hash(bad)
        with pytest.raises(ValueError):
            eip712.proof_hash(bad)
    with pytest.raises(ValueError):
        eip712.inputs_hash([(a, b"short")])


def test_packed_hashes_match_eth_abi() -> None:
    addrs = [x.address for x in by_address([Account.create() for _ in range(3)])]
    # Solidity pads each element of a packed dynamic array to 32 bytes; eth_abi's packed mode
    # does not for addresses, so compare with the standard encoding of n static addresses.
    assert eip712.committee_hash(addrs) == keccak(encode(["address"] * 3, addrs))
    assert eip712.committee_hash(addrs) != keccak(encode_packed(["address[]"], [addrs]))
    values = [3, -3, 2**255 - 1]
    assert eip712.result_hash(values) == keccak(encode_packed(["int256[]"], [values]))
    assert eip712.result_hash([]) == keccak(b"")


def test_dataset_and_spec_hash() -> None:
    assert eip712.dataset_id("") == bytes.fromhex(
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    d = eip712.dataset_id("breast_cancer")
    assert eip712.spec_hash(d, "q") == keccak(d + keccak(b"q"))
