"""RFC 9457 problem details: the registry of error kinds and the handlers that render them.

Every error response of the API is ``application/problem+json``::

    {"type": "https://mpc-market.example/problems/job-not-found", "title": "Job not found",
     "status": 404, "detail": "no job 99 on market 0x5FbD...", "instance": "/v1/jobs/99"}

``type`` is stable per error kind (the registry below; clients switch on it, never on
``detail``). A 422 also carries ``errors: [{"field": "body.committee_size", "message": ...}]``
naming each offending field (``body.*``, ``query.*``, ``path.*``, ``header.*``, or
``signed_tx.*`` for a parameter decoded from a signed transaction's calldata). Other extension
members: ``error`` / ``error_args`` (a contract's custom error), ``tx_hash``.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.services.idempotency import IdempotencyKeyError
from offchain.errors import MarketError

PROBLEM_BASE = "https://mpc-market.example/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

_log = logging.getLogger("mpc.api")


@dataclass(frozen=True)
class ProblemKind:
    """One error kind: its ``type`` URI is PROBLEM_BASE + slug."""

    slug: str
    status: int
    title: str

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.slug


_KINDS = [
    # routing and request shape
    ProblemKind("not-found", 404, "No such resource"),
    ProblemKind("method-not-allowed", 405, "Method not allowed"),
    ProblemKind("payload-too-large", 413, "Request body too large"),
    ProblemKind("validation-error", 422, "Invalid request"),
    # resources
    ProblemKind("job-not-found", 404, "Job not found"),
    # job parameters (prepare, and the calldata of a signed postJob)
    ProblemKind("unknown-dataset", 422, "Unknown dataset"),
    ProblemKind("invalid-query", 422, "Invalid query"),
    ProblemKind("unknown-column", 422, "Unknown column"),
    ProblemKind("non-numeric-column", 422, "Column is not numeric"),
    ProblemKind("invalid-committee", 422, "Invalid committee size or threshold"),
    ProblemKind("too-few-nodes", 422, "Not enough active nodes for the committee"),
    ProblemKind("invalid-min-providers", 422, "Invalid minimum number of providers"),
    ProblemKind("invalid-timeout", 422, "Invalid timeout"),
    ProblemKind("payment-too-low", 422, "Payment below the job price"),
    ProblemKind("payment-too-high", 422, "Payment above the contract's limit"),
    ProblemKind("insufficient-funds", 422, "Buyer cannot pay value and gas"),
    # signed transactions
    ProblemKind("malformed-transaction", 422, "Malformed signed transaction"),
    ProblemKind("wrong-chain", 422, "Transaction for another chain"),
    ProblemKind("wrong-contract", 422, "Transaction to another contract"),
    ProblemKind("wrong-function", 422, "Transaction does not call postJob"),
    ProblemKind("gas-too-low", 422, "Gas limit below the estimate"),
    ProblemKind("nonce-conflict", 409, "Nonce does not follow the sender's transactions"),
    ProblemKind("transaction-rejected", 422, "Transaction rejected by the chain node"),
    ProblemKind("transaction-would-revert", 422, "Transaction would revert"),
    ProblemKind("transaction-reverted", 422, "Transaction reverted"),
    ProblemKind("transaction-pending", 504, "Transaction not mined in time"),
    # idempotency
    ProblemKind("idempotency-key-reuse", 422, "Idempotency key reused with another body"),
    ProblemKind("idempotency-key-in-use", 409, "Request with this idempotency key in progress"),
    # server side
    ProblemKind("chain-unavailable", 502, "Chain node unreachable"),
    ProblemKind("audit-unavailable", 503, "Audit not available"),
    ProblemKind("audit-failed", 502, "Audit could not read the chain"),
    ProblemKind("audit-timeout", 504, "Audit did not finish in time"),
    ProblemKind("internal-error", 500, "Internal error"),
]

#: slug -> kind; the stable error vocabulary of the API (listed in the OpenAPI description).
REGISTRY: dict[str, ProblemKind] = {k.slug: k for k in _KINDS}


class ProblemError(MarketError):
    """Raise anywhere in a handler to answer with a problem of kind ``slug``.

    ``errors``: (field, message) pairs for a 422; ``extra``: further extension members.
    """

    def __init__(self, slug: str, detail: str, *, field: str | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        if slug not in REGISTRY:
            raise KeyError(f"unregistered problem kind {slug!r}")
        super().__init__(detail)
        self.kind = REGISTRY[slug]
        self.detail = detail
        if field is None and self.kind.status == 422:
            field = "body"  # every 422 names a field; "body" when no single one is to blame
        self.errors = [{"field": field, "message": detail}] if field else None
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str) -> dict[str, Any]:
        return problem_body(self.kind.slug, self.detail, instance, errors=self.errors,
                            **self.extra)


def problem_body(slug: str, detail: str, instance: str, *,
                 errors: list[dict[str, str]] | None = None, **extra: Any) -> dict[str, Any]:
    kind = REGISTRY[slug]
    body: dict[str, Any] = {"type": kind.type_uri, "title": kind.title, "status": kind.status,
                            "detail": detail, "instance": instance}
    if errors:
        body["errors"] = errors
    body.update(extra)
    return body


def problem_response(slug: str, detail: str, instance: str, *,
                     errors: list[dict[str, str]] | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = problem_body(slug, detail, instance, errors=errors, **extra)
    return JSONResponse(body, status_code=REGISTRY[slug].status, headers=headers,
                        media_type=PROBLEM_MEDIA_TYPE)


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "body" and parts[1].isdigit() and len(parts) == 2:
        return "body"  # a JSON decode error: FastAPI reports the character offset
    if parts and parts[0] == "header" and len(parts) == 2:
        return "header." + "-".join(w.capitalize() for w in parts[1].split("-"))
    return ".".join(parts) or "body"


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid value"))
        if err.get("type") == "json_invalid":
            msg = "request body is not valid JSON"
        out.append({"field": _field(tuple(err.get("loc", ("body",)))), "message": msg})
    return out


def as_problem(exc: MarketError) -> ProblemError | None:
    """The problem that answers ``exc``: a :class:`ProblemError` itself; an
    ``IdempotencyKeyError`` (:mod:`api.services.idempotency`) a 422 ``validation-error`` on
    ``header.Idempotency-Key``; an ``AuditError`` (:mod:`offchain.audit`) a 502
    ``audit-failed``; None for any other MarketError (the handler answers 500).

    The auditor is imported lazily by its route, so its error class is looked up in
    ``sys.modules``: an AuditError can only exist once its module was imported."""
    if isinstance(exc, ProblemError):
        return exc
    if isinstance(exc, IdempotencyKeyError):
        return ProblemError("validation-error", f"Idempotency-Key {exc}",
                            field="header.Idempotency-Key")
    report = sys.modules.get("offchain.audit.report")
    if report is not None and isinstance(exc, report.AuditError):
        return ProblemError("audit-failed", f"the audit could not read the chain: {exc}")
    return None


def install_handlers(app: FastAPI) -> None:
    """Render every error as a problem: a :class:`~offchain.errors.MarketError` through
    :func:`as_problem` (the one place the API maps its errors), FastAPI's validation errors,
    Starlette's 404/405/413, and anything else as a 500 ``internal-error``."""

    @app.exception_handler(MarketError)
    async def _market(request: Request, exc: MarketError) -> JSONResponse:
        problem = as_problem(exc)
        if problem is None:  # a MarketError no route expects: a bug, as in _crash below
            _log.error("unmapped %s on %s %s: %s", type(exc).__name__, request.method,
                       request.url.path, exc, exc_info=exc)
            return problem_response("internal-error", f"{type(exc).__name__}", request.url.path)
        return problem_response(problem.kind.slug, problem.detail, request.url.path,
                                errors=problem.errors, headers=problem.headers, **problem.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = validation_errors(exc)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response("validation-error", detail, request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        path = request.url.path
        if exc.status_code == 404:
            return problem_response("not-found", f"no route {path}", path, headers=headers)
        if exc.status_code == 405:
            allow = headers.get("Allow", headers.get("allow", ""))
            return problem_response("method-not-allowed",
                                    f"{request.method} is not allowed on {path}; allowed: "
                                    f"{allow}", path, headers=headers)
        if exc.status_code == 413:
            return problem_response("payload-too-large", str(exc.detail), path, headers=headers)
        if exc.status_code in (400, 422):  # 400: FastAPI could not decode the body at all
            detail = f"the request body cannot be read: {exc.detail}"
            return problem_response("validation-error", detail, path, headers=headers,
                                    errors=[{"field": "body", "message": detail}])
        _log.warning("unmapped HTTP error %s on %s: %s", exc.status_code, path, exc.detail)
        return problem_response("internal-error", str(exc.detail), path, headers=headers)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response("internal-error", f"{type(exc).__name__}", request.url.path)


def openapi_problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for FastAPI routes: each status documented as a Problem.

    (FastAPI files a ``model`` under application/json; the OpenAPI builder of :mod:`api.main`
    moves every 4xx/5xx schema to application/problem+json.)"""
    from api.models import Problem

    descriptions = {400: "Bad request", 404: "Not found", 409: "Conflict",
                    413: "Request body too large", 422: "Invalid request (see `errors`)",
                    502: "Chain node unreachable", 503: "Not available",
                    504: "Timed out (transaction not mined, or audit too slow)"}
    return {s: {"model": Problem, "description": descriptions.get(s, "Error")}
            for s in statuses}
