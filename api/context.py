"""What every request handler needs, stored on ``app.state.ctx`` by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from fastapi import Request

from api.chain import Chain
from api.idempotency import IdempotencyStore
from api.index import IndexFollower
from api.models import Manifest
from api.validation import Catalog


@dataclass
class ApiContext:
    manifest: Manifest
    chain: Chain
    follower: IndexFollower
    catalog: Catalog
    store: IdempotencyStore


def get_ctx(request: Request) -> ApiContext:
    """FastAPI dependency: the running app's context."""
    return cast(ApiContext, request.app.state.ctx)
