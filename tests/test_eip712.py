"""offchain/eip712.py: signing, recovery and derived hashes, checked bit for bit against the
deployed MPCMarket (EIP-712 digests, EIP-5267 domain) and as pure functions."""

from __future__ import annotations

import pytest
from eth_abi import encode
from eth_abi.packed import encode_packed
from eth_account import Account
from eth_utils import keccak

from offchain.encoding import eip712
from tests.conftest import Env, by_address

DOMAIN = eip712.market_domain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")


# ============================================================================ against the contract


def test_type_hashes_match_contract(env: Env) -> None:
    f = env.market.contract.functions
    assert f.INPUT_COMMITMENT_TYPEHASH().call() == keccak(
        text="InputCommitment(uint256 jobId,bytes32 commitment)"
    )
    assert f.RESULT_COMMITMENT_TYPEHASH().call() == keccak(
        text="ResultCommitment(uint256 jobId,bytes32 resultHash,bytes32 inputsHash,"
        "bytes32 transcriptRoot)"
    )


def test_eip5267_domain_matches(env: Env) -> None:
    fields, name, version, chain_id, contract, salt, ext = (
        env.market.contract.functions.eip712Domain().call()
    )
    assert fields == b"\x0f" and salt == bytes(32) and ext == []
    assert eip712.market_domain(chain_id, contract) == eip712.market_domain(
        env.w3.eth.chain_id, env.market.address
    )
    assert (name, version) == (eip712.DOMAIN_NAME, eip712.DOMAIN_VERSION)


@pytest.mark.parametrize("job_id", [0, 1, 2**40, 2**256 - 1])
def test_input_digest_matches_contract(env: Env, job_id: int) -> None:
    domain = env.market.domain()
    commitment = keccak(job_id.to_bytes(32, "big"))
    on_chain = env.market.contract.functions.hashInputCommitment(job_id, commitment).call()
    assert eip712.input_commitment_digest(domain, job_id, commitment) == on_chain


@pytest.mark.parametrize("job_id", [1, 77, 2**256 - 1])
def test_result_digest_matches_contract(env: Env, job_id: int) -> None:
    domain = env.market.domain()
    rh, ih, root = keccak(b"r"), keccak(b"i"), keccak(job_id.to_bytes(32, "big"))
    on_chain = env.market.contract.functions.hashResultCommitment(job_id, rh, ih, root).call()
    assert eip712.result_commitment_digest(domain, job_id, rh, ih, root) == on_chain


def test_derived_hashes_are_what_the_contract_accepts(env: Env) -> None:
    """A job finalized with extreme int256 aggregates: the contract's stored/emitted hashes equal
    result_hash, inputs_hash, proof_hash, committee_hash and spec_hash computed in Python."""
    aggregates = [0, -1, 1, -(2**255), 2**255 - 1, -123_456_789_012]
    query = "mean(radius) — naïve UTF-8 ✓"
    job_id, committee = env.post_assigned(query=query)
    job = env.market.get_job(job_id)
    assert job.committee_hash == eip712.committee_hash([m.address for m in committee])
    assert job.spec_hash == eip712.spec_hash(env.dataset, query)

    inputs = env.inputs(job_id)
    sigs = env.signatures(job_id, committee, aggregates, inputs)
    block = env.w3.eth.block_number
    env.market.finalize_job(
        env.outsider, job_id, aggregates, [m.address for m in committee], inputs, sigs
    )
    [ev] = env.market.job_finalized_events(block + 1)
    assert ev["aggregates"] == aggregates
    assert ev["result_hash"] == eip712.result_hash(aggregates)
    assert ev["inputs_hash"] == eip712.inputs_hash([(p, c) for p, c, _ in inputs])
    assert ev["proof_hash"] == eip712.proof_hash([(m.address, env.root_of(m)) for m in committee])
    assert env.market.get_job(job_id).result_hash == eip712.result_hash(aggregates)


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
