"""The checks of the job itself: ``job.parameters``, ``job.escrow`` (with the callback
settings) and ``deadlines``."""

from __future__ import annotations

from offchain.audit.context import AuditContext
from offchain.audit.report import STATUS_NAMES, CheckFailed
from offchain.audit.util import checksum, short
from offchain.encoding import eip712
from offchain.types import JobStatus

_MIN_COMMITTEE, _MAX_COMMITTEE = 3, 32


class JobChecks(AuditContext):
    """``job.parameters``, ``job.escrow`` and ``deadlines``."""

    def check_job_parameters(self) -> str:
        p, s = self._require_posted(), self.stored
        problems = []
        if len(self.posted) != 1:
            problems.append(f"{len(self.posted)} JobPosted logs")
        for key in ("buyer", "deadline", "committee_size", "threshold", "min_providers"):
            logged = checksum(p[key]) if key == "buyer" else int(p[key])
            if logged != s[key]:
                problems.append(f"{key}: logged {logged}, stored {s[key]}")
        if int(p["seed_round"]) != s["seed_round"]:
            problems.append(f"seed round: logged {p['seed_round']}, stored {s['seed_round']}")
        if eip712.spec_hash(bytes(p["dataset_id"]), str(p["query"])) != s["spec_hash"]:
            problems.append("keccak(datasetId, keccak(query)) of the log is not the stored "
                            "specHash")
        n, t, m = int(p["committee_size"]), int(p["threshold"]), int(p["min_providers"])
        if not (_MIN_COMMITTEE <= n <= _MAX_COMMITTEE and t >= 1 and 2 * t + 1 <= n and m >= 1):
            problems.append(f"n={n}, t={t}, M={m} break the rules (3 <= n <= 32, 1 <= t, "
                            "2t+1 <= n, M >= 1)")
        expected_status = (JobStatus.FINALIZED if self.finalized
                           else JobStatus.REFUNDED if self.refunded else JobStatus.OPEN)
        if len(self.finalized) + len(self.refunded) > 1:
            problems.append(f"{len(self.finalized)} JobFinalized and {len(self.refunded)} "
                            "JobRefunded logs")
        if s["status"] is not expected_status:
            problems.append(f"stored status {self.status} but the logs say "
                            f"{STATUS_NAMES[expected_status]}")
        if problems:
            raise CheckFailed("; ".join(problems))
        return (f"{p['query']!s} on dataset {short(bytes(p['dataset_id']))}, n={n} t={t} M={m}, "
                f"seed round {p['seed_round']}, buyer {s['buyer']}, status {self.status}; "
                "log and storage agree")

    def check_job_escrow(self) -> str:
        p, s = self._require_posted(), self.stored
        escrow = int(p["escrow_wei"])
        fee = self.callback_fee
        problems = []
        if escrow != s["escrow_wei"]:
            problems.append(f"logged escrow {escrow} wei, stored {s['escrow_wei']} wei")
        tx = self.source.transaction(p["tx_hash"])
        receipt = self.source.receipt(p["tx_hash"])
        if receipt["status"] != 1:
            problems.append(f"the post tx {p['tx_hash']} did not succeed")
        block = int(p["block_number"])
        how = ""
        if tx["to"] == self.market:  # posted directly by the buyer
            if tx["from"] != s["buyer"]:
                problems.append(f"postJob tx {p['tx_hash']} was sent by {tx['from']}, not the "
                                "buyer")
            if tx["value"] != escrow + fee:
                problems.append(f"postJob tx {p['tx_hash']} carried {tx['value']} wei, not "
                                f"escrow {escrow} + callback fee {fee}")
            how = f"paid by the buyer in tx {short(p['tx_hash'])}"
        elif self.only_tx(block, p["tx_hash"]):  # through the buyer contract
            delta = self.balance_delta(self.market, block)
            if delta is not None and delta != escrow + fee:
                problems.append(f"the market's balance grew by {delta} wei in the post block, "
                                f"not by escrow {escrow} + callback fee {fee}")
            how = (f"received by the market from the buyer contract in tx {short(p['tx_hash'])}"
                   if delta is not None else "posted through the buyer contract in tx "
                   f"{short(p['tx_hash'])}")
        else:
            how = "posted through a contract; the payment was not compared (block shared)"
        min_payment = int(self.contract.functions.minPaymentWei().call())  # immutable
        if escrow < min_payment:
            problems.append(f"escrow {escrow} wei is below minPaymentWei {min_payment}")
        problems += self._callback_problems()
        if problems:
            raise CheckFailed("; ".join(problems))
        extra = f" + callback fee {fee} wei" if fee else ""
        return f"{escrow} wei escrowed{extra}, {how} (min {min_payment})"

    def _callback_problems(self) -> list[str]:
        """The logged callback request against the stored one (``jobCallback``): a stored gas
        limit iff one JobCallbackRequested log with that limit, and the stored fee held while
        the job is Open (the logged one), none once it is settled."""
        gas_limit, held = self.stored_callback
        requests, problems = self.callback_requests, []
        if len(requests) > 1:
            problems.append(f"{len(requests)} JobCallbackRequested logs")
        if gas_limit and not requests:
            problems.append(f"the stored job has a callback (gas limit {gas_limit}) but no "
                            "JobCallbackRequested log")
        elif requests and not gas_limit:
            problems.append("JobCallbackRequested logged, but the stored job has no callback "
                            "(gas limit 0)")
        elif requests and int(requests[0]["callback_gas_limit"]) != gas_limit:
            problems.append(f"logged callback gas limit {requests[0]['callback_gas_limit']}, "
                            f"stored {gas_limit}")
        expected = (self.callback_fee if self.stored["status"] is JobStatus.OPEN and gas_limit
                    else 0)
        if held != expected:
            problems.append(f"the market holds a callback fee of {held} wei for the job, not "
                            f"{expected}")
        return problems


    def check_deadlines(self) -> str:
        p = self._require_posted()
        deadline = self.stored["deadline"]
        posted_at = self.timestamp(int(p["block_number"]))
        max_timeout = int(self.contract.functions.maxTimeoutS().call())  # immutable
        problems, said = [], [f"deadline {deadline} = post time + {deadline - posted_at} s"]
        if not 1 <= deadline - posted_at <= max_timeout:
            problems.append(f"deadline is {deadline - posted_at} s after the post block, not "
                            f"1..{max_timeout}")
        if self.assigned:
            at = self.timestamp(int(self.assigned[0]["block_number"]))
            if at > deadline:
                problems.append(f"committee assigned at {at}, after the deadline {deadline}")
            said.append(f"committee assigned {deadline - at} s before it")
        if self.final is not None:
            at = self.timestamp(int(self.final["block_number"]))
            if at > deadline:
                problems.append(f"finalized at {at}, after the deadline {deadline}")
            said.append(f"finalized {deadline - at} s before it")
        if self.refunded:
            at = self.timestamp(int(self.refunded[0]["block_number"]))
            if at <= deadline:
                problems.append(f"refunded at {at}, not after the deadline {deadline}")
            said.append(f"refunded {at - deadline} s after it")
        if problems:
            raise CheckFailed("; ".join(problems))
        return "; ".join(said)
