"""Pydantic models: the deployment manifest the API starts from, and every request and response
body of the HTTP API (they define the OpenAPI schema at /openapi.json).

Units and encodings:

* **wei amounts** are decimal strings (``"30000000000000000"``) in every response, so they
  survive JSON parsers that turn numbers into doubles; requests accept a decimal string or a
  JSON integer. Field names end in ``_wei``.
* **aggregates** (int256) are decimal strings for the same reason.
* **times** are unix seconds (block timestamps; deadlines are compared with the chain's time).
* **hashes and calldata** are ``0x``-hex; **addresses** are EIP-55 checksum strings (requests
  accept lower case too, but reject a mixed-case address with a wrong checksum).
* the unsigned transaction of ``/v1/jobs/prepare`` is an Ethereum JSON-RPC transaction object:
  every quantity ``0x``-hex (EIP-1474), so it can go to a wallet's ``eth_signTransaction`` /
  ``eth_sendTransaction`` (or eth-account's ``sign_transaction``) unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from offchain.encoding.eip712 import checksum_address
from offchain.errors import MarketError

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
HASH_PATTERN = r"^0x[0-9a-f]{64}$"
WEI_PATTERN = r"^[0-9]{1,78}$"
MAX_UINT256 = 2**256 - 1


def _wei(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a wei amount is a decimal string or an integer")
    if isinstance(value, int):
        out = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 78:
        out = int(value)
    else:
        raise ValueError("a wei amount is a decimal string of digits or a non-negative integer")
    if not 0 <= out <= MAX_UINT256:
        raise ValueError("a wei amount is between 0 and 2**256-1")
    return out


Address = Annotated[str, Field(pattern=ADDRESS_PATTERN, examples=[
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"]), AfterValidator(checksum_address)]
WeiIn = Annotated[int, BeforeValidator(_wei), WithJsonSchema({
    "anyOf": [{"type": "string", "pattern": WEI_PATTERN},
              {"type": "integer", "minimum": 0}]})]
WeiOut = Annotated[str, Field(pattern=WEI_PATTERN, examples=["30000000000000000"])]
Hash = Annotated[str, Field(pattern=HASH_PATTERN)]

# ----------------------------------------------------------------------------- manifest

ColumnType = Literal["number", "integer", "string", "boolean"]
NUMERIC_TYPES = frozenset({"number", "integer"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Column(_Strict):
    name: str = Field(min_length=1, max_length=256)
    type: ColumnType


class ContractRef(BaseModel):
    address: Annotated[str, AfterValidator(checksum_address)]
    block: int = Field(ge=0)


class ManifestNode(BaseModel):
    address: Annotated[str, AfterValidator(checksum_address)]
    endpoint: str | None = None
    datasets: list[str] = Field(default_factory=list)


class ManifestDataset(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    columns: list[Column]
    providers: list[Annotated[str, AfterValidator(checksum_address)]] = Field(default_factory=list)

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, columns: list[Column]) -> list[Column]:
        names = [c.name for c in columns]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"column {dup!r} listed twice")
        return columns


class Manifest(BaseModel):
    """The deployment manifest written by ``mpc-market up`` (unknown keys are ignored)."""

    chain_id: int = Field(gt=0)
    rpc_url: str = Field(pattern=r"^https?://\S+$")
    api_url: str | None = None
    contracts: dict[str, ContractRef]
    nodes: list[ManifestNode] = Field(default_factory=list)
    datasets: list[ManifestDataset] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Manifest:
        if "MPCMarket" not in self.contracts:
            raise ValueError("contracts.MPCMarket is missing")
        names = [d.name for d in self.datasets]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f"dataset {dup!r} listed twice")
        return self

    @property
    def market(self) -> ContractRef:
        return self.contracts["MPCMarket"]


class ManifestError(MarketError, ValueError):
    """The manifest file is unreadable or malformed (one-line message)."""


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``path``; raises ManifestError naming the first problem."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read deployment manifest {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ManifestError(f"deployment manifest {path} is not JSON: {exc}") from None
    try:
        return Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ManifestError(f"deployment manifest {path}: {where}: {first['msg']}{more}") from None


# ----------------------------------------------------------------------------- responses


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details (media type application/problem+json)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(examples=["https://mpc-market.example/problems/job-not-found"])
    title: str
    status: int
    detail: str
    instance: str
    errors: list[FieldError] | None = None


class Health(BaseModel):
    status: Literal["ok"]
    chain_id: int
    market: str
    block: int = Field(description="latest block of the chain node")
    indexed_block: int = Field(description="last block the job index has processed")


class Dataset(BaseModel):
    name: str = Field(description="the dataset's name, its id in this API")
    dataset_id: Hash = Field(description="on-chain id: keccak256 of the UTF-8 name")
    columns: list[Column]
    providers: list[str] = Field(description="provider nodes offering it (manifest)")
    active_providers: int = Field(description="of those, how many are Active in the registry; "
                                              "the default min_providers of a job")
    price_wei: WeiOut = Field(description="the smallest escrow a job accepts "
                                          "(the contract's minPaymentWei)")


class DatasetList(BaseModel):
    items: list[Dataset]


class Node(BaseModel):
    address: str
    stake_wei: WeiOut
    status: Literal["active", "exiting"]
    endpoint: str
    exit_at: int | None = Field(description="unix seconds the stake unlocks (exiting only)")
    registered_block: int
    datasets: list[str] = Field(description="datasets it offers (manifest)")
    jobs_served: int = Field(description="finalized jobs whose result it signed")


class NodeList(BaseModel):
    items: list[Node]


class PrepareJob(_Strict):
    """A job to post. Defaults: committee of 3, threshold 1, every active provider of the
    dataset must contribute, 600 s timeout, the price as payment."""

    dataset: str = Field(min_length=1, max_length=128, examples=["wdbc"])
    query: str = Field(min_length=1, max_length=1024, examples=["mean:mean_radius"])
    committee_size: int = Field(3, ge=0, le=255)
    threshold: int = Field(1, ge=0, le=255)
    min_providers: int | None = Field(None, ge=0, le=65535)
    timeout_s: int = Field(600, ge=0, le=2**40 - 1)
    payment_wei: WeiIn | None = None
    buyer: Address


class UnsignedTx(BaseModel):
    """An EIP-1559 transaction for the buyer's wallet (JSON-RPC form, quantities 0x-hex)."""

    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from")
    to: str
    data: str
    value: str
    gas: str
    chainId: str
    nonce: str
    maxFeePerGas: str
    maxPriorityFeePerGas: str
    type: Literal["0x2"] = "0x2"


