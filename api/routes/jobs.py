"""``/v1/jobs*``: prepare an unsigned postJob, submit the signed one, list and read jobs, audit
one. Every error is raised (a :class:`~api.problems.ProblemError`, or another
:class:`~offchain.errors.MarketError` that :mod:`api.problems` maps) and rendered once, by the
API's exception handler."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from api.deps import ApiContext, Ctx
from api.models import (
    Address,
    AuditReport,
    Job,
    JobPage,
    JobParams,
    JobStatusName,
    JobSummary,
    PreparedJob,
    PrepareJob,
    SubmitJob,
    SubmittedJob,
)
from api.problems import PROBLEM_MEDIA_TYPE, ProblemError, openapi_problem_responses
from api.services import txs, views
from api.services.idempotency import fingerprint, parse_key
from api.services.index import JobRecord
from api.services.validation import check_job

router = APIRouter(prefix="/v1", tags=["jobs"])

RECEIPT_TIMEOUT_S = 60.0
MAX_WAIT_S = 120
MAX_JOB_ID = 2**256 - 1
#: Audits run in the lifespan's pool (``ApiContext.audit_pool``, never the default executor that
#: every other RPC call of the API uses) and are cut off after AUDIT_TIMEOUT_S (queueing
#: included) with a 504.
AUDIT_TIMEOUT_S = 60.0
_BODY_FIELDS = {k: f"body.{k}" for k in ("dataset", "query", "committee_size", "threshold",
                                          "min_providers", "timeout_s", "payment_wei")}
_TX_FIELDS = {"dataset": "signed_tx.dataset_id", "query": "signed_tx.query",
              "committee_size": "signed_tx.committee_size", "threshold": "signed_tx.threshold",
              "min_providers": "signed_tx.min_providers", "timeout_s": "signed_tx.timeout_s",
              "payment_wei": "signed_tx.value"}


def _limits(ctx: ApiContext) -> dict[str, Any]:
    cfg = ctx.chain.config
    return {"min_payment_wei": cfg.min_payment_wei, "max_timeout_s": cfg.max_timeout_s,
            "active": ctx.follower.index.active_nodes()}


@router.post("/jobs/prepare", response_model=PreparedJob,
             responses=openapi_problem_responses(413, 422, 502),
             summary="Validate a job and build its unsigned postJob transaction")
async def prepare_job(body: PrepareJob, ctx: Ctx) -> PreparedJob:
    """Checks the job against the catalogue (dataset, query columns and their types), the
    registry (enough active nodes and providers) and the contract's rules (N >= 2T+1, N <= 32,
    timeout <= maxTimeoutS, payment >= price), then returns an unsigned EIP-1559 transaction
    (gas estimated, nonce and fees filled in) for the buyer's wallet to sign."""
    p = check_job(ctx.catalog, **_limits(ctx), dataset=body.dataset, query=body.query,
                  committee_size=body.committee_size, threshold=body.threshold,
                  min_providers=body.min_providers, timeout_s=body.timeout_s,
                  payment_wei=body.payment_wei, buyer=body.buyer, fields=_BODY_FIELDS)
    tx = await ctx.chain.run(txs.build_post_job, ctx.chain, p)
    return PreparedJob(tx=tx, job=JobParams(
        dataset=p.dataset.name, dataset_id="0x" + p.dataset.dataset_id.hex(), query=p.query,
        committee_size=p.committee_size, threshold=p.threshold, min_providers=p.min_providers,
        timeout_s=p.timeout_s, payment_wei=str(p.payment_wei), buyer=p.buyer))


_SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": SubmittedJob, "description": "The transaction was already on chain: the "
          "job it created (nothing was broadcast)"},
    201: {"model": SubmittedJob, "description": "Job posted",
          "headers": {"Location": {"schema": {"type": "string"}},
                      "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                              "description": "present on a replayed response"}}},
    **openapi_problem_responses(409, 413, 422, 502, 504),
}


@router.post("/jobs", status_code=201, response_model=SubmittedJob, responses=_SUBMIT_RESPONSES,
             summary="Broadcast a signed postJob transaction")
async def submit_job(body: SubmitJob, request: Request, ctx: Ctx,
                     idempotency_key: Annotated[str | None, Header(
                         max_length=300, description="retry-safe key (1..255 visible ASCII)")]
                     = None) -> JSONResponse:
    """Decodes and checks the signed transaction before broadcasting it (type 2, this chain,
    this market, postJob with parameters that pass the same checks as prepare, sender from
    the signature), then waits for the receipt and answers with the job id."""
    key = None if idempotency_key is None else parse_key(idempotency_key)
    fp = fingerprint({"signed_tx": body.signed_tx.lower()})
    store = ctx.store
    if key is not None:
        stored = store.get(key)
        if stored is not None:
            if stored.fingerprint != fp:
                raise ProblemError("idempotency-key-reuse", f"Idempotency-Key {key!r} was used "
                                   "with another request body", field="header.Idempotency-Key")
            if not stored.pending:  # pending: the same transaction, followed below
                media = PROBLEM_MEDIA_TYPE if stored.status >= 400 else "application/json"
                return JSONResponse(stored.body, status_code=stored.status, media_type=media,
                                    headers={**stored.headers, "Idempotent-Replayed": "true"})
        if key in store.in_flight:
            raise ProblemError("idempotency-key-in-use", f"a request with Idempotency-Key "
                               f"{key!r} is still being processed; retry later",
                               headers={"Retry-After": "1"})
        store.in_flight.add(key)
    try:
        status, payload = await _submit(ctx, body.signed_tx, key, fp)
    except ProblemError as exc:
        if key is not None and exc.kind.slug == "transaction-reverted":
            store.put(key, fp, exc.kind.status, exc.body(request.url.path))
        raise
    finally:
        if key is not None:
            store.in_flight.discard(key)
    headers = {"Location": payload["links"]["self"]}
    if key is not None:
        store.put(key, fp, status, payload, headers)
    return JSONResponse(payload, status_code=status, headers=headers)


async def _submit(ctx: ApiContext, signed_tx: str, key: str | None = None,
                  fp: str = "") -> tuple[int, dict[str, Any]]:
    """``key``: the Idempotency-Key, bound to ``fp`` and the transaction before it is
    broadcast (or followed in the pool)."""
    chain = ctx.chain
    tx = txs.decode_signed(signed_tx)
    dataset_id, query, n, t, m, timeout_s = txs.check_envelope(chain, tx)
    status = 200
    receipt = await chain.run(txs.find_receipt, chain, tx.hash)
    if receipt is None:  # not mined yet (else: answer with the job it created, as it is)
        check_job(ctx.catalog, **_limits(ctx), dataset=dataset_id, query=query,
                  committee_size=n, threshold=t, min_providers=m, timeout_s=timeout_s,
                  payment_wei=tx.value, buyer=tx.sender, fields=_TX_FIELDS)
        status = 201
        if await chain.run(txs.in_pool, chain, tx.hash):
            if key is not None:
                ctx.store.reserve(key, fp, tx.hash)
        else:
            try:
                await chain.run(txs.preflight, chain, tx)
                if key is not None:
                    ctx.store.reserve(key, fp, tx.hash)
                try:
                    await chain.run(txs.broadcast, chain, tx)
                except ProblemError as exc:
                    if key is not None and exc.kind.slug != "chain-unavailable":
                        ctx.store.release(key)  # refused by the node: nothing was broadcast
                    raise
            except ProblemError as exc:
                # A concurrent retry of this very transaction may have got it mined meanwhile:
                # then its nonce is used by itself, and the answer is the job it created.
                if exc.kind.slug != "nonce-conflict":
                    raise
                receipt = await chain.run(txs.find_receipt, chain, tx.hash)
                if receipt is None:
                    raise
                status = 200
        loop = asyncio.get_running_loop()
        end = loop.time() + RECEIPT_TIMEOUT_S
        while receipt is None:
            if loop.time() > end:
                raise ProblemError("transaction-pending", f"{tx.hash} was broadcast but not "
                                   f"mined within {RECEIPT_TIMEOUT_S:.0f} s; retry the request "
                                   "(with the same Idempotency-Key) to follow it",
                                   tx_hash=tx.hash)
            await asyncio.sleep(0.05)
            receipt = await chain.run(txs.find_receipt, chain, tx.hash)
    job_id = await chain.run(txs.job_of_receipt, chain, tx, receipt)
    with contextlib.suppress(ProblemError):
        await ctx.follower.sync()  # so that GET /v1/jobs/{id} knows the job at once
    return status, {"job_id": job_id, "tx_hash": tx.hash,
                    "links": views.links(job_id).model_dump()}


async def _find(ctx: ApiContext, job_id: int) -> JobRecord:
    job = ctx.follower.index.jobs.get(job_id)
    if job is None:  # maybe posted since the last poll
        await ctx.follower.sync(fresh_since=asyncio.get_running_loop().time())
        job = ctx.follower.index.jobs.get(job_id)
    if job is None:
        raise ProblemError("job-not-found", f"no job {job_id} on market {ctx.chain.address}")
    return job


JobId = Annotated[int, Path(ge=1, le=MAX_JOB_ID, description="job id (1, 2, ...)")]


@router.get("/jobs/{job_id}", response_model=Job,
            responses=openapi_problem_responses(404, 422, 502), summary="A job")
async def get_job(job_id: JobId, ctx: Ctx,
                  wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S, description=(
                      "block up to this many seconds until the job is final "
                      "(finalized or refunded)"))] = 0) -> Job:
    job = await _find(ctx, job_id)
    if wait > 0 and not job.final:
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while not job.final and not ctx.follower.stopping.is_set() and \
                (left := end - loop.time()) > 0:
            await ctx.follower.wait_changed(left)
    return await views.detail(ctx, job)


