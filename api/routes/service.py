"""``GET /v1/health``: liveness and the chain the API serves."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Ctx
from api.models import Health
from api.problems import openapi_problem_responses

router = APIRouter(prefix="/v1", tags=["service"])


@router.get("/health", response_model=Health, responses=openapi_problem_responses(502),
            summary="Liveness and the chain the API serves")
async def health(ctx: Ctx) -> Health:
    """The chain id and market address of the deployment, the chain's latest block (one RPC
    call: a 502 ``chain-unavailable`` problem when the node does not answer) and the last block
    the job index has read."""
    chain = ctx.chain
    block = await chain.run(lambda: int(chain.w3.eth.block_number))
    return Health(status="ok", chain_id=chain.chain_id, market=chain.address, block=block,
                  indexed_block=ctx.follower.head_block)
