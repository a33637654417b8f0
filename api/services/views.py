"""Index records rendered as API responses (jobs with their result and transactions)."""

from __future__ import annotations

import asyncio

from api.deps import ApiContext
from api.models import Job, JobLinks, JobResult, JobSummary, Transaction
from api.services.index import JobRecord, TxRef, signers
from offchain.encoding.query import QueryError, StatisticError, parse_query, statistic


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def links(job_id: int) -> JobLinks:
    return JobLinks(self=f"/v1/jobs/{job_id}", audit=f"/v1/jobs/{job_id}/audit")


def summary(ctx: ApiContext, job: JobRecord) -> JobSummary:
    entry = ctx.catalog.by_id.get(job.dataset_id)
    return JobSummary(
        job_id=job.job_id, status=job.status(ctx.follower.head_timestamp),  # type: ignore[arg-type]
        dataset=entry.name if entry else None, dataset_id=_hex(job.dataset_id),
        query=job.query, buyer=job.buyer, committee_size=job.committee_size,
        threshold=job.threshold, min_providers=job.min_providers,
        escrow_wei=str(job.escrow_wei), deadline=job.deadline, posted_block=job.posted.block,
        links=links(job.job_id))


def result(job: JobRecord) -> JobResult | None:
    ev = job.finalized
    if ev is None:
        return None
    aggregates = [int(a) for a in ev["aggregates"]]
    value: int | float | list[int] | None = None
    error: str | None = None
    try:
        value = statistic(parse_query(job.query), aggregates)
    except (QueryError, StatisticError) as exc:
        error = str(exc)
    mask = int(ev["signer_mask"])
    return JobResult(
        aggregates=[str(a) for a in aggregates], statistic=value, statistic_error=error,
        result_hash=_hex(ev["result_hash"]), proof_hash=_hex(ev["proof_hash"]),
        inputs_hash=_hex(ev["inputs_hash"]), provider_count=int(ev["provider_count"]),
        signer_mask=mask, signers=signers(job.committee or [], mask),
        reward_per_signer_wei=str(int(ev["reward_per_signer_wei"])))


def tx_refs(ctx: ApiContext, job: JobRecord) -> list[TxRef]:
    """postJob, the beacon round(s) that drew the committee (commitRound, reveal, recover,
    failRound), assignCommittee, finalizeJob / reclaimEscrow: in chain order, one per hash."""
    index = ctx.follower.index
    refs = [job.posted]
    for round_id in index.round_chain(job.seed_round, job.committee_round):
        rnd = index.rounds.get(round_id)
        if rnd is not None:
            refs.extend(rnd.txs.values())
    refs.extend(r for r in (job.assigned, job.finalized_tx, job.refund_tx) if r is not None)
    seen: dict[str, TxRef] = {}
    for ref in sorted(refs, key=lambda r: (r.block, r.log_index)):
        seen.setdefault(ref.hash, ref)
    return list(seen.values())


async def _transaction(ctx: ApiContext, ref: TxRef) -> Transaction:
    chain = ctx.chain
    block, gas_used, _status = await chain.run(chain.receipt_info, ref.hash)
    timestamp = await chain.run(chain.block_timestamp, block)
    return Transaction(name=ref.name, hash=ref.hash, block=block, gas_used=gas_used,
                       timestamp=timestamp)


async def detail(ctx: ApiContext, job: JobRecord) -> Job:
    txs = await asyncio.gather(*(_transaction(ctx, r) for r in tx_refs(ctx, job)))
    return Job(
        **summary(ctx, job).model_dump(),
        seed_round=job.seed_round, committee=job.committee, committee_round=job.committee_round,
        result=result(job),
        refund_wei=str(job.refund_wei) if job.refund_wei is not None else None,
        transactions=list(txs))