class JobParams(BaseModel):
    dataset: str
    dataset_id: Hash
    query: str = Field(description="canonical query text, as posted")
    committee_size: int
    threshold: int
    min_providers: int
    timeout_s: int
    payment_wei: WeiOut
    buyer: str


class PreparedJob(BaseModel):
    tx: UnsignedTx
    job: JobParams


class SubmitJob(_Strict):
    signed_tx: str = Field(pattern=r"^0x([0-9a-fA-F]{2})+$", max_length=16384,
                           description="the prepared transaction, signed by the buyer's wallet "
                                       "(raw EIP-2718 bytes, 0x-hex)")


class JobLinks(BaseModel):
    self: str
    audit: str


class SubmittedJob(BaseModel):
    job_id: int
    tx_hash: Hash
    links: JobLinks


JobStatusName = Literal["awaiting_committee", "computing", "finalized", "refunded", "expired"]


class Transaction(BaseModel):
    name: str = Field(examples=["postJob", "commitRound", "reveal", "assignCommittee"])
    hash: Hash
    block: int
    gas_used: int
    timestamp: int = Field(description="block timestamp, unix seconds")


class JobResult(BaseModel):
    aggregates: list[str] = Field(description="opened aggregate vector, decimal strings")
    statistic: int | float | list[int] | None = Field(
        description="computed from the aggregates (null if undefined, see statistic_error)")
    statistic_error: str | None = None
    result_hash: Hash
    proof_hash: Hash = Field(description="proof-of-MPC: hash chain of the signers' transcript "
                                         "roots (JobFinalized)")
    inputs_hash: Hash
    provider_count: int
    signer_mask: int
    signers: list[str]
    reward_per_signer_wei: WeiOut


class JobSummary(BaseModel):
    job_id: int
    status: JobStatusName
    dataset: str | None = Field(description="catalogue name, null if not in the catalogue")
    dataset_id: Hash
    query: str
    buyer: str
    committee_size: int
    threshold: int
    min_providers: int
    escrow_wei: WeiOut
    deadline: int
    posted_block: int
    links: JobLinks


class Job(JobSummary):
    seed_round: int = Field(description="beacon round the job joined when posted")
    committee: list[str] | None = Field(description="drawn committee, null until assigned")
    committee_round: int | None = Field(description="beacon round whose output drew the "
                                                    "committee (the seed round or a successor)")
    result: JobResult | None
    refund_wei: WeiOut | None = None
    transactions: list[Transaction]


class JobPage(BaseModel):
    items: list[JobSummary]
    next_cursor: int | None = Field(description="pass as `cursor` for the next page")
    links: dict[str, str]


class AuditReport(BaseModel):
    """The auditor's report (``offchain.audit.AuditReport.to_json()``); ``ok`` is true only if
    every check passed. Further members as the auditor defines them."""

    model_config = ConfigDict(extra="allow")
    ok: bool
