"""The orchestration: :func:`audit_job` builds the auditor of one job (all the check
families over one :class:`~offchain.audit.context.AuditContext`) and runs each check of
:data:`~offchain.audit.report.CHECK_NAMES` in order."""

from __future__ import annotations

import httpx
from web3 import Web3

from offchain.audit.committee import CommitteeChecks
from offchain.audit.context import _CheckFailed, _Skip
from offchain.audit.fetch import TRANSCRIPTS_BUDGET_S, TranscriptFetcher, http_transcript_fetcher
from offchain.audit.job import JobChecks
from offchain.audit.payments import PaymentChecks
from offchain.audit.report import CHECK_NAMES, AuditError, AuditReport, Check
from offchain.audit.signatures import SignatureChecks
from offchain.audit.sources import LogSource
from offchain.audit.transcripts import TranscriptChecks


class _Auditor(JobChecks, CommitteeChecks, SignatureChecks, PaymentChecks, TranscriptChecks):
    """Every check family over one job; :meth:`run` runs them in :data:`CHECK_NAMES` order."""

    def run(self) -> AuditReport:
        report = AuditReport(self.job_id, self.market, self.chain_id, self.status,
                             query=str(self.post["query"]) if self.post else "")
        for name in CHECK_NAMES:
            method = getattr(self, "check_" + name.replace(".", "_"))
            self.notes = []
            try:
                detail = method()
                if self.notes:
                    detail += " (" + "; ".join(self.notes) + ")"
                check = Check(name, True, detail)
            except _Skip as exc:
                check = Check(name, True, str(exc), skipped=True)
            except _CheckFailed as exc:
                check = Check(name, False, str(exc))
            except Exception as exc:  # doctored data can break decoding anywhere
                check = Check(name, False, f"{type(exc).__name__}: {exc}")
            report.checks.append(check)
            if name == "result.statistic" and check.ok and not check.skipped:
                report.statistic = self.value
        return report


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
        auditor = _Auditor(w3, market_address, job_id, from_block, log_source,
                           fetch_transcript or http_transcript_fetcher(),
                           transcript_budget_s)
    except AuditError:
        raise
    except (OSError, httpx.HTTPError) as exc:
        raise AuditError(f"RPC unreachable: {exc}") from exc
    except Exception as exc:  # e.g. not an MPCMarket at that address: calls revert
        raise AuditError(f"cannot read job {job_id} from {market_address}: {exc}") from exc
    return auditor.run()

