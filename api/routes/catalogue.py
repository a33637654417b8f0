"""The catalogue: ``GET /v1/datasets`` (from the manifest, priced by the market) and
``GET /v1/nodes`` (the registry, from the index and ``getNode``)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter

from api.deps import Ctx
from api.models import Column, Dataset, DatasetList, Node, NodeList
from api.problems import openapi_problem_responses
from api.services.validation import active_providers
from offchain.chain.market import NodeInfo, NodeStatus

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get("/datasets", response_model=DatasetList,
            summary="The dataset catalogue with the price of a job")
async def datasets(ctx: Ctx) -> DatasetList:
    """Every dataset of the manifest: columns and types, providers (and how many of them are
    active nodes now), and the price of a job (the market's ``minPaymentWei``, decimal
    string). Needs no RPC call, so it answers while the chain is unreachable."""
    active = ctx.follower.index.active_nodes()
    price = str(ctx.chain.config.min_payment_wei)
    return DatasetList(items=[
        Dataset(name=e.name, dataset_id="0x" + e.dataset_id.hex(),
                columns=[Column(name=c, type=t) for c, t in e.columns.items()],  # type: ignore[arg-type]
                providers=e.providers, active_providers=len(active_providers(e, active)),
                price_wei=price)
        for e in ctx.catalog.entries])


@router.get("/nodes", response_model=NodeList, responses=openapi_problem_responses(502),
            summary="Registered nodes")
async def nodes(ctx: Ctx) -> NodeList:
    """Every registered node (Active or Exiting), ascending by address: the list from the
    registry's events, stake, status and endpoint read from ``getNode``."""
    index = ctx.follower.index
    records = sorted(index.nodes.values(), key=lambda n: int(n.address, 16))
    infos: list[NodeInfo] = list(await asyncio.gather(
        *(ctx.chain.run(ctx.chain.market.get_node, n.address) for n in records)))
    items = []
    for rec, info in zip(records, infos, strict=True):
        if info.status is NodeStatus.NONE:  # exited in a block the index has not read yet
            continue
        exiting = info.status is NodeStatus.EXITING
        items.append(Node(
            address=info.address, stake_wei=str(info.stake_wei),
            status="exiting" if exiting else "active", endpoint=info.endpoint,
            exit_at=info.exit_at if exiting else None,
            registered_block=rec.registered_block,
            datasets=ctx.catalog.node_datasets.get(info.address, []),
            jobs_served=index.served[info.address]))
    return NodeList(items=items)
