"""Layer 1, authenticated node-to-node messages: node key files, sealed envelopes (X25519 +
HKDF-SHA256 + ChaCha20-Poly1305, signed with the node's Ethereum key as an EIP-191 message) and
the replay guard, the one set of pydantic field types (:mod:`.fields`), the typed payloads of the
job and beacon protocols, and a member's Merkle-rooted transcript.

May import :mod:`offchain.crypto` and :mod:`offchain.encoding` (and the root modules); never the
protocol state machines, the chain, the node or anything above.
"""
