"""``python -m api --deployment FILE [--host 127.0.0.1] [--port 0] [--state-dir DIR]``

Serves the buyer API with uvicorn. Once it listens (the job index built from the chain), it
prints ONE JSON line to stdout, ``{"event": "ready", "url": "http://HOST:PORT", "pid": N}``;
logs go to stderr. A bad manifest, an unreachable chain or a chain that does not match the
manifest prints one ``error: ...`` line on stderr and exits with status 2 (bad input) or 1.
SIGTERM / SIGINT stop it cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from pathlib import Path
from types import FrameType

import uvicorn
from fastapi import FastAPI

from api.main import create_app, release_waiters
from api.models import ManifestError, load_manifest
from api.services.chain import Chain, StartupError

_LOG_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain",
                            "stream": "ext://sys.stderr"}},
    "loggers": {"uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
                "uvicorn.access": {"handlers": ["stderr"], "level": "WARNING",
                                   "propagate": False},
                "mpc": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m api", description="MPC market buyer API")
    p.add_argument("--deployment", required=True, type=Path, help="deployment manifest (JSON)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="idempotency store (default: api-state next to the manifest)")
    p.add_argument("--poll-interval", type=float, default=0.25, help="seconds between polls")
    return p


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr, flush=True)
    return code


class _Server(uvicorn.Server):
    """On SIGTERM / SIGINT, first let pending ``?wait`` requests answer (with the job as it
    is), so the graceful shutdown does not have to cut them off."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        with contextlib.suppress(RuntimeError):  # no running loop: nothing is waiting
            loop = asyncio.get_running_loop()
            loop.call_soon_threadsafe(release_waiters, self._app)
        super().handle_exit(sig, frame)


async def _run(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits on a startup failure (e.g. the port is taken)
        return


async def _serve(server: uvicorn.Server, host: str) -> int:
    task = asyncio.get_running_loop().create_task(_run(server))
    while not server.started:
        if task.done():
            task.result()
            return _fail("the server did not start (see the log above)", 1)
        await asyncio.sleep(0.01)
    port = int(server.servers[0].sockets[0].getsockname()[1])
    shown = f"[{host}]" if ":" in host else host
    print(json.dumps({"event": "ready", "url": f"http://{shown}:{port}", "pid": os.getpid()}),
          flush=True)
    await task
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        return _fail(f"--port must be 0..65535, got {args.port}", 2)
    try:
        manifest = load_manifest(args.deployment)
    except ManifestError as exc:
        return _fail(str(exc), 2)
    state_dir = args.state_dir or args.deployment.resolve().parent / "api-state"
    try:
        chain = Chain(manifest)
        chain.connect()
        app = create_app(manifest, state_dir=state_dir, chain=chain,
                         poll_interval_s=args.poll_interval)
    except StartupError as exc:
        return _fail(str(exc), 1)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot use state dir {state_dir}: {exc}", 1)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_config=_LOG_CONFIG,
                            access_log=False, lifespan="on", timeout_graceful_shutdown=3)
    server = _Server(config, app)
    try:
        return asyncio.run(_serve(server, args.host))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
