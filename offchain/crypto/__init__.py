"""Layer 0, maths: the prime field F_r, Shamir sharing, Pedersen VSS on BN254 G1, Merkle trees.

Pure functions and frozen data; no I/O, no network, no chain. May import only the standard
library, third-party maths packages and :mod:`offchain.errors` / :mod:`offchain.types`.
"""
