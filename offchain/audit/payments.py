"""The ``payments`` check: a finalized job's rewards (and callback fee) or a refunded job's
refund, from the logs and, where the node has the state, rewards and balances across the
block."""

from __future__ import annotations

from offchain.audit.context import AuditContext
from offchain.audit.report import CheckFailed
from offchain.audit.signatures import Signers
from offchain.audit.util import checksum, short


class PaymentChecks(AuditContext):
    """``payments``."""

    def check_payments(self, signers: Signers) -> str:
        """``payments``; ``signers`` (from :meth:`SignatureChecks.recover_signers`) says which
        signer was credited which share."""
        self._require_posted()
        escrow = self.stored["escrow_wei"]
        if self.final is not None:
            return self._check_rewards(escrow, signers)
        if self.refunded:
            return self._check_refund(escrow)
        raise CheckFailed(f"job is {self.status}: its escrow of {escrow} wei is neither paid "
                          "out nor refunded")

    def _check_rewards(self, escrow: int, signers: Signers) -> str:
        final = self._require_final()
        args = self.call_data
        assert args is not None
        k = len(args["signatures"])
        if k == 0:
            raise CheckFailed("no signatures were paid")
        share, remainder = escrow // k, escrow % k
        problems = []
        if int(final["reward_per_signer_wei"]) != share:
            problems.append(f"logged reward per signer {final['reward_per_signer_wei']} wei, "
                            f"but escrow {escrow} / {k} signers = {share}")
        credits = [share + remainder] + [share] * (k - 1)
        if sum(credits) != escrow:
            problems.append(f"credits add up to {sum(credits)}, not the escrow {escrow}")
        # a job posted with a callback: its fee is credited to the finalizer (msg.sender)
        finalizer = self.source.transaction(final["tx_hash"])["from"]
        fee, callback = self.callback_fee, ""
        delivered = [e for e in self.events if e["event"] == "JobCallback"
                     and e.get("job_id") == self.job_id]
        if self.callback_requested or self.stored_callback[0]:
            if len(delivered) != 1:
                problems.append(f"a callback was requested but {len(delivered)} JobCallback logs")
            elif int(delivered[0]["fee_wei"]) != fee or checksum(delivered[0]["finalizer"]) != \
                    finalizer:
                problems.append(f"JobCallback credits {delivered[0]['fee_wei']} wei to "
                                f"{delivered[0]['finalizer']}, not the fee {fee} to the "
                                f"finalizer {finalizer}")
            else:
                callback = (f"; callback fee {fee} wei to the finalizer (callback "
                            f"{'succeeded' if delivered[0]['ok'] else 'failed'})")
        elif delivered:
            problems.append("JobCallback logged for a job posted without a callback")
        block = int(final["block_number"])
        compared = self.only_tx(block, final["tx_hash"])
        if compared:
            # The k-th signature's signer is credited credits[k], the finalizer the callback
            # fee: every committee member's (and the finalizer's) rewardsWei must have grown by
            # exactly that, and all together by escrow + fee.
            expected = {m: 0 for m in self.committee}
            for signer, k_index in signers.index.items():
                expected[signer] = expected.get(signer, 0) + credits[k_index]
            if fee:
                expected[finalizer] = expected.get(finalizer, 0) + fee
            known = len(signers.index) == k  # else some credit went to an unknown signer
            grown: dict[str, int] = {}
            for member in expected:
                after, before = self.rewards_at(member, block), self.rewards_at(member, block - 1)
                if after is None or before is None:
                    compared = False  # no state to compare: the logs above are all we check
                    break
                grown[member] = after - before
            if not compared:
                self.note(f"per-account rewardsWei deltas in block {block} not checked: the "
                          "node has no historical state")
            else:
                for member, credit in expected.items():
                    if grown[member] != credit and known:
                        problems.append(f"{member}'s rewards grew by {grown[member]} wei in "
                                        f"block {block}, not {credit}")
                if sum(grown.values()) != escrow + fee:
                    problems.append(f"rewards grew by {sum(grown.values())} wei in block "
                                    f"{block}, not by the escrow {escrow} + callback fee {fee}")
        if problems:
            raise CheckFailed("; ".join(problems))
        how = ("rewards not compared across the block (other transactions in it)"
               if not self.only_tx(block, final["tx_hash"])
               else "rewardsWei not compared across the block" if not compared
               else "each signer's rewardsWei grew by exactly its share"
               if len(signers.index) == k else "the committee's rewards grew by the escrow")
        return (f"escrow {escrow} wei = {k} x {share} + remainder {remainder} (to the first "
                f"signer); {how}{callback}")

    def _check_refund(self, escrow: int) -> str:
        ev = self.refunded[0]
        problems = []
        amount = int(ev["amount_wei"])
        fee = self.callback_fee
        buyer = self.stored["buyer"]
        if amount != escrow + fee:
            problems.append(f"refunded {amount} wei, but escrow {escrow} + callback fee {fee} "
                            f"were paid")
        if checksum(ev["buyer"]) != buyer:
            problems.append(f"refund went to {ev['buyer']}, not the buyer {buyer}")
        tx, receipt = self.source.transaction(ev["tx_hash"]), self.source.receipt(ev["tx_hash"])
        if receipt["status"] != 1:
            problems.append("the refund tx did not succeed")
        if tx["to"] == self.market and tx["from"] != buyer:
            problems.append(f"reclaimEscrow was sent by {tx['from']}, not the buyer")
        block = int(ev["block_number"])
        compared = self.only_tx(block, ev["tx_hash"])
        if compared:
            delta = self.balance_delta(self.market, block)
            compared = delta is not None
            if delta is not None and delta != -amount:
                problems.append(f"the market's balance changed by {delta} wei in block {block}, "
                                f"not by -{amount}")
            if compared and tx["from"] == buyer:  # an EOA buyer: it received the refund, less gas
                gas = receipt["gas_used"] * receipt["effective_gas_price"]
                delta = self.balance_delta(buyer, block)
                if delta is not None and delta != amount - gas - tx["value"]:
                    problems.append(f"buyer's balance changed by {delta} wei in block {block}, "
                                    f"not by the refund {amount} less gas {gas}")
        if problems:
            raise CheckFailed("; ".join(problems))
        how = "; it left the market's balance" if compared else ""
        extra = f" and callback fee {fee} wei" if fee else ""
        return (f"escrow {escrow} wei{extra} refunded to the buyer in tx "
                f"{short(ev['tx_hash'])}{how}")
