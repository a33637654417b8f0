"""The FastAPI application: :func:`create_app` wires the chain, the job index, the idempotency
store, the routes, RFC 9457 error handling and the OpenAPI document (/openapi.json, /docs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import jobs, routes
from api.chain import Chain
from api.context import ApiContext
from api.idempotency import IdempotencyStore
from api.index import IndexFollower
from api.models import Manifest
from api.problems import PROBLEM_MEDIA_TYPE, REGISTRY, install_handlers, problem_response
from api.validation import Catalog

API_VERSION = "1.0.0"
MAX_BODY_BYTES = 64 * 1024

DESCRIPTION = """\
Buyer API of the MPC market: browse the dataset catalogue and the node registry, prepare a job
as an unsigned EIP-1559 `postJob` transaction for your wallet, submit the signed transaction,
follow the job to its result, and audit it. The chain is the source of truth: the API holds no
keys and rebuilds its job index from the market's events at start-up.

**Units.** Wei amounts are decimal strings in responses (`price_wei`, `escrow_wei`, ...);
requests accept a decimal string or an integer. Aggregates are decimal strings. Times are unix
seconds. The prepared transaction uses JSON-RPC quantities (0x-hex).

**Errors** are RFC 9457 `application/problem+json` with a stable `type` URI per kind:
""" + "\n".join(f"- `{k.slug}` ({k.status}): {k.title}" for k in REGISTRY.values())


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a 413 problem (reads the body first, so it
    also bounds chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                response = problem_response(
                    "payload-too-large", f"request bodies are limited to {self.max_bytes} bytes",
                    scope["path"])
                await response(scope, receive, send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _problem_content(schema: dict[str, Any]) -> None:
    """Move every 4xx/5xx response schema to application/problem+json."""
    for path_item in schema.get("paths", {}).values():
        for op in path_item.values():
            for code, resp in op.get("responses", {}).items():
                content = resp.get("content")
                if code[0] in "45" and content and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version,
                                 description=app.description, routes=app.routes)
            _problem_content(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def release_waiters(app: FastAPI) -> None:
    """Answer pending ``?wait`` requests now (call from the event loop's thread when a
    shutdown begins, before uvicorn waits for open requests)."""
    ctx: ApiContext | None = getattr(app.state, "ctx", None)
    if ctx is not None:
        ctx.follower.release_waiters()


def create_app(manifest: Manifest, *, state_dir: Path, chain: Chain | None = None,
               poll_interval_s: float = 0.25) -> FastAPI:
    """The API for ``manifest``'s deployment; ``state_dir`` keeps the idempotency store.

    ``chain``: an already connected :class:`~api.chain.Chain` (``python -m api`` connects first
    to fail early with a clear message); otherwise the app connects at start-up (lifespan) and
    raises :class:`~api.chain.StartupError` if the manifest does not match the chain."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = IdempotencyStore(state_dir / "idempotency.json")
    catalog = Catalog(manifest)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        c = chain
        if c is None:
            c = await asyncio.to_thread(Chain, manifest)
            await asyncio.to_thread(c.connect)
        follower = IndexFollower(c, poll_interval_s)
        await follower.sync()
        follower.start()
        app.state.ctx = ApiContext(manifest, c, follower, catalog, store)
        try:
            yield
        finally:
            await follower.stop()

    app = FastAPI(title="MPC Market buyer API", version=API_VERSION, description=DESCRIPTION,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None,
                  lifespan=lifespan)
    install_handlers(app)
    app.include_router(routes.router)
    app.include_router(jobs.router)
    app.add_middleware(BodyLimit)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
