"""The ``mpc-market`` command line: the typer app and ``main`` are in :mod:`offchain.cli.main`,
one module per command family beside it. This file imports nothing, so that
``python -m offchain.cli.net`` and friends run their module once."""
