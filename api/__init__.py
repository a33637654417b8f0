"""The buyer API of the MPC market (FastAPI), versioned under ``/v1``.

    GET  /v1/health               chain id, market, latest block
    GET  /v1/datasets             catalogue: columns and types, providers, price of a job
    GET  /v1/nodes                registered nodes: stake, status, endpoint, jobs served
    POST /v1/jobs/prepare         validate a job -> unsigned EIP-1559 postJob transaction
    POST /v1/jobs                 signed transaction -> checked, broadcast, job id (201)
    GET  /v1/jobs                 jobs, newest first (limit, cursor, buyer, status, dataset)
    GET  /v1/jobs/{id}[?wait=S]   status, committee, result and statistic, transactions
    GET  /v1/jobs/{id}/audit      the audit report (offchain.audit)

OpenAPI at ``/openapi.json``, interactive docs at ``/docs``. Errors are RFC 9457 problems
(``api.problems``). Run it with ``python -m api --deployment FILE`` (``api.__main__``); embed it
with :func:`api.main.create_app`.
"""

from api.main import create_app

__all__ = ["create_app"]
