"""The audit's report: the named checks (:data:`CHECK_NAMES`), one :class:`Check` per name,
the :class:`AuditReport` of a job, :class:`AuditError` for an audit that cannot run, and the two
outcomes a check raises, :class:`CheckFailed` and :class:`CheckSkipped`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from offchain.errors import MarketError
from offchain.types import JobStatus

CHECK_NAMES = (
    "job.parameters",
    "job.escrow",
    "committee.selection_rule",
    "signatures.valid",
    "signatures.threshold",
    "inputs.providers",
    "result.hash",
    "result.statistic",
    "payments",
    "deadlines",
    "transcripts",
)

STATUS_NAMES = {s: s.name.title() for s in JobStatus}
"""A job status as the report spells it: ``JobStatus.OPEN`` -> ``"Open"``, ..."""


class AuditError(MarketError, RuntimeError):
    """The audit cannot run: unreachable RPC, no contract at the address, unknown job."""


class CheckFailed(MarketError):
    """Raised inside a check to fail it; the message becomes the check's detail."""


class CheckSkipped(MarketError):
    """Raised inside a check that does not apply to the job (e.g. the signatures of a refunded
    job) to skip it; the message becomes the check's detail. A skip is not a failure."""


@dataclass(frozen=True)
class Check:
    """One named check: ``ok`` is False only for a failure; a skipped check is ok."""

    name: str
    ok: bool
    detail: str
    skipped: bool = False

    @property
    def verdict(self) -> str:
        """``PASS``, ``FAIL`` or ``SKIP``."""
        return "SKIP" if self.skipped else "PASS" if self.ok else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "ok": self.ok, "detail": self.detail}


@dataclass
class AuditReport:
    """The checks of one job, in :data:`CHECK_NAMES` order. ``ok`` iff no check failed."""

    job_id: int
    market: str
    chain_id: int
    status: str
    query: str = ""
    statistic: int | float | list[int] | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def check(self, name: str) -> Check:
        """The check called ``name`` (KeyError if absent)."""
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def failed(self) -> list[str]:
        """Names of the failed checks."""
        return [c.name for c in self.checks if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "market": self.market, "chain_id": self.chain_id,
                "status": self.status, "query": self.query, "statistic": self.statistic,
                "ok": self.ok, "checks": [c.to_json() for c in self.checks]}
