"""The request dependencies, defined once: :class:`ApiContext` (what every handler needs, built
by the lifespan in :mod:`api.main` and kept on ``app.state.ctx``) and the ``Ctx`` alias that a
route declares to receive it (``async def health(ctx: Ctx)``)."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from api.models import Manifest
from api.services.chain import Chain
from api.services.idempotency import IdempotencyStore
from api.services.index import IndexFollower
from api.services.validation import Catalog


@dataclass
class ApiContext:
    """The running API's services. ``audit_pool``: the executor that audits run in (never the
    loop's default executor, which every other RPC call of the API uses); owned, started and
    shut down by the lifespan."""

    manifest: Manifest
    chain: Chain
    follower: IndexFollower
    catalog: Catalog
    store: IdempotencyStore
    audit_pool: Executor


def get_ctx(request: Request) -> ApiContext:
    """FastAPI dependency: the running app's context (set by the lifespan before the first
    request is served)."""
    return cast(ApiContext, request.app.state.ctx)


#: Declare ``ctx: Ctx`` in a route to receive the :class:`ApiContext`.
Ctx = Annotated[ApiContext, Depends(get_ctx)]
