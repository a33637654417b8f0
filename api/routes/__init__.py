"""The API's routers, one module per resource family, each an ``APIRouter`` under ``/v1``:

- :mod:`api.routes.service`: ``GET /v1/health``;
- :mod:`api.routes.catalogue`: ``GET /v1/datasets``, ``GET /v1/nodes``;
- :mod:`api.routes.jobs`: ``/v1/jobs*`` (prepare, submit, list, read, audit).

:mod:`api.main` includes them in this order."""
