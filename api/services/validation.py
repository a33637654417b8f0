"""The dataset catalogue and the checks every job passes before anything reaches the chain.

The same :func:`check_job` runs on the body of ``POST /v1/jobs/prepare`` and on the postJob
arguments decoded from the calldata of a signed transaction (``POST /v1/jobs``), so a job the
API broadcasts is one it would have prepared. Each failure is a problem with its own ``type``
naming the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass

from api.models import NUMERIC_TYPES, Manifest
from api.problems import ProblemError
from offchain.encoding.eip712 import dataset_id as dataset_id_of
from offchain.encoding.query import MAX_QUERY_BYTES, QueryError, QuerySpec, parse_query

MIN_COMMITTEE = 3  # JobMarket.MIN_COMMITTEE: t >= 1 and n >= 2t+1
MAX_COMMITTEE = 32  # JobMarket.MAX_COMMITTEE: the signer mask has 32 bits
MAX_ESCROW_WEI = 2**96 - 1  # the escrow is stored as uint96
MAX_MIN_PROVIDERS = 2**16 - 1


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    dataset_id: bytes
    columns: dict[str, str]  # name -> type, in manifest order
    providers: list[str]


class Catalog:
    """The manifest's datasets, by name and by on-chain id (keccak256 of the name)."""

    def __init__(self, manifest: Manifest) -> None:
        self.entries = [CatalogEntry(d.name, dataset_id_of(d.name),
                                     {c.name: c.type for c in d.columns}, list(d.providers))
                        for d in manifest.datasets]
        self.by_name = {e.name: e for e in self.entries}
        self.by_id = {e.dataset_id: e for e in self.entries}
        self.node_datasets: dict[str, list[str]] = {}
        for e in self.entries:
            for p in e.providers:
                self.node_datasets.setdefault(p, []).append(e.name)
        for n in manifest.nodes:
            listed = self.node_datasets.setdefault(n.address, [])
            listed.extend(d for d in n.datasets if d not in listed)


@dataclass(frozen=True)
class CheckedJob:
    """A job that passed every check; ``query`` is the text to post."""

    dataset: CatalogEntry
    query: str
    spec: QuerySpec
    committee_size: int
    threshold: int
    min_providers: int
    timeout_s: int
    payment_wei: int
    buyer: str


def active_providers(entry: CatalogEntry, active: set[str]) -> list[str]:
    return [p for p in entry.providers if p in active]


def check_job(catalog: Catalog, *, min_payment_wei: int, max_timeout_s: int, active: set[str],
              dataset: str | bytes, query: str | bytes, committee_size: int, threshold: int,
              min_providers: int | None, timeout_s: int, payment_wei: int | None, buyer: str,
              fields: dict[str, str]) -> CheckedJob:
    """Check a job against the catalogue, the registry (``active`` nodes) and the contract's
    rules; ``dataset`` is a name or a 32-byte id, ``query`` text or raw calldata bytes.
    ``fields`` maps dataset, query, committee_size, threshold, min_providers, timeout_s,
    payment_wei to the request field names used in errors. Raises ProblemError."""
    entry = catalog.by_name.get(dataset) if isinstance(dataset, str) else \
        catalog.by_id.get(bytes(dataset))
    if entry is None:
        shown = dataset if isinstance(dataset, str) else "0x" + bytes(dataset).hex()
        known = ", ".join(sorted(catalog.by_name)) or "none"
        raise ProblemError("unknown-dataset", f"dataset {shown!r} is not in the catalogue "
                           f"(known: {known})", field=fields["dataset"])
    spec, text = _check_query(entry, query, fields["query"])
    n, t = committee_size, threshold
    f_n, f_t = fields["committee_size"], fields["threshold"]
    if not MIN_COMMITTEE <= n <= MAX_COMMITTEE:
        raise ProblemError("invalid-committee", f"committee_size must be between {MIN_COMMITTEE} "
                           f"and {MAX_COMMITTEE}, got {n}", field=f_n)
    if t < 1:
        raise ProblemError("invalid-committee", f"threshold must be at least 1, got {t}",
                           field=f_t)
    if n < 2 * t + 1:
        raise ProblemError("invalid-committee", f"committee_size {n} is too small for threshold "
                           f"{t}: an honest majority needs N >= 2T+1 = {2 * t + 1}", field=f_n)
    if n > len(active):
        raise ProblemError("too-few-nodes", f"committee_size {n} exceeds the {len(active)} "
                           "active nodes the committee is drawn from", field=f_n)
    offering = active_providers(entry, active)
    m = len(offering) if min_providers is None else min_providers
    if m < 1:
        detail = (f"no active provider offers dataset {entry.name!r}" if min_providers is None
                  else f"min_providers must be at least 1, got {m}")
        raise ProblemError("invalid-min-providers", detail, field=fields["min_providers"])
    if m > len(offering):
        raise ProblemError("invalid-min-providers", f"min_providers {m} exceeds the "
                           f"{len(offering)} active providers offering {entry.name!r}",
                           field=fields["min_providers"])
    if not 1 <= timeout_s <= max_timeout_s:
        raise ProblemError("invalid-timeout", f"timeout_s must be between 1 and {max_timeout_s} "
                           f"(the market's maxTimeoutS), got {timeout_s}",
                           field=fields["timeout_s"])
    pay = min_payment_wei if payment_wei is None else payment_wei
    if pay < min_payment_wei:
        raise ProblemError("payment-too-low", f"payment {pay} wei is below the price "
                           f"{min_payment_wei} wei", field=fields["payment_wei"])
    if pay > MAX_ESCROW_WEI:
        raise ProblemError("payment-too-high", f"payment {pay} wei exceeds 2**96-1 wei, the "
                           "largest escrow the market stores", field=fields["payment_wei"])
    return CheckedJob(entry, text, spec, n, t, m, timeout_s, pay, buyer)


def _check_query(entry: CatalogEntry, query: str | bytes, field: str) -> tuple[QuerySpec, str]:
    if isinstance(query, bytes):  # from calldata: posted verbatim, so check it as posted
        try:
            text = query.decode("utf-8")
        except UnicodeDecodeError:
            raise ProblemError("invalid-query", "the query is not UTF-8 text",
                               field=field) from None
        if not 1 <= len(query) <= MAX_QUERY_BYTES:
            raise ProblemError("invalid-query", f"the query must be 1 to {MAX_QUERY_BYTES} "
                               "bytes", field=field)
    try:
        spec = parse_query(query if isinstance(query, str) else text)
    except QueryError as exc:
        raise ProblemError("invalid-query", str(exc), field=field) from None
    for col in spec.columns:
        typ = entry.columns.get(col)
        if typ is None:
            raise ProblemError("unknown-column", f"dataset {entry.name!r} has no column "
                               f"{col!r}", field=field)
        if typ not in NUMERIC_TYPES:
            raise ProblemError("non-numeric-column", f"column {col!r} of {entry.name!r} has "
                               f"type {typ}; the query needs a numeric column", field=field)
    return spec, (str(spec) if isinstance(query, str) else text)
