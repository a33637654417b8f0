"""The orchestration: :func:`audit_job` builds the auditor of one job (all the check
families over one :class:`~offchain.audit.context.AuditContext`) and runs its table of checks,
one per name of :data:`~offchain.audit.report.CHECK_NAMES`, in that order.

What one check establishes for others is passed to them explicitly: the signatures that verify
(:class:`~offchain.audit.signatures.Signers`, recovered once with ``signatures.valid``) go to
``signatures.threshold``, ``payments`` and ``transcripts``; the statistic of
``result.statistic`` goes into the report."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from web3 import Web3

from offchain.audit.committee import CommitteeChecks
from offchain.audit.fetch import TRANSCRIPTS_BUDGET_S, TranscriptFetcher, http_transcript_fetcher
from offchain.audit.job import JobChecks
from offchain.audit.payments import PaymentChecks
from offchain.audit.report import (
    CHECK_NAMES,
    AuditError,
    AuditReport,
    Check,
    CheckFailed,
    CheckSkipped,
)
from offchain.audit.signatures import SignatureChecks, Signers
from offchain.audit.sources import LogSource
from offchain.audit.transcripts import TranscriptChecks


class Auditor(JobChecks, CommitteeChecks, SignatureChecks, PaymentChecks, TranscriptChecks):
    """Every check family over one job; :meth:`run` runs its check table. Build it with
    :func:`audit_job`, which maps the errors of reading the job to :class:`AuditError`."""

    def run(self) -> AuditReport:
        """The report of every check of :data:`CHECK_NAMES`, in order. A check that raises
        :class:`CheckSkipped` is skipped, :class:`CheckFailed` or any other exception (doctored
        data can break decoding anywhere) fails it; no exception leaves this method."""
        report = AuditReport(self.job_id, self.market, self.chain_id, self.status,
                             query=str(self.post["query"]) if self.post else "")
        signers = Signers()  # none until signatures.valid has recovered them

        def signatures_valid() -> str:
            nonlocal signers
            signers = self.recover_signers()
            return self.check_signatures_valid(signers)

        def result_statistic() -> str:
            detail, report.statistic = self.check_result_statistic()
            return detail

        table: list[tuple[str, Callable[[], str]]] = [
            ("job.parameters", self.check_job_parameters),
            ("job.escrow", self.check_job_escrow),
            ("committee.selection_rule", self.check_committee_selection_rule),
            ("signatures.valid", signatures_valid),
            ("signatures.threshold", lambda: self.check_signatures_threshold(signers)),
            ("inputs.providers", self.check_inputs_providers),
            ("result.hash", self.check_result_hash),
            ("result.statistic", result_statistic),
            ("payments", lambda: self.check_payments(signers)),
            ("deadlines", self.check_deadlines),
            ("transcripts", lambda: self.check_transcripts(signers)),
        ]
        if tuple(name for name, _ in table) != CHECK_NAMES:
            raise RuntimeError("the auditor's check table must list exactly CHECK_NAMES")
        for name, check in table:
            report.checks.append(self._outcome(name, check))
        return report

    def _outcome(self, name: str, check: Callable[[], str]) -> Check:
        self.notes = []
        try:
            detail = check()
        except CheckSkipped as exc:
            return Check(name, True, str(exc), skipped=True)
        except CheckFailed as exc:
            return Check(name, False, str(exc))
        except Exception as exc:  # doctored data can break decoding anywhere
            return Check(name, False, f"{type(exc).__name__}: {exc}")
        if self.notes:
            detail += " (" + "; ".join(self.notes) + ")"
        return Check(name, True, detail)


def audit_job(w3: Web3, market_address: str, job_id: int, *, from_block: int = 0,
              log_source: LogSource | None = None,
              fetch_transcript: TranscriptFetcher | None = None,
              transcript_budget_s: float = TRANSCRIPTS_BUDGET_S) -> AuditReport:
    """Audit job ``job_id`` of the market at ``market_address`` from chain data alone.

    ``from_block``: the first block to read logs from (the market's deployment block; the
    registry's events before it would be missed). ``log_source``: where logs and transactions
    come from (default: :class:`ChainLogSource` over ``w3``). ``fetch_transcript``: how
    signers' transcripts are fetched from their registered endpoints (default:
    :func:`http_transcript_fetcher`, at most :data:`FETCH_DEADLINE_S` per fetch).
    ``transcript_budget_s``: wall-clock budget of all the fetches together; a transcript not
    fetched within it counts as unavailable.

    Returns the report (each check of :data:`CHECK_NAMES`, in order). Raises AuditError if the
    RPC is unreachable, no contract is at the address or the job does not exist.
    """
    if job_id < 0 or job_id >= 2**256:
        raise AuditError(f"job id {job_id} is not a uint256")
    try:
        auditor = Auditor(w3, market_address, job_id, from_block, log_source,
                           fetch_transcript or http_transcript_fetcher(),
                           transcript_budget_s)
    except AuditError:
        raise
    except (OSError, httpx.HTTPError) as exc:
        raise AuditError(f"RPC unreachable: {exc}") from exc
    except Exception as exc:  # e.g. not an MPCMarket at that address: calls revert
        raise AuditError(f"cannot read job {job_id} from {market_address}: {exc}") from exc
    return auditor.run()

