// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IMPCJobConsumer} from "../interfaces/IMPCJobConsumer.sol";
import {ExactGasCall} from "../libraries/ExactGasCall.sol";
import {MarketTransferFailed, RegistryNotRegistered, Sig} from "../libraries/MarketTypes.sol";

/// @title JobMarket — escrowed MPC jobs settled by t+1 committee signatures
/// @notice A buyer posts a query over a dataset with escrow and a committee of n registered nodes
///         (Shamir threshold t). The job is finalized by anyone presenting the opened aggregates,
///         the providers' signed input commitments and at least t+1 committee members' EIP-712
///         signatures over (jobId, resultHash, inputsHash, transcriptRoot); the escrow is then
///         credited to the signers. If no valid result arrives by the deadline the buyer reclaims
///         the escrow. A contract buyer may post with postJobWithCallback to receive the result
///         through IMPCJobConsumer.onMPCResult at finalization (see MPCJobConsumerBase).
/// @dev EIP-712 domain: name "MPCMarket", version "1", chainId, verifyingContract = this
///      (EIP-5267 eip712Domain() from OpenZeppelin). Signatures are (r, s, v), v in {27, 28},
///      low-s enforced by ECDSA.tryRecover. The committee is stored as
///      keccak256(abi.encodePacked(address[])) and passed again in calldata at finalization.
///      Registry access goes through three hooks implemented by the concrete contract.
abstract contract JobMarket is EIP712, ReentrancyGuardTransient {
    /// @notice Job lifecycle.
    enum JobStatus {
        None,
        Open,
        Finalized,
        Refunded
    }

    /// @notice A job as returned by getJob: the stored job (JobRecord) without its callback gas
    ///         limit, which jobCallback() returns.
    struct Job {
        address buyer;
        uint96 escrowWei;
        bytes32 specHash; // keccak256(abi.encode(datasetId, keccak256(bytes(query))))
        bytes32 committeeHash; // keccak256(abi.encodePacked(committee))
        uint40 deadline; // unix seconds; finalize allowed while block.timestamp <= deadline
        uint8 committeeSize;
        uint8 threshold;
        uint16 minProviders;
        JobStatus status;
        uint16 providerCount;
        uint32 signerMask; // bit i set = committee[i] signed the result
        uint64 seedRound; // beacon round whose output draws the committee
        bytes32 resultHash; // keccak256(abi.encodePacked(int256[] aggregates))
    }

    /// @dev A job as stored (5 slots; the 4th packs all small fields, the callback gas limit
    ///      included, so a callback costs no extra slot read at finalization). The proof-of-MPC
    ///      hash is recorded in the JobFinalized log rather than in storage: nothing on chain
    ///      reads it, and a fresh storage slot (22.1k gas) would put finalization above 150k gas.
    struct JobRecord {
        address buyer; // slot 0
        uint96 escrowWei; // slot 0
        bytes32 specHash; // slot 1
        bytes32 committeeHash; // slot 2
        uint40 deadline; // slot 3
        uint8 committeeSize;
        uint8 threshold;
        uint16 minProviders;
        JobStatus status;
        uint16 providerCount;
        uint32 signerMask;
        uint64 seedRound;
        uint32 callbackGasLimit; // 0 = no callback
        bytes32 resultHash; // slot 4
    }

    /// @notice A data provider's signed commitment to its (shared) input.
    struct ProviderInput {
        address provider;
        bytes32 commitment;
        Sig sig;
    }

    /// @notice A committee member's signature over the result and its own transcript root.
    struct MemberSig {
        bytes32 transcriptRoot;
        Sig sig;
    }

    /// @notice EIP-712 type hash of InputCommitment(uint256 jobId,bytes32 commitment).
    bytes32 public constant INPUT_COMMITMENT_TYPEHASH = keccak256("InputCommitment(uint256 jobId,bytes32 commitment)");
    /// @notice EIP-712 type hash of
    ///         ResultCommitment(uint256 jobId,bytes32 resultHash,bytes32 inputsHash,bytes32 transcriptRoot).
    bytes32 public constant RESULT_COMMITMENT_TYPEHASH = keccak256(
        "ResultCommitment(uint256 jobId,bytes32 resultHash,bytes32 inputsHash,bytes32 transcriptRoot)"
    );

    /// @notice Domain tag of committee seeds, so that a job's seed never equals a request's
    ///         random value (keccak256(abi.encode(output, id))) for the same id.
    bytes32 public constant COMMITTEE_SEED_TAG = keccak256("MPCMarket.committee");
    /// @notice Longest query (bytes).
    uint256 public constant MAX_QUERY_BYTES = 256;
    /// @notice Smallest committee (t >= 1 and n >= 2t+1).
    uint256 public constant MIN_COMMITTEE = 3;
    /// @notice Largest committee (the signer mask is 32 bits).
    uint256 public constant MAX_COMMITTEE = 32;
    /// @notice Most aggregates a result may carry.
    uint256 public constant MAX_AGGREGATES = 64;
    /// @notice Largest callback gas limit a job may ask for.
    uint256 public constant MAX_JOB_CALLBACK_GAS = 2_000_000;
    /// @dev Gas kept back, on top of the callback's limit and the 1/64 a call retains (EIP-150),
    ///      for the cold-account call and the bookkeeping after the callback.
    uint256 private constant JOB_CALLBACK_RESERVE_GAS = 10_000;

    /// @notice Minimal escrow (wei) of a job.
    uint96 public immutable minPaymentWei;
    /// @notice Longest allowed job timeout (seconds).
    uint40 public immutable maxTimeoutS;

    /// @dev Id of the next job (starts at 1 so that posting never writes a zero slot).
    uint256 private _nextJobId = 1;
    mapping(uint256 jobId => JobRecord) private _jobs;
    /// @dev Callback gas paid with a job (wei) until it is credited to the finalizer or refunded;
    ///      written only for jobs with a callback.
    mapping(uint256 jobId => uint256) private _callbackFeeWei;

    /// @notice A job was posted. `deadline` is unix seconds, `escrowWei` in wei. Its committee of
    ///         `committeeSize` nodes will be drawn from the output of beacon round `seedRound`
    ///         (a round whose commit phase had not closed when the job was posted).
    event JobPosted(
        uint256 indexed jobId,
        address indexed buyer,
        bytes32 indexed datasetId,
        string query,
        uint8 committeeSize,
        uint256 seedRound,
        uint8 threshold,
        uint16 minProviders,
        uint256 deadline,
        uint256 escrowWei
    );
    /// @notice A job was finalized; each signer was credited `rewardPerSignerWei` (the first
    ///         signer also the division remainder).
    event JobFinalized(
        uint256 indexed jobId,
        bytes32 resultHash,
        bytes32 proofHash,
        bytes32 inputsHash,
        uint16 providerCount,
        uint32 signerMask,
        uint256 rewardPerSignerWei,
        int256[] aggregates
    );
    /// @notice The committee of `jobId` was drawn (sorted ascending) from the nodes eligible at the
    ///         commit block of beacon round `roundId`, with seed
    ///         keccak256(abi.encode(COMMITTEE_SEED_TAG, output, jobId)).
    event CommitteeAssigned(uint256 indexed jobId, uint256 roundId, address[] committee);
    /// @notice The buyer of an expired job got its escrow (plus any unused callback fee)
    ///         `amountWei` back.
    event JobRefunded(uint256 indexed jobId, address indexed buyer, uint256 amountWei);
    /// @notice The result of job `jobId` will be delivered to its buyer's (normally a consumer
    ///         contract's) onMPCResult with `callbackGasLimit` gas; `feeWei` (not part of the
    ///         escrow) pays that gas to whoever finalizes the job.
    event JobCallbackRequested(uint256 indexed jobId, uint256 callbackGasLimit, uint256 feeWei);
    /// @notice The result of job `jobId` was delivered to the buyer's onMPCResult; `ok` is false
    ///         if the buyer has no code (an EOA), or the callback reverted or ran out of gas (the
    ///         job is finalized and paid either way). `finalizer` was credited the callback fee
    ///         `feeWei` (pull payment).
    event JobCallback(uint256 indexed jobId, address indexed finalizer, uint256 feeWei, bool ok);

    /// @notice postJobWithCallback with a callback gas limit above MAX_JOB_CALLBACK_GAS.
    /// @param limit The callback gas limit asked for.
    /// @param max MAX_JOB_CALLBACK_GAS.
    error JobCallbackGasTooHigh(uint256 limit, uint256 max);
    /// @notice The escrow is below the minimum (minPaymentWei, plus the callback fee for
    ///         postJobWithCallback).
    /// @param sentWei What was paid (wei; the escrow part for postJob's internal check).
    /// @param minWei What is needed (wei).
    error JobPaymentTooLow(uint256 sentWei, uint256 minWei);
    /// @notice The query is empty or longer than MAX_QUERY_BYTES.
    error JobInvalidQuery();
    /// @notice The committee size is outside MIN_COMMITTEE..MAX_COMMITTEE.
    /// @param size The committee size asked for.
    error JobInvalidCommitteeSize(uint256 size);
    /// @notice The threshold breaks 1 <= t and 2t + 1 <= n (honest majority).
    /// @param threshold The threshold t asked for.
    /// @param committeeSize The committee size n asked for.
    error JobInvalidThreshold(uint256 threshold, uint256 committeeSize);
    /// @notice minProviders is 0.
    error JobInvalidMinProviders();
    /// @notice The timeout is 0 or above maxTimeoutS.
    /// @param timeoutS The timeout asked for (seconds).
    error JobInvalidTimeout(uint256 timeoutS);
    /// @notice The job does not exist, or is Finalized or Refunded already.
    /// @param jobId The job.
    error JobNotOpen(uint256 jobId);
    /// @notice The job's deadline has passed (block.timestamp > deadline).
    /// @param deadline The job's deadline (unix seconds).
    error JobDeadlinePassed(uint256 deadline);
    /// @notice reclaimEscrow before the job's deadline (block.timestamp <= deadline).
    /// @param deadline The job's deadline (unix seconds).
    error JobDeadlineNotReached(uint256 deadline);
    /// @notice The result holds no aggregate or more than MAX_AGGREGATES.
    error JobInvalidAggregates();
    /// @notice The committee passed does not hash to the job's committeeHash.
    error JobCommitteeMismatch();
    /// @notice Fewer provider inputs than the job's minProviders.
    /// @param have Inputs passed.
    /// @param need The job's minProviders.
    error JobTooFewProviders(uint256 have, uint256 need);
    /// @notice Provider inputs not strictly ascending by provider address.
    /// @param index Position (0-based) of the first input out of order.
    error JobProvidersNotSorted(uint256 index);
    /// @notice A provider's InputCommitment signature does not recover to the provider.
    /// @param provider The provider whose signature failed.
    error JobInvalidProviderSignature(address provider);
    /// @notice Fewer member signatures than threshold + 1.
    /// @param have Signatures passed.
    /// @param need threshold + 1.
    error JobTooFewSignatures(uint256 have, uint256 need);
    /// @notice A member signature is malformed (high s, bad v, no signer).
    /// @param index Position (0-based) of the signature.
    error JobInvalidSignature(uint256 index);
    /// @notice Member signatures not strictly ascending by signer (duplicates included).
    /// @param index Position (0-based) of the first signature out of order.
    error JobSignersNotSorted(uint256 index);
    /// @notice A signature recovers to an address that is not on the job's committee.
    /// @param signer The recovered signer.
    error JobNotCommitteeMember(address signer);
    /// @notice reclaimEscrow by someone other than the job's buyer (or for an unknown job).
    error JobNotBuyer();
    /// @notice assignCommittee for a job that has its committee already.
    /// @param jobId The job.
    error JobCommitteeAlreadyAssigned(uint256 jobId);
    /// @notice finalizeJob for a job whose committee has not been drawn yet.
    /// @param jobId The job.
    error JobCommitteeNotAssigned(uint256 jobId);
    /// @notice The job's beacon round (or its successor) is not Finalized yet.
    /// @param roundId The round finally serving the job.
    error JobSeedNotReady(uint256 roundId);
    /// @notice The job's beacon round failed after its commit: it yields no seed, ever.
    /// @param roundId The failed round.
    error JobSeedRoundFailed(uint256 roundId);
    /// @notice Fewer eligible nodes than committee seats.
    /// @param have Eligible candidates.
    /// @param need The committee size.
    error JobTooFewEligibleNodes(uint256 have, uint256 need);

    constructor(uint96 minPaymentWei_, uint40 maxTimeoutS_) EIP712("MPCMarket", "1") {
        minPaymentWei = minPaymentWei_;
        maxTimeoutS = maxTimeoutS_;
    }

    // ------------------------------------------------------------------ hooks

    /// @dev Whether `node` may join a new committee (registered and Active).
    function _isActiveNode(address node) internal view virtual returns (bool);

    /// @dev Whether `node` is registered (Active or Exiting).
    function _isRegisteredNode(address node) internal view virtual returns (bool);

    /// @dev Credit `amountWei` of pull-payment rewards to `node`.
    function _creditReward(address node, uint256 amountWei) internal virtual;

    /// @dev Beacon round a newly posted job is seeded by (opens one if needed).
    function _requestSeedRound() internal virtual returns (uint64);

    /// @dev The round finally serving `roundId`, its output and commit block, and whether final.
    function _roundSeed(
        uint256 roundId
    )
        internal
        view
        virtual
        returns (uint256 finalRoundId, bytes32 output, uint256 commitBlock, bool finalized, bool failed);

    /// @dev Nodes eligible at `snapshotBlock`, ascending.
    function _eligibleNodesAt(uint256 snapshotBlock) internal view virtual returns (address[] memory);

    /// @dev Gas price (wei) at which callback gas is charged now (the beacon's price).
    function _callbackGasPriceWei() internal view virtual returns (uint256);

    // ------------------------------------------------------------------ mutating

    /// @notice Post a job with msg.value (wei) as escrow.
    /// @param datasetId keccak256 of the dataset name.
    /// @param query The query text, 1..256 bytes.
    /// @param committeeSize Committee size n, 3..32; the members are drawn by assignCommittee
    ///        from the output of the beacon round this job joins.
    /// @param threshold Shamir threshold t, 1 <= t and 2t+1 <= n (honest majority); t+1
    ///        signatures finalize.
    /// @param minProviders Minimal number of contributing providers (>= 1).
    /// @param timeoutS Seconds until the deadline, 1..maxTimeoutS.
    /// @return jobId The new job's id (jobCount after the increment; the first job is 1).
    /// @dev Reverts, in this order: JobPaymentTooLow(sent, min), JobInvalidQuery(),
    ///      JobInvalidCommitteeSize(n), JobInvalidThreshold(t, n), JobInvalidMinProviders(),
    ///      JobInvalidTimeout(timeoutS); SafeCastOverflowedUintDowncast if msg.value exceeds 96 bits;
    ///      BeaconTooFewActiveNodes if a beacon round must be opened and fewer than 3 nodes are Active.
    ///      Emits JobPosted (and RoundOpened when it opens a round).
    function postJob(
        bytes32 datasetId,
        string calldata query,
        uint8 committeeSize,
        uint8 threshold,
        uint16 minProviders,
        uint40 timeoutS
    ) external payable returns (uint256 jobId) {
        return _post(datasetId, query, committeeSize, threshold, minProviders, timeoutS, msg.value);
    }

    /// @notice Post a job whose result is delivered, at finalization, to the caller's (a
    ///         contract's) IMPCJobConsumer.onMPCResult(jobId, aggregates) with exactly
    ///         `callbackGasLimit` gas. msg.value pays the callback gas at callbackGasPriceWei()
    ///         (jobCallbackFeeWei(callbackGasLimit), credited to whoever finalizes the job) and
    ///         the rest is the escrow. A callback that reverts or runs out of gas does not block
    ///         finalization or payment (JobCallback(..., ok = false)). If the job expires,
    ///         reclaimEscrow refunds escrow and callback fee to the buyer.
    /// @param callbackGasLimit Gas for onMPCResult, 0..MAX_JOB_CALLBACK_GAS (0: no callback,
    ///        exactly like postJob).
    /// @dev The other parameters and checks are postJob's. Reverts JobCallbackGasTooHigh(limit,
    ///      max) first, then as postJob, with JobPaymentTooLow(sent, minPaymentWei + fee). Emits
    ///      JobPosted (escrowWei = msg.value - fee) and, if callbackGasLimit > 0,
    ///      JobCallbackRequested(jobId, callbackGasLimit, fee).
    function postJobWithCallback(
        bytes32 datasetId,
        string calldata query,
        uint8 committeeSize,
        uint8 threshold,
        uint16 minProviders,
        uint40 timeoutS,
        uint256 callbackGasLimit
    ) external payable returns (uint256 jobId) {
        if (callbackGasLimit > MAX_JOB_CALLBACK_GAS) {
            revert JobCallbackGasTooHigh(callbackGasLimit, MAX_JOB_CALLBACK_GAS);
        }
        uint256 fee = jobCallbackFeeWei(callbackGasLimit);
        uint256 minWei = minPaymentWei + fee;
        if (msg.value < minWei) revert JobPaymentTooLow(msg.value, minWei);
        jobId = _post(datasetId, query, committeeSize, threshold, minProviders, timeoutS, msg.value - fee);
        if (callbackGasLimit != 0) {
            _jobs[jobId].callbackGasLimit = uint32(callbackGasLimit); // warm slot: ~100 gas
            _callbackFeeWei[jobId] = fee; // > 0: the callback gas price is at least 1 gwei
            emit JobCallbackRequested(jobId, callbackGasLimit, fee);
        }
    }

    /// @notice Draw the committee of an Open job from the output of its beacon round (or that
    ///         round's successor if it failed); anyone may call, typically a node.
    /// @dev The candidates are the nodes eligible at the round's commit block (registered before
    ///      it, not exiting at it), sorted ascending, so the set was fixed before anybody could
    ///      know the output. Sampling without replacement: partial Fisher-Yates, step i swaps
    ///      position i with i + keccak256(abi.encode(seed, i)) mod (m - i), seed =
    ///      keccak256(abi.encode(COMMITTEE_SEED_TAG, output, jobId)); the first n are sorted ascending.
    ///      Reverts JobNotOpen(jobId), JobDeadlinePassed(deadline), JobCommitteeAlreadyAssigned(jobId),
    ///      JobSeedRoundFailed(round) if the round failed after its commit (the job is then refunded
    ///      at its deadline), JobSeedNotReady(round) until the round is Finalized,
    ///      JobTooFewEligibleNodes(m, n).
    ///      Emits CommitteeAssigned.
    function assignCommittee(uint256 jobId) external returns (address[] memory committee) {
        JobRecord storage job = _jobs[jobId];
        if (job.status != JobStatus.Open) revert JobNotOpen(jobId);
        uint256 deadline = job.deadline;
        if (block.timestamp > deadline) revert JobDeadlinePassed(deadline);
        if (job.committeeHash != bytes32(0)) revert JobCommitteeAlreadyAssigned(jobId);
        (uint256 roundId, bytes32 output, uint256 commitBlock, bool finalized, bool failed) = _roundSeed(job.seedRound);
        if (failed) revert JobSeedRoundFailed(roundId);
        if (!finalized) revert JobSeedNotReady(roundId);
        committee = drawCommittee(
            _eligibleNodesAt(commitBlock),
            job.committeeSize,
            keccak256(abi.encode(COMMITTEE_SEED_TAG, output, jobId))
        );
        job.committeeHash = _hashMemory(committee);
        emit CommitteeAssigned(jobId, roundId, committee);
    }

    /// @notice The sampling rule of assignCommittee: `n` of `candidates` (ascending) drawn
    ///         without replacement with `seed`, returned ascending.
    /// @dev Reverts JobTooFewEligibleNodes(m, n) if there are fewer than n candidates.
    function drawCommittee(
        address[] memory candidates,
        uint256 n,
        bytes32 seed
    ) public pure virtual returns (address[] memory committee) {
        uint256 m = candidates.length;
        if (m < n) revert JobTooFewEligibleNodes(m, n);
        for (uint256 i = 0; i < n; ++i) {
            uint256 j = i + (uint256(keccak256(abi.encode(seed, i))) % (m - i));
            (candidates[i], candidates[j]) = (candidates[j], candidates[i]);
        }
        committee = new address[](n);
        for (uint256 i = 0; i < n; ++i) {
            address a = candidates[i];
            uint256 k = i;
            while (k > 0 && committee[k - 1] > a) {
                committee[k] = committee[k - 1];
                --k;
            }
            committee[k] = a;
        }
    }

    /// @notice Finalize an Open job with its opened result; anyone may submit.
    /// @param jobId The job.
    /// @param aggregates Opened, centered-lifted result values (1..64); resultHash =
    ///        keccak256(abi.encodePacked(aggregates)).
    /// @param committee The job's committee exactly as posted (checked against committeeHash).
    /// @param inputs Contributing providers' signed InputCommitments, providers strictly ascending.
    /// @param signatures >= t+1 members' ResultCommitment signatures, signers strictly ascending.
    /// @dev Reverts, in this order: JobNotOpen(jobId), JobDeadlinePassed(deadline),
    ///      JobCommitteeNotAssigned(jobId), JobInvalidAggregates(), JobCommitteeMismatch(),
    ///      JobTooFewProviders(have, need), then per provider JobProvidersNotSorted(i) /
    ///      RegistryNotRegistered(provider) / JobInvalidProviderSignature(provider), then
    ///      JobTooFewSignatures(have, need), then per signature JobInvalidSignature(i) /
    ///      JobSignersNotSorted(i) (also rejects duplicates) / JobNotCommitteeMember(signer).
    ///      Effects: status Finalized; providerCount, signerMask and resultHash stored (proofHash
    ///      and inputsHash are logged in JobFinalized); escrow split equally among the signers
    ///      (remainder to the first) and credited as rewards (pull payment; no ETH moves here).
    ///      Emits JobFinalized. Then, for a job posted with a callback (after every effect above:
    ///      the job is already Finalized, so a re-entering consumer cannot finalize or reclaim it
    ///      again): the callback fee is credited to msg.sender, the buyer's onMPCResult(jobId,
    ///      aggregates) is called with exactly its callbackGasLimit (return data ignored, not
    ///      copied) and JobCallback(jobId, msg.sender, fee, ok) is emitted. Reverts
    ///      ExactGasCallInsufficientGas(gasleft, needed) if the caller did not forward enough gas
    ///      for the callback to get its full limit (so a finalizer cannot make it fail on
    ///      purpose); a buyer without code, or a callback that reverts or runs out of gas, is only
    ///      recorded (ok = false).
    function finalizeJob(
        uint256 jobId,
        int256[] calldata aggregates,
        address[] calldata committee,
        ProviderInput[] calldata inputs,
        MemberSig[] calldata signatures
    ) external {
        JobRecord storage job = _jobs[jobId];
        _checkFinalizable(job, jobId, aggregates.length, committee, inputs.length);
        FinalizeCtx memory ctx;
        ctx.jobId = jobId;
        ctx.separator = _domainSeparatorV4();
        ctx.inputsHash = _checkInputs(ctx, inputs);
        ctx.resultHash = _hashWords(aggregates);
        _settle(job, ctx, committee, signatures, inputs.length);
        _emitFinalized(ctx, uint16(inputs.length), aggregates);
        uint256 limit = job.callbackGasLimit;
        if (limit != 0) _deliver(job.buyer, jobId, limit, aggregates);
    }

    /// @notice Refund the escrow (wei), plus the callback fee of a job posted with a callback, of a
    ///         job that expired without a valid result.
    /// @dev Only the buyer. Reverts JobNotBuyer() if the caller is not the buyer (or the job does not
    ///      exist), JobNotOpen(jobId) if it was finalized or refunded already,
    ///      JobDeadlineNotReached(deadline) while block.timestamp <= deadline, MarketTransferFailed() if
    ///      the buyer refuses the payment. Emits JobRefunded(jobId, buyer, amountWei).
    function reclaimEscrow(uint256 jobId) external nonReentrant {
        JobRecord storage job = _jobs[jobId];
        if (job.buyer != msg.sender) revert JobNotBuyer();
        if (job.status != JobStatus.Open) revert JobNotOpen(jobId);
        uint256 deadline = job.deadline;
        if (block.timestamp <= deadline) revert JobDeadlineNotReached(deadline);
        uint256 amount = job.escrowWei;
        if (job.callbackGasLimit != 0) {
            amount += _callbackFeeWei[jobId];
            delete _callbackFeeWei[jobId];
        }

        job.status = JobStatus.Refunded;
        emit JobRefunded(jobId, msg.sender, amount);

        // slither-disable-next-line arbitrary-send-eth,low-level-calls
        (bool ok, ) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert MarketTransferFailed();
    }

    // ------------------------------------------------------------------ views

    /// @notice Number of jobs ever posted; job ids are 1..jobCount().
    function jobCount() external view returns (uint256) {
        return _nextJobId - 1;
    }

    /// @notice The stored job `jobId` (all zero if it does not exist); its callback settings are
    ///         returned by jobCallback.
    function getJob(uint256 jobId) external view returns (Job memory) {
        JobRecord storage r = _jobs[jobId];
        return
            Job(
                r.buyer,
                r.escrowWei,
                r.specHash,
                r.committeeHash,
                r.deadline,
                r.committeeSize,
                r.threshold,
                r.minProviders,
                r.status,
                r.providerCount,
                r.signerMask,
                r.seedRound,
                r.resultHash
            );
    }

    /// @notice Callback gas limit of job `jobId` (0: no callback) and its callback fee (wei)
    ///         still held (0 once credited to the finalizer or refunded).
    function jobCallback(uint256 jobId) external view returns (uint256 callbackGasLimit, uint256 feeWei) {
        return (_jobs[jobId].callbackGasLimit, _callbackFeeWei[jobId]);
    }

    /// @notice Callback fee (wei) postJobWithCallback charges now for `callbackGasLimit` gas:
    ///         callbackGasLimit * callbackGasPriceWei() (2 x base fee + 1 gwei), on top of the
    ///         escrow.
    function jobCallbackFeeWei(uint256 callbackGasLimit) public view returns (uint256) {
        return callbackGasLimit * _callbackGasPriceWei();
    }

    /// @notice EIP-712 digest a provider signs for its input `commitment` to job `jobId`.
    function hashInputCommitment(uint256 jobId, bytes32 commitment) external view returns (bytes32) {
        return _inputDigest(_domainSeparatorV4(), jobId, commitment);
    }

    /// @notice EIP-712 digest a committee member signs for the result of job `jobId`.
    function hashResultCommitment(
        uint256 jobId,
        bytes32 resultHash,
        bytes32 inputsHash,
        bytes32 transcriptRoot
    ) external view returns (bytes32) {
        return _resultDigest(_domainSeparatorV4(), jobId, resultHash, inputsHash, transcriptRoot);
    }

    // ------------------------------------------------------------------ internal

    /// @dev Values shared by the finalization steps (bundled to keep the stack shallow).
    struct FinalizeCtx {
        uint256 jobId;
        bytes32 separator; // EIP-712 domain separator, computed once per call
        bytes32 resultHash;
        bytes32 inputsHash;
        bytes32 proofHash;
        uint256 share; // reward per signer (wei)
        uint256 remainder; // escrow % signers, paid to the first signer (wei)
        uint32 mask;
    }

    // Hashing helpers. They use the free memory area as scratch space without allocating
    // (memory-safe), which saves the allocations of abi.encode in the signature loops.

    /// @dev keccak256(abi.encode(a, b, c)) for three 32-byte words.
    function _hash3(bytes32 a, bytes32 b, bytes32 c) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, a)
            mstore(add(p, 0x20), b)
            mstore(add(p, 0x40), c)
            h := keccak256(p, 0x60)
        }
    }

    /// @dev keccak256(abi.encodePacked(address[])): each element as a 32-byte word. Dirty upper
    ///      bits are hashed as given, so only the canonical encoding can match a stored hash.
    function _hashAddresses(address[] calldata list) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            let len := shl(5, list.length)
            calldatacopy(p, list.offset, len)
            h := keccak256(p, len)
        }
    }

    /// @dev keccak256(abi.encodePacked(address[])) of a memory array.
    function _hashMemory(address[] memory list) private pure returns (bytes32) {
        return keccak256(abi.encodePacked(list));
    }

    /// @dev keccak256(abi.encodePacked(int256[])).
    function _hashWords(int256[] calldata words) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let p := mload(0x40)
            let len := shl(5, words.length)
            calldatacopy(p, words.offset, len)
            h := keccak256(p, len)
        }
    }

    /// @dev EIP-712 digest keccak256("\x19\x01" || separator || structHash).
    function _typedDigest(bytes32 separator, bytes32 structHash) private pure returns (bytes32) {
        return MessageHashUtils.toTypedDataHash(separator, structHash);
    }

    function _inputDigest(bytes32 separator, uint256 jobId, bytes32 commitment) private pure returns (bytes32) {
        return _typedDigest(separator, _hash3(INPUT_COMMITMENT_TYPEHASH, bytes32(jobId), commitment));
    }

    function _resultDigest(
        bytes32 separator,
        uint256 jobId,
        bytes32 resultHash,
        bytes32 inputsHash,
        bytes32 transcriptRoot
    ) private pure returns (bytes32 digest) {
        bytes32 structHash;
        bytes32 typeHash = RESULT_COMMITMENT_TYPEHASH;
        assembly ("memory-safe") {
            let p := mload(0x40)
            mstore(p, typeHash)
            mstore(add(p, 0x20), jobId)
            mstore(add(p, 0x40), resultHash)
            mstore(add(p, 0x60), inputsHash)
            mstore(add(p, 0x80), transcriptRoot)
            structHash := keccak256(p, 0xa0)
        }
        digest = _typedDigest(separator, structHash);
    }

    function _memberDigest(FinalizeCtx memory ctx, bytes32 transcriptRoot) private pure returns (bytes32) {
        return _resultDigest(ctx.separator, ctx.jobId, ctx.resultHash, ctx.inputsHash, transcriptRoot);
    }

    /// @dev Signer of `digest`, or address(0) if the signature is malformed, has a high s or an
    ///      invalid v (OpenZeppelin ECDSA.tryRecover).
    function _recover(bytes32 digest, Sig calldata sig) private pure returns (address signer) {
        ECDSA.RecoverError err;
        (signer, err, ) = ECDSA.tryRecover(digest, sig.v, sig.r, sig.s);
        if (err != ECDSA.RecoverError.NoError) signer = address(0);
    }

    /// @dev Checks (see postJob for the order; the payment check is on `escrowWei`, which is
    ///      msg.value for postJob) and stores a job escrowing `escrowWei`. postJobWithCallback
    ///      adds its callback fields afterwards: passing the callback limit in here would make
    ///      postJob call this with a literal 0, which the optimizer's function specializer turns
    ///      into a second copy of this function (~700 bytes of the 24,576-byte EIP-170 limit).
    function _post(
        bytes32 datasetId,
        string calldata query,
        uint8 committeeSize,
        uint8 threshold,
        uint16 minProviders,
        uint40 timeoutS,
        uint256 escrowWei
    ) private returns (uint256 jobId) {
        if (escrowWei < minPaymentWei) revert JobPaymentTooLow(escrowWei, minPaymentWei);
        _checkPost(query, committeeSize, threshold, minProviders, timeoutS);
        uint64 seedRound = _requestSeedRound();
        jobId = _nextJobId++;
        uint40 deadline = uint40(block.timestamp) + timeoutS;
        JobRecord storage job = _jobs[jobId];
        job.buyer = msg.sender;
        job.escrowWei = SafeCast.toUint96(escrowWei);
        job.specHash = keccak256(abi.encode(datasetId, keccak256(bytes(query))));
        job.deadline = deadline;
        job.seedRound = seedRound;
        job.committeeSize = committeeSize;
        job.threshold = threshold;
        job.minProviders = minProviders;
        job.status = JobStatus.Open;
        emit JobPosted(
            jobId,
            msg.sender,
            datasetId,
            query,
            committeeSize,
            seedRound,
            threshold,
            minProviders,
            deadline,
            escrowWei
        );
    }

    /// @dev postJob's argument checks after the payment (see postJob for the order).
    function _checkPost(
        string calldata query,
        uint8 committeeSize,
        uint8 threshold,
        uint16 minProviders,
        uint40 timeoutS
    ) private view {
        uint256 qlen = bytes(query).length;
        if (qlen == 0 || qlen > MAX_QUERY_BYTES) revert JobInvalidQuery();
        uint256 n = committeeSize;
        if (n < MIN_COMMITTEE || n > MAX_COMMITTEE) revert JobInvalidCommitteeSize(n);
        // Honest majority: with n >= 2t+1, the t+1 honest openings in any 2t+1 consistent ones
        // pin down the sharing polynomial, so a corrupt member's wrong share is always caught.
        // With n <= 2t, t corrupt members can make an honest member reconstruct (and sign) a
        // value of their choice.
        if (threshold == 0 || 2 * uint256(threshold) >= n) revert JobInvalidThreshold(threshold, n);
        if (minProviders == 0) revert JobInvalidMinProviders();
        if (timeoutS == 0 || timeoutS > maxTimeoutS) revert JobInvalidTimeout(timeoutS);
    }

    /// @dev Checks made before looking at any signature (see finalizeJob for the order).
    function _checkFinalizable(
        JobRecord storage job,
        uint256 jobId,
        uint256 nAggregates,
        address[] calldata committee,
        uint256 nInputs
    ) private view {
        if (job.status != JobStatus.Open) revert JobNotOpen(jobId);
        uint256 deadline = job.deadline;
        if (block.timestamp > deadline) revert JobDeadlinePassed(deadline);
        if (job.committeeHash == bytes32(0)) revert JobCommitteeNotAssigned(jobId);
        if (nAggregates == 0 || nAggregates > MAX_AGGREGATES) revert JobInvalidAggregates();
        if (_hashAddresses(committee) != job.committeeHash) revert JobCommitteeMismatch();
        uint256 need = job.minProviders;
        if (nInputs < need) revert JobTooFewProviders(nInputs, need);
    }

    /// @dev Providers: strictly ascending, registered, InputCommitment signature valid.
    ///      Returns inputsHash (hash chain over (provider, commitment)).
    function _checkInputs(
        FinalizeCtx memory ctx,
        ProviderInput[] calldata inputs
    ) private view returns (bytes32 inputsHash) {
        address prev = address(0);
        for (uint256 i = 0; i < inputs.length; ++i) {
            ProviderInput calldata input = inputs[i];
            address provider = input.provider;
            bytes32 commitment = input.commitment;
            if (provider <= prev) revert JobProvidersNotSorted(i);
            if (!_isRegisteredNode(provider)) revert RegistryNotRegistered(provider);
            if (_recover(_inputDigest(ctx.separator, ctx.jobId, commitment), input.sig) != provider) {
                revert JobInvalidProviderSignature(provider);
            }
            inputsHash = _hash3(inputsHash, bytes32(uint256(uint160(provider))), commitment);
            prev = provider;
        }
    }

    /// @dev Checks the signature count and the signatures, credits the rewards and stores the
    ///      result. Crediting is an internal storage write only (no external call).
    function _settle(
        JobRecord storage job,
        FinalizeCtx memory ctx,
        address[] calldata committee,
        MemberSig[] calldata signatures,
        uint256 nInputs
    ) private {
        uint256 k = signatures.length;
        uint256 need = uint256(job.threshold) + 1;
        if (k < need) revert JobTooFewSignatures(k, need);
        uint256 escrow = job.escrowWei;
        ctx.share = escrow / k;
        ctx.remainder = escrow - ctx.share * k;
        _checkSignaturesAndCredit(ctx, committee, signatures);

        job.status = JobStatus.Finalized;
        job.providerCount = SafeCast.toUint16(nInputs);
        job.signerMask = ctx.mask;
        job.resultHash = ctx.resultHash;
    }

    function _emitFinalized(FinalizeCtx memory ctx, uint16 providerCount, int256[] calldata aggregates) private {
        emit JobFinalized(
            ctx.jobId,
            ctx.resultHash,
            ctx.proofHash,
            ctx.inputsHash,
            providerCount,
            ctx.mask,
            ctx.share,
            aggregates
        );
    }

    /// @dev Credits the callback fee of `jobId` to msg.sender (the finalizer pays the callback's
    ///      gas) and calls `consumer`.onMPCResult(jobId, aggregates) with exactly `limit` gas
    ///      (ExactGasCall: ok = false if `consumer` has no code, reverted or ran out of gas).
    ///      Called after every effect of finalizeJob (checks-effects-interactions).
    function _deliver(address consumer, uint256 jobId, uint256 limit, int256[] calldata aggregates) private {
        uint256 fee = _callbackFeeWei[jobId];
        delete _callbackFeeWei[jobId];
        _creditReward(msg.sender, fee);
        bytes memory data = abi.encodeCall(IMPCJobConsumer.onMPCResult, (jobId, aggregates));
        bool ok = ExactGasCall.callWithExactGas(consumer, limit, JOB_CALLBACK_RESERVE_GAS, data);
        emit JobCallback(jobId, msg.sender, fee, ok);
    }

    /// @dev Member signatures: valid, signers strictly ascending, each in the committee (merge-walk
    ///      over the sorted committee). Credits each signer; sets ctx.mask and ctx.proofHash.
    function _checkSignaturesAndCredit(
        FinalizeCtx memory ctx,
        address[] calldata committee,
        MemberSig[] calldata signatures
    ) private {
        address prev = address(0);
        uint256 j = 0;
        uint256 mask = 0;
        bytes32 proofHash = bytes32(0);
        for (uint256 i = 0; i < signatures.length; ++i) {
            MemberSig calldata ms = signatures[i];
            bytes32 root = ms.transcriptRoot;
            address signer = _recover(_memberDigest(ctx, root), ms.sig);
            if (signer == address(0)) revert JobInvalidSignature(i);
            if (signer <= prev) revert JobSignersNotSorted(i);
            while (j < committee.length && committee[j] < signer) ++j;
            if (j == committee.length || committee[j] != signer) revert JobNotCommitteeMember(signer);
            mask |= 1 << j;
            ++j;
            proofHash = _hash3(proofHash, bytes32(uint256(uint160(signer))), root);
            _creditReward(signer, i == 0 ? ctx.share + ctx.remainder : ctx.share);
            prev = signer;
        }
        ctx.mask = uint32(mask); // committee.length <= 32, so mask < 2**32
        ctx.proofHash = proofHash;
    }
}
