"""Layer 3, the chain through web3.py: signing and sending transactions, custom-error decoding,
event decoding, and the market and beacon clients.

May import the layers below (never the node, the audit, the devnet tools, the CLI or the API).
"""
