"""The ``mpc-market`` command line (the typer app is in :mod:`offchain.cli.main`).

One module per command family: ``demo``, ``randomness``, ``net`` (up/down), ``job`` (the buyer
CLI over the HTTP API), ``audit``, ``node`` (node/keygen); ``common`` holds the shared ``fail``,
``terminate`` and error-root handling. This package imports none of them, so
``python -m offchain.cli.net`` / ``python -m offchain.cli.job`` run cleanly.
"""
