"""EIP-712 typed data shared with the contracts: one domain, one :class:`Sig`, one signature
check, and the typed messages of the market and of the randomness beacon.

* :mod:`.base`: :class:`Sig`, :func:`market_domain`, the value checks
  (:func:`checksum_address`, :func:`require_checksum_address`, :func:`check_bytes32`,
  :func:`check_uint256`), :func:`typed_digest`, :func:`sign_typed` and :func:`recover_signer`
  (low s, v in {27, 28}, recover: the contract's rules, in one place).
* :mod:`.market`: ``InputCommitment``, ``ResultCommitment`` and the derived hashes (result,
  inputs, proof, committee, spec, dataset id).
* :mod:`.beacon`: ``BeaconCommit``, ``BeaconShare`` and ``participants_hash``.

This package re-exports :mod:`.base` and :mod:`.market`, so ``eip712.result_hash(...)`` and
``from offchain.encoding.eip712 import Sig`` read as before; the beacon's messages are imported
from :mod:`offchain.encoding.eip712.beacon`.
"""

from __future__ import annotations

from offchain.encoding.eip712.base import (
    DOMAIN_NAME,
    DOMAIN_VERSION,
    SECP256K1_N,
    AddressError,
    Sig,
    SignatureError,
    check_bytes32,
    check_uint256,
    checksum_address,
    market_domain,
    recover_signer,
    require_checksum_address,
    sign_typed,
    typed_digest,
)
from offchain.encoding.eip712.market import (
    INPUT_COMMITMENT_TYPES,
    RESULT_COMMITMENT_TYPES,
    committee_hash,
    dataset_id,
    input_commitment_digest,
    inputs_hash,
    proof_hash,
    recover_input_signer,
    recover_result_signer,
    result_commitment_digest,
    result_hash,
    sign_input_commitment,
    sign_result_commitment,
    spec_hash,
)

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "INPUT_COMMITMENT_TYPES",
    "RESULT_COMMITMENT_TYPES",
    "SECP256K1_N",
    "AddressError",
    "Sig",
    "SignatureError",
    "check_bytes32",
    "check_uint256",
    "checksum_address",
    "committee_hash",
    "dataset_id",
    "input_commitment_digest",
    "inputs_hash",
    "market_domain",
    "proof_hash",
    "recover_input_signer",
    "recover_result_signer",
    "recover_signer",
    "require_checksum_address",
    "result_commitment_digest",
    "result_hash",
    "sign_input_commitment",
    "sign_result_commitment",
    "sign_typed",
    "spec_hash",
    "typed_digest",
]