@router.get("/jobs/{job_id}/audit", response_model=AuditReport,
            responses=openapi_problem_responses(404, 422, 502, 503, 504),
            summary="Audit a job from chain data alone")
async def audit(job_id: JobId, ctx: Ctx) -> JSONResponse:
    """The report of ``offchain.audit.audit_job``: the job's parameters, escrow, beacon round
    and committee draw, provider and committee signatures, result and proof hashes, and the
    statistic, each recomputed from chain data (and the signers' published transcripts).
    ``ok`` is true only if every check passed; a failed check is still a 200. An audit that
    does not finish within 60 s (at most 2 run at a time; waiting counts) is a 504."""
    await _find(ctx, job_id)
    try:
        from offchain import audit as auditor  # lazy: the auditor is an optional component
    except ImportError as exc:
        raise ProblemError("audit-unavailable", f"the auditor is not installed: {exc}") from None
    chain = ctx.chain
    try:  # an AuditError is the audit-failed problem (api.problems)
        report = await asyncio.wait_for(
            chain.run(lambda: auditor.audit_job(chain.w3, chain.address, job_id,
                                                from_block=chain.deploy_block),
                      executor=ctx.audit_pool), AUDIT_TIMEOUT_S)
    except TimeoutError:
        raise ProblemError("audit-timeout", f"the audit of job {job_id} did not finish within "
                           f"{AUDIT_TIMEOUT_S:.0f} s; retry later") from None
    body: Any = report.to_json()
    if isinstance(body, str):
        body = json.loads(body)
    return JSONResponse({**dict(body), "ok": bool(report.ok)})


@router.get("/jobs", response_model=JobPage, responses=openapi_problem_responses(422),
            summary="Jobs, newest first")
async def list_jobs(
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_JOB_ID, description=(
        "only jobs with a smaller id (the previous page's next_cursor)"))] = None,
    buyer: Annotated[Address | None, Query()] = None,
    status: Annotated[JobStatusName | None, Query()] = None,
    dataset: Annotated[str | None, Query(max_length=128)] = None,
) -> JobPage:
    """Ordered by job id, descending (newest first): ids only grow, so a cursor page stays
    stable while new jobs arrive."""
    now = ctx.follower.head_timestamp
    items: list[JobSummary] = []
    next_cursor = None
    for job_id in sorted(ctx.follower.index.jobs, reverse=True):
        if cursor is not None and job_id >= cursor:
            continue
        job = ctx.follower.index.jobs[job_id]
        if buyer is not None and job.buyer != buyer:
            continue
        if status is not None and job.status(now) != status:
            continue
        if dataset is not None:
            entry = ctx.catalog.by_id.get(job.dataset_id)
            if entry is None or entry.name != dataset:
                continue
        if len(items) == limit:
            next_cursor = items[-1].job_id
            break
        items.append(views.summary(ctx, job))
    params = {"limit": limit, "buyer": buyer, "status": status, "dataset": dataset}
    query = urlencode({k: v for k, v in params.items() if v is not None})
    links = {"self": f"/v1/jobs?{query}" + (f"&cursor={cursor}" if cursor else "")}
    if next_cursor is not None:
        links["next"] = f"/v1/jobs?{query}&cursor={next_cursor}"
    return JobPage(items=items, next_cursor=next_cursor, links=links)
