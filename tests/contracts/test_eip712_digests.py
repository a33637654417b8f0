"""EIP-712 digests and derived hashes of offchain/encoding/eip712/, checked bit for bit against
the deployed MPCMarket (EIP-712 digests, EIP-5267 domain)."""

from __future__ import annotations

import pytest
from eth_utils import keccak

from offchain.encoding import eip712
from tests.helpers.env import Env

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
