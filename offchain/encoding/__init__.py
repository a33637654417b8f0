"""Layer 0, meanings of values and bytes: fixed-point codec, the query grammar and its local
aggregates, EIP-712 typed data for the market and the beacon.

May import :mod:`offchain.crypto`, :mod:`offchain.errors` and :mod:`offchain.types` only.
"""
