"""Fetching signers' published transcripts over HTTP, with hard wall-clock deadlines
(:data:`FETCH_DEADLINE_S` per fetch, :data:`TRANSCRIPTS_BUDGET_S` for the whole check) and
limits on size and JSON nesting: the endpoints are untrusted."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

#: fetch(endpoint, job_id) -> the transcript JSON object, or None if it is not available.
TranscriptFetcher = Callable[[str, int], dict[str, Any] | None]


MAX_TRANSCRIPT_BYTES = 16 << 20
"""Largest transcript document the default fetcher reads (endpoints are untrusted)."""
MAX_JSON_DEPTH = 8
"""Deepest JSON nesting the default fetcher parses (a transcript is 4 levels deep)."""


def json_depth(data: bytes) -> int:
    """Deepest nesting of JSON arrays/objects in ``data`` (brackets inside strings ignored).
    Checked before parsing: eth-account's dependencies raise the recursion limit, and parsing a
    deeply nested document could then overflow the C stack."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in data:
        if in_string:
            if escaped:
                escaped = False
            elif ch == 0x5C:  # backslash
                escaped = True
            elif ch == 0x22:  # quote
                in_string = False
        elif ch == 0x22:
            in_string = True
        elif ch in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif ch in (0x5D, 0x7D):
            depth -= 1
    return deepest


FETCH_DEADLINE_S = 5.0
"""Wall-clock limit of one transcript fetch (connect, headers and body together)."""
TRANSCRIPTS_BUDGET_S = 15.0
"""Wall-clock budget of the whole ``transcripts`` check; a fetch past it counts as unavailable."""


async def _download(url: str, timeout_s: float, deadline_s: float) -> bytes | None:
    """The body of a 200 answer to GET ``url``, or None (other status, too large, too slow).
    ``timeout_s`` bounds each network operation, ``deadline_s`` the whole request: an endpoint
    dripping its headers or body a byte at a time is cut off at the deadline."""
    end = time.monotonic() + deadline_s
    async with asyncio.timeout(deadline_s):
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as client, \
                client.stream("GET", url) as response:
            if response.status_code != 200:
                return None
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_TRANSCRIPT_BYTES or time.monotonic() > end:
                    return None
            return bytes(body)


def _run_coroutine(coro: Coroutine[Any, Any, bytes | None]) -> bytes | None:
    """Run ``coro`` to completion from synchronous code (on a fresh thread when this one
    already runs an event loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def http_transcript_fetcher(timeout_s: float = 3.0,
                            deadline_s: float = FETCH_DEADLINE_S) -> TranscriptFetcher:
    """A fetcher that GETs ``{endpoint}/v1/transcripts/{job_id}``; None unless HTTP 200 with a
    JSON object of at most :data:`MAX_TRANSCRIPT_BYTES` (unreachable, 404, too large, not
    JSON), received within ``deadline_s`` seconds of wall-clock time in all (``timeout_s``
    bounds each connect/read; a slow-dripping endpoint is cut off at the deadline)."""

    def fetch(endpoint: str, job_id: int) -> dict[str, Any] | None:
        url = endpoint.rstrip("/") + f"/v1/transcripts/{job_id}"
        try:
            body = _run_coroutine(_download(url, timeout_s, deadline_s))
        except (httpx.HTTPError, httpx.InvalidURL, TimeoutError):
            return None
        if body is None or json_depth(body) > MAX_JSON_DEPTH:
            return None
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None

    return fetch
