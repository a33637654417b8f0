"""Layer 2, pure protocol state machines: the committee's job protocol, the beacon round, the
committee-draw rule and the registry replayed from its events. No network and no chain: messages
in, messages and decisions out.

May import :mod:`offchain.crypto`, :mod:`offchain.encoding` and :mod:`offchain.wire`.
"""
