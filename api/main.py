"""The FastAPI application: :func:`create_app` wires the routes, RFC 9457 error handling, the
request body limit and the OpenAPI document (/openapi.json, /docs); its lifespan owns what lives
as long as the server: the chain connection, the job index follower (synced before the first
request, polled in the background, stopped at shutdown) and the audit thread pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ApiContext
from api.models import Manifest
from api.problems import PROBLEM_MEDIA_TYPE, REGISTRY, install_handlers, problem_response
from api.routes import catalogue, jobs, service
from api.services.chain import Chain
from api.services.idempotency import IdempotencyStore
from api.services.index import IndexFollower
from api.services.validation import Catalog

API_VERSION = "1.0.0"
MAX_BODY_BYTES = 64 * 1024
#: Threads of the audit pool: at most this many audits run at a time (the others queue, and the
#: queueing counts against ``api.routes.jobs.AUDIT_TIMEOUT_S``).
AUDIT_WORKERS = 2

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


def _lifespan(manifest: Manifest, chain: Chain | None, catalog: Catalog,
              store: IdempotencyStore, poll_interval_s: float,
              ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up: connect ``chain`` if not given (blocking calls in a worker thread; raises
    StartupError), build the job index from the chain (raises ProblemError
    ``chain-unavailable``), start following it, start the audit pool, and set
    ``app.state.ctx``. Shutdown: stop the follower and the audit pool (running audits are not
    waited for; queued ones are cancelled)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        c = chain
        if c is None:
            c = await asyncio.to_thread(Chain, manifest)
            await asyncio.to_thread(c.connect)
        follower = IndexFollower(c, poll_interval_s)
        await follower.sync()
        follower.start()
        audit_pool = ThreadPoolExecutor(AUDIT_WORKERS, thread_name_prefix="audit")
        app.state.ctx = ApiContext(manifest, c, follower, catalog, store, audit_pool)
        try:
            yield
        finally:
            await follower.stop()
            audit_pool.shutdown(wait=False, cancel_futures=True)

    return lifespan


def create_app(manifest: Manifest, *, state_dir: Path, chain: Chain | None = None,
               poll_interval_s: float = 0.25) -> FastAPI:
    """The API for ``manifest``'s deployment; ``state_dir`` keeps the idempotency store
    (created if missing; raises OSError if it cannot be, ValueError if the store in it is
    not one).

    ``chain``: an already connected :class:`~api.services.chain.Chain` (``python -m api``
    connects first to fail early with a clear message); otherwise the app connects at start-up
    (lifespan) and raises :class:`~api.services.chain.StartupError` if the manifest does not
    match the chain. ``poll_interval_s``: seconds between the index's polls of the chain."""
    state_dir.mkdir(parents=True, exist_ok=True)
    store = IdempotencyStore(state_dir / "idempotency.json")
    app = FastAPI(title="MPC Market buyer API", version=API_VERSION, description=DESCRIPTION,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None,
                  lifespan=_lifespan(manifest, chain, Catalog(manifest), store,
                                     poll_interval_s))
    install_handlers(app)
    for module in (service, catalogue, jobs):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
