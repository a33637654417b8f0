"""Peer transport: sealed envelopes POSTed as JSON over HTTP between node processes.

The server side is a Starlette app served by uvicorn, which binds the port itself (port 0 picks a
free one; ``serve`` returns it so the node can register its endpoint on chain); the client side is
an ``httpx.AsyncClient`` with keep-alive connections. The transport moves opaque envelopes only:
authentication, decryption, replay and role checks happen in the node (``offchain.node.main``
dispatching to ``offchain.node.jobs`` and ``offchain.node.beacon``), which answers with one of
the statuses below.

    POST /v1/peer        body: envelope JSON (<= MAX_BODY_BYTES)
        202  accepted                      400  malformed / bad signature / bad payload
        403  sender not allowed            404  job not (yet) known to this node
        409  replayed message              413  body too large
    GET  /v1/health      200 {"address": ..., "jobs": n}
    GET  /v1/transcripts/{job_id}
        200  the node's saved transcript of the job (``offchain.wire.transcript`` JSON: envelope
             digests and sealed envelopes, never plaintext), for auditors (``offchain.audit``)
        404  no transcript for that job (or job_id not a uint256)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from offchain.errors import MarketError

MAX_BODY_BYTES = 1 << 20
RETRY_STATUSES = (404,)

#: handle(raw envelope bytes) -> (HTTP status, short reason). The body is handed over unparsed:
#: ``offchain.wire.envelope`` bounds its size and nesting before any JSON parsing (eth-account's
#: dependencies raise the recursion limit, so ``json.loads`` of deeply nested input could
#: overflow the C stack).
EnvelopeHandler = Callable[[bytes], Awaitable[tuple[int, str]]]

#: transcript(job_id) -> the transcript's JSON bytes, or None if the node has none.
TranscriptReader = Callable[[int], bytes | None]


class DeliveryError(MarketError, RuntimeError):
    """A message could not be delivered before its deadline."""


def make_app(handle: EnvelopeHandler, health: Callable[[], dict[str, Any]],
             transcript: TranscriptReader | None = None) -> Starlette:
    """The node's HTTP app; ``handle`` decides every envelope's fate; ``transcript`` serves the
    saved job transcripts (none are served without it)."""

    async def peer(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"error": "body too large"}, status_code=413)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"error": "body too large"}, status_code=413)
        status, reason = await handle(body)
        return JSONResponse({"status": reason}, status_code=status)

    async def healthz(request: Request) -> Response:
        return JSONResponse(health())

    async def transcripts(request: Request) -> Response:
        raw = str(request.path_params["job_id"])
        data = None
        # decimal digits of a uint256 only (checked before int(): no huge conversions)
        if transcript is not None and raw.isascii() and raw.isdigit() and len(raw) <= 78 \
                and int(raw) < 2**256:
            data = await asyncio.to_thread(transcript, int(raw))
        if data is None:
            return JSONResponse({"error": "no transcript for this job"}, status_code=404)
        return Response(data, media_type="application/json")

    return Starlette(routes=[Route("/v1/peer", peer, methods=["POST"]),
                             Route("/v1/health", healthz, methods=["GET"]),
                             Route("/v1/transcripts/{job_id}", transcripts,
                                   methods=["GET"])])


async def serve(app: Starlette, host: str, port: int) -> tuple[uvicorn.Server, int]:
    """Start uvicorn on (host, port) in the running loop (port 0 picks a free port); returns the
    server (set ``server.should_exit = True`` to stop it) and the bound port.

    uvicorn binds the socket itself: handing it a socket bound by us left TCP_NODELAY off on the
    accepted connections, and every keep-alive request then stalled ~40 ms on delayed ACKs.
    """
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                            access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.get_running_loop().create_task(server.serve())
    while not server.started:
        if task.done():  # bind failed: surface uvicorn's error
            task.result()
            raise OSError(f"cannot listen on {host}:{port}")
        await asyncio.sleep(0.005)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, int(bound)


class PeerClient:
    """Sends envelopes to peers' ``/v1/peer`` endpoints, retrying while the peer has not yet
    seen the job (404) or cannot be reached, until ``deadline_s`` seconds have passed."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self._client = httpx.AsyncClient(timeout=timeout_s, trust_env=False)

    async def send(self, endpoint: str, envelope: dict[str, Any], deadline_s: float = 10.0) -> int:
        """POST one envelope. Returns the final HTTP status (202 on success). Raises
        DeliveryError if the peer stayed unreachable or kept answering 404 until the deadline."""
        url = endpoint.rstrip("/") + "/v1/peer"
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        delay = 0.01
        last = "no attempt"
        while True:
            try:
                response = await self._client.post(url, json=envelope)
                if response.status_code not in RETRY_STATUSES:
                    return response.status_code
                last = f"HTTP {response.status_code}"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if loop.time() + delay > end:
                raise DeliveryError(f"{url}: {last}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    async def health(self, endpoint: str) -> dict[str, Any]:
        """GET a peer's /v1/health. Raises httpx.HTTPError if unreachable or not 200."""
        response = await self._client.get(endpoint.rstrip("/") + "/v1/health")
        response.raise_for_status()
        return dict(response.json())

    async def aclose(self) -> None:
        """Close the keep-alive connections (at shutdown)."""
        await self._client.aclose()
