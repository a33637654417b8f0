"""Tools for a local network, not runtime: the solc-js compiler driver, anvil, the demo network,
``mpc-market up``/``down``, the randomness demo and the plaintext reference statistic.

May import any layer of :mod:`offchain` except the CLI; is never imported by the node, the audit
or the API.
"""
