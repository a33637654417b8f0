"""The checks of the recorded result: ``signatures.valid``, ``signatures.threshold``,
``inputs.providers``, ``result.hash`` and ``result.statistic``, from the ``finalizeJob``
calldata and the ``JobFinalized`` log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from offchain.audit.context import AuditContext
from offchain.audit.report import CheckFailed
from offchain.audit.util import checksum, short, strictly_ascending
from offchain.encoding import eip712
from offchain.encoding.query import QueryError, StatisticError, parse_query, statistic
from offchain.types import NodeStatus

_MAX_AGGREGATES = 64

Statistic = int | float | list[int]
"""The value of a query's statistic (:func:`offchain.encoding.query.statistic`)."""


@dataclass(frozen=True)
class Signers:
    """The ``finalizeJob`` signatures that verify, as :meth:`SignatureChecks.recover_signers`
    finds them: ``signatures.valid`` checks them against the logs, and ``signatures.threshold``,
    ``payments`` and ``transcripts`` are handed them (empty when the job has no decodable
    result).

    Attributes:
        valid: (signer, 32-byte transcript root) of each signature that recovers to a committee
            member registered with stake at the block before finalization, in calldata order
            (so strictly ascending signers).
        index: signer -> position k of its signature in the calldata (its reward is the k-th
            credit).
        mask: the committee bitmask of the valid signers.
        problems: why each other signature does not count.
        result_hash: the 32-byte resultHash the signatures were checked over (recomputed from
            the calldata's aggregates); empty when nothing was recovered.
        before: the block whose registrations count (the finalize block - 1).
    """

    valid: tuple[tuple[str, bytes], ...] = ()
    index: Mapping[str, int] = field(default_factory=dict)
    mask: int = 0
    problems: tuple[str, ...] = ()
    result_hash: bytes = b""
    before: int = 0


