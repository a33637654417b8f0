"""The ``committee.selection_rule`` check: the beacon round that drew the committee, its
Pedersen-committed contributions and output, and the draw over the nodes eligible then."""

from __future__ import annotations

from typing import Any

from offchain.audit.context import AuditContext
from offchain.audit.report import CheckFailed, CheckSkipped
from offchain.audit.util import checksum, short, strictly_ascending
from offchain.crypto import pedersen
from offchain.encoding import eip712
from offchain.protocol.beacon import round_output
from offchain.protocol.committee import committee_seed, draw_committee, eligible_from_events
from offchain.types import JobStatus


class CommitteeChecks(AuditContext):
    """``committee.selection_rule``."""

    def check_committee_selection_rule(self) -> str:
        p = self._require_posted()
        if not self.assigned:
            if self.stored["status"] is JobStatus.FINALIZED:
                raise CheckFailed("job is Finalized but no CommitteeAssigned log exists")
            raise CheckSkipped(f"no committee was drawn (job {self.status})")
        if len(self.assigned) != 1:
            raise CheckFailed(f"{len(self.assigned)} CommitteeAssigned logs")
        a = self.assigned[0]
        logged = [checksum(x) for x in a["committee"]]
        n = int(p["committee_size"])
        problems = []
        if len(logged) != n or not strictly_ascending(logged):
            problems.append(f"logged committee has {len(logged)} members or is not strictly "
                            f"ascending (n={n})")
        if eip712.committee_hash(logged) != self.stored["committee_hash"]:
            problems.append("logged committee does not hash to the stored committeeHash")
        if self.call_data is not None and [checksum(x) for x in
                                           self.call_data["committee"]] != logged:
            problems.append("finalizeJob was given another committee than the logged one")
        # the round that drew it: the seed round, or the successor of one that never committed
        round_id, seen = int(p["seed_round"]), set()
        while round_id not in seen:
            seen.add(round_id)
            failed = self.round_events("RoundFailed", round_id)
            if not failed or int(failed[0]["successor"]) == 0:
                break
            round_id = int(failed[0]["successor"])
        if int(a["round_id"]) != round_id:
            problems.append(f"drawn by round {a['round_id']}, but the job's seed round "
                            f"{p['seed_round']} leads to round {round_id}")
            round_id = int(a["round_id"])
        committed = self.round_events("RoundCommitted", round_id)
        final = self.round_events("RoundFinalized", round_id)
        if len(committed) != 1 or len(final) != 1:
            raise CheckFailed("; ".join([*problems, f"round {round_id} has {len(committed)} "
                                         f"RoundCommitted and {len(final)} RoundFinalized logs"]))
        c, f = committed[0], final[0]
        commit_block = int(c["block_number"])
        if (int(p["block_number"]), int(p["log_index"])) >= (commit_block, int(c["log_index"])):
            problems.append(f"job posted in block {p['block_number']}, after round {round_id}'s "
                            f"output was fixed (commit block {commit_block})")
        if (int(a["block_number"]), int(a["log_index"])) < (int(f["block_number"]),
                                                              int(f["log_index"])):
            problems.append("committee assigned before the round was finalized")
        participants = [checksum(x) for x in c["participants"]]
        commitments = [bytes(x) for x in c["commitments"]]
        opened = self.round_events("ContributionOpened", round_id)
        secrets = {checksum(e["participant"]): int(e["secret"]) for e in opened}
        if len(opened) != len(participants) or set(secrets) != set(participants):
            problems.append(f"{len(opened)} contributions opened for {len(participants)} "
                            "committed participants")
        problems += self._check_openings(round_id, participants, commitments, opened)
        output = bytes(f["output"])
        recomputed = round_output(self.chain_id, self.market, round_id, list(secrets.values()))
        if recomputed != output:
            problems.append(f"round output {short(output)} is not keccak(chainid, market, "
                            f"round, sum of the opened secrets) = {short(recomputed)}")
        stored_round = self.contract.functions.getRound(round_id).call()
        if bytes(stored_round[10]) != output or int(stored_round[1]) != commit_block:
            problems.append("logged round output or commit block differ from getRound")
        candidates = eligible_from_events(self.events, commit_block)
        try:
            drawn = draw_committee(candidates, n, committee_seed(output, self.job_id))
        except ValueError as exc:
            raise CheckFailed("; ".join([*problems, str(exc)])) from None
        if drawn != logged:
            problems.append(f"the selection rule gives {', '.join(drawn)} (from "
                            f"{len(candidates)} nodes eligible at block {commit_block}), not the "
                            f"recorded {', '.join(logged)}")
        if problems:
            raise CheckFailed("; ".join(problems))
        return (f"round {round_id} (committed in block {commit_block}, after the post; "
                f"{len(opened)} openings match their commitments; output {short(output)}) "
                f"draws {', '.join(drawn)} from {len(candidates)} eligible nodes, as recorded")

    def _check_openings(self, round_id: int, participants: list[str], commitments: list[bytes],
                        opened: list[dict[str, Any]]) -> list[str]:
        """Each ContributionOpened against its opening in the reveal/recover calldata."""
        problems = []
        decoded: dict[str, dict[str, Any] | None] = {}
        for ev in opened:
            who, secret = checksum(ev["participant"]), int(ev["secret"])
            txh = ev["tx_hash"]
            if txh not in decoded:
                tx = self.source.transaction(txh)
                try:
                    fn, args = self.contract.decode_function_input(tx["input"])
                    ok = fn.fn_name in ("reveal", "recover") and tx["to"] == self.market
                    decoded[txh] = dict(args) if ok else None
                except Exception:
                    decoded[txh] = None
            args = decoded[txh]
            if args is None or int(args["roundId"]) != round_id:
                problems.append(f"opening of {who}: not a direct reveal/recover call of round "
                                f"{round_id}")
                continue
            match = [o for o in args["openings"] if int(o["index"]) < len(participants)
                     and participants[int(o["index"])] == who and int(o["secret"]) == secret]
            if not match or not pedersen.check_opening(
                    commitments[participants.index(who)], secret, int(match[0]["salt"]),
                    bytes(match[0]["restHash"])):
                problems.append(f"opening of {who} does not match its commitment")
        return problems
