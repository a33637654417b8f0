"""The error root of the package: every exception class in ``offchain`` and ``api`` subclasses
:class:`MarketError`.

The layout copies web3.py's (``class Web3ValueError(Web3Exception, ValueError)``): each class keeps
its stdlib base as a mixin, so an existing ``except ValueError`` / ``except RuntimeError`` still
catches it, while the CLI and the API can catch ``MarketError`` once. A class stays in the module
whose failure it describes (``SharingError`` in :mod:`offchain.crypto.shamir`, ``EnvelopeError``
in :mod:`offchain.wire.envelope`, ...); only errors shared by several modules live here.

The tree (module of definition in brackets)::

    MarketError
    ├── ProtocolError (RuntimeError)          here: a protocol state machine cannot go on
    ├── SharingError (ValueError)             [crypto.shamir]
    │   └── InconsistentSharesError
    ├── FixedPointError (ValueError)          [encoding.fixedpoint]
    ├── QueryError, StatisticError (ValueError)  [encoding.query]
    ├── AddressError, SignatureError (ValueError)  [encoding.eip712.base]
    ├── EnvelopeError                         [wire.envelope]
    │   └── Malformed, Misaddressed, BadSignature, Tampered, Replayed
    ├── PayloadError, KeyFileError (ValueError)  [wire.job_payloads, wire.keys]
    ├── TransactionFailed (RuntimeError), ContractRevert  [chain.tx]
    ├── ArtifactError (RuntimeError)          [chain.artifacts]
    ├── ConfigError, DataSourceError (ValueError), DeliveryError, NodeStartError (RuntimeError)
    │                                         [node.*]
    ├── AuditError (RuntimeError), CheckFailed, CheckSkipped  [audit.report]
    ├── AnvilError, CompilerError, LocalNetError, DemoError (RuntimeError)  [devnet.*]
    ├── CliError, DeploymentError (ValueError)  [cli.*]
    └── StartupError (RuntimeError), ProblemError, ManifestError, IdempotencyKeyError
                                     (ValueError)  [api.*]

``tests/unit/test_errors.py`` checks that no exception class escapes the root.
"""

from __future__ import annotations

__all__ = ["MarketError", "ProtocolError"]


class MarketError(Exception):
    """Root of every exception raised on purpose by this package (offchain and api)."""


class ProtocolError(MarketError, RuntimeError):
    """A protocol run (a job committee or a beacon round) cannot proceed correctly: an
    unexpected sender, a wrong-length vector, too few inputs or openings, inconsistent shares, a
    total beyond the no-wrap bound, ... The message says which. Raised by the pure state machines
    of :mod:`offchain.protocol`; the node answers by not signing (the job or round aborts)."""
