"""The ``mpc-market`` command line: the typer app and the console-script entry point.

    mpc-market demo [--data CSV] [--query SPEC] [--providers P] [--committee N] [--threshold T]
                    [--min-providers M] [--rpc-url URL] [--json]
    mpc-market randomness [--participants P] [--withhold K] [--bad-share K] [--rpc-url URL]
                          [--json]
    mpc-market up [--providers P] [--data CSV] [--state-dir DIR] [--json]
    mpc-market down [--state-dir DIR]
    mpc-market job post|show|wait ...      (the buyer CLI, over the HTTP API)
    mpc-market audit JOB_ID [--rpc-url URL] [--deployment FILE] [--json]
    mpc-market node --config FILE
    mpc-market keygen --out FILE

One module per command family (offchain/cli/demo.py, randomness.py, net.py, job.py, audit.py,
node.py); offchain/cli/common.py holds what they share. Errors print one line ``error: ...`` on
stderr and exit with status 2 (bad input) or 1 (failure).
"""

from __future__ import annotations

import typer

from offchain.cli.audit import audit_command
from offchain.cli.demo import demo_command
from offchain.cli.job import job_app
from offchain.cli.net import down_command, up_command
from offchain.cli.node import keygen_command, node_command
from offchain.cli.randomness import randomness_command

__all__ = ["app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Blockchain-anchored secure multi-party computation market.")
app.command("demo")(demo_command)
app.command("randomness")(randomness_command)
app.command("keygen")(keygen_command)
app.command("node")(node_command)
app.command("up")(up_command)
app.command("down")(down_command)
app.command("audit")(audit_command)
app.add_typer(job_app, name="job", help="Buy computations through the HTTP API.")


def main() -> None:
    """Console-script entry point (``mpc-market``, ``python -m offchain.cli``)."""
    app()


if __name__ == "__main__":
    main()