class SignatureChecks(AuditContext):
    """``signatures.*``, ``inputs.providers`` and ``result.*``."""

    def recover_signers(self) -> Signers:
        """The signatures of the ``finalizeJob`` calldata that verify (see :class:`Signers`);
        an empty :class:`Signers` for a job without a decodable result or whose calldata is
        for another job (``signatures.valid`` then says why)."""
        args = self.call_data
        if self.final is None or args is None or int(args["jobId"]) != self.job_id:
            return Signers()
        committee = self.committee
        rh = eip712.result_hash([int(x) for x in args["aggregates"]])
        ih = eip712.inputs_hash([(i["provider"], bytes(i["commitment"])) for i in args["inputs"]])
        before = int(self.final["block_number"]) - 1
        problems, mask, pairs, index = [], 0, [], {}
        prev = -1
        for k, ms in enumerate(args["signatures"]):
            root, sig = bytes(ms["transcriptRoot"]), ms["sig"]
            try:
                signer = eip712.recover_result_signer(
                    self.domain, self.job_id, rh, ih, root,
                    eip712.Sig(bytes(sig["r"]), bytes(sig["s"]), int(sig["v"])))
            except ValueError as exc:
                problems.append(f"signature {k} does not recover: {exc}")
                continue
            if signer not in committee:
                problems.append(f"signature {k} recovers to {signer}, not a committee member")
                continue
            if int(signer, 16) <= prev:
                problems.append(f"signature {k}: signers not strictly ascending (duplicate?)")
                continue
            prev = int(signer, 16)
            stake, status = self.registration_at(signer, before)
            if status is NodeStatus.NONE or stake == 0:
                problems.append(f"signer {signer} was not registered with stake at block "
                                f"{before}")
                continue
            mask |= 1 << committee.index(signer)
            pairs.append((signer, root))
            index[signer] = k
        return Signers(tuple(pairs), index, mask, tuple(problems), rh, before)

    def check_signatures_valid(self, signers: Signers) -> str:
        """``signatures.valid`` over the :meth:`recover_signers` result ``signers``."""
        final = self._require_final()
        args = self.call_data
        assert args is not None
        if int(args["jobId"]) != self.job_id:
            raise CheckFailed(f"finalizeJob calldata is for job {args['jobId']}")
        problems = list(signers.problems)
        mask, pairs = signers.mask, list(signers.valid)
        if mask != int(final["signer_mask"]) or mask != self.stored["signer_mask"]:
            problems.append(f"signer mask {mask:#x} from the signatures; logged "
                            f"{int(final['signer_mask']):#x}, stored "
                            f"{self.stored['signer_mask']:#x}")
        if not problems and eip712.proof_hash(pairs) != bytes(final["proof_hash"]):
            problems.append("logged proofHash is not the hash chain of (signer, transcriptRoot)")
        if problems:
            raise CheckFailed("; ".join(problems))
        return (f"{len(pairs)} signature(s) over resultHash {short(signers.result_hash)} recover "
                f"to committee members registered and staked at block {signers.before}: "
                + ", ".join(s for s, _ in pairs))

    def check_signatures_threshold(self, signers: Signers) -> str:
        """``signatures.threshold``: t+1 distinct valid signers (``signers`` from
        :meth:`recover_signers`) and t+1 bits in the stored mask."""
        self._require_final()
        t = self.stored["threshold"]
        k = len({s for s, _ in signers.valid})
        bits = bin(self.stored["signer_mask"]).count("1")
        if k < t + 1 or bits < t + 1:
            raise CheckFailed(f"{k} distinct valid committee signatures ({bits} bits in the "
                              f"stored mask); t+1 = {t + 1} needed")
        return f"{k} distinct valid committee signatures >= t+1 = {t + 1}"

    def check_inputs_providers(self) -> str:
        final = self._require_final()
        args = self.call_data
        assert args is not None
        before = int(final["block_number"]) - 1
        inputs = args["inputs"]
        providers = [checksum(i["provider"]) for i in inputs]
        problems = []
        if not strictly_ascending(providers):
            problems.append("providers are not strictly ascending")
        for i in inputs:
            provider, commitment = checksum(i["provider"]), bytes(i["commitment"])
            sig = i["sig"]
            try:
                signer = eip712.recover_input_signer(
                    self.domain, self.job_id, commitment,
                    eip712.Sig(bytes(sig["r"]), bytes(sig["s"]), int(sig["v"])))
            except ValueError as exc:
                problems.append(f"input of {provider}: signature does not recover: {exc}")
                continue
            if signer != provider:
                problems.append(f"input of {provider} is signed by {signer}")
            if self.registration_at(provider, before)[1] is NodeStatus.NONE:
                problems.append(f"provider {provider} was not registered at block {before}")
        m = self.stored["min_providers"]
        if len(inputs) < m:
            problems.append(f"{len(inputs)} providers < M = {m}")
        if not (len(inputs) == int(final["provider_count"]) == self.stored["provider_count"]):
            problems.append(f"{len(inputs)} inputs; logged providerCount "
                            f"{final['provider_count']}, stored {self.stored['provider_count']}")
        if not problems:
            ih = eip712.inputs_hash([(p, bytes(i["commitment"]))
                                     for p, i in zip(providers, inputs, strict=True)])
            if ih != bytes(final["inputs_hash"]):
                problems.append("logged inputsHash is not the hash chain of the inputs")
        if problems:
            raise CheckFailed("; ".join(problems))
        return (f"{len(inputs)} providers (M = {m}) with valid InputCommitment signatures, "
                "registered; inputsHash matches")

    def check_result_hash(self) -> str:
        final = self._require_final()
        args = self.call_data
        assert args is not None
        logged = [int(x) for x in final["aggregates"]]
        problems = []
        if not 1 <= len(logged) <= _MAX_AGGREGATES:
            problems.append(f"{len(logged)} aggregates (1..64 allowed)")
        rh = eip712.result_hash(logged)
        if rh != bytes(final["result_hash"]):
            problems.append(f"keccak(aggregates) = {short(rh)} is not the logged resultHash "
                            f"{short(bytes(final['result_hash']))}")
        if rh != self.stored["result_hash"]:
            problems.append(f"keccak(aggregates) is not the stored resultHash "
                            f"{short(self.stored['result_hash'])}")
        if [int(x) for x in args["aggregates"]] != logged:
            problems.append("logged aggregates differ from the finalizeJob calldata")
        if problems:
            raise CheckFailed("; ".join(problems))
        return f"resultHash {short(rh)} = keccak256(abi.encodePacked({logged}))"

    def check_result_statistic(self) -> tuple[str, Statistic]:
        """``result.statistic``: (detail, the statistic's value) recomputed from the logged
        aggregates; the auditor puts the value in the report."""
        final = self._require_final()
        p = self._require_posted()
        try:
            spec = parse_query(str(p["query"]))
            value = statistic(spec, [int(x) for x in final["aggregates"]])
        except (QueryError, StatisticError) as exc:
            raise CheckFailed(f"{p['query']!s}: {exc}") from None
        return f"{spec} = {value} (from the {spec.n_aggregates} recorded aggregates)", value
