"""``python -m offchain.cli`` runs the ``mpc-market`` command line."""

from offchain.cli.main import main

main()
