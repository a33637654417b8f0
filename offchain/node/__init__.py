"""Layer 4, the node daemon: its configuration, data sources, chain follower, HTTP transport,
peer messaging, and the job and beacon services wired together by :mod:`offchain.node.main`.

May import every layer below; never :mod:`offchain.audit`, :mod:`offchain.devnet`,
:mod:`offchain.cli` or :mod:`api`.
"""
