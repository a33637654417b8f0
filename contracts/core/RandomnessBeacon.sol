// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IRandomnessConsumer} from "../interfaces/IRandomnessConsumer.sol";
import {ExactGasCall} from "../libraries/ExactGasCall.sol";
import {RegistryNotActive, RegistryNotRegistered, Sig} from "../libraries/MarketTypes.sol";

/// @title RandomnessBeacon — commit / reveal / recover randomness run by the registered nodes
/// @notice A round is opened by demand (a job post or a paid randomness request). The registered
///         nodes taking part each draw a secret contribution s_i in F_r and a salt, and deal Pedersen
///         verifiable shares of (s_i, salt_i) (threshold T) to the other nodes off chain. They agree
///         on the set Q of participants whose shares everybody in Q verified, and every member of Q
///         signs (EIP-712 BeaconCommit) the list of Q's commitments; one transaction puts Q on
///         chain (the commit). From that moment the output is fixed:
///             output = keccak256(abi.encode(chainid, beacon, roundId, sum_i s_i mod r)).
///         In the reveal phase each contribution is opened and checked against its commitment
///         c_i = keccak256(abi.encode(P.x, P.y, restHash)), P = s_i*G + salt_i*H on BN254 G1
///         (EIP-196 precompiles). After the reveal phase anyone holding T+1 shares of a withheld
///         contribution reconstructs it and submits it (recover); the same check applies, and the
///         participant that withheld is slashed. If contributions are still missing when the
///         recovery phase ends (fewer than T+1 honest share holders), the round fails visibly
///         (failRound): its output was fixed at the commit, so it is never re-drawn; it yields no
///         value and gets no successor, its requests stay unanswered and its jobs get no
///         committee. Only a round that never committed moves its requests and jobs to a new
///         round.
/// @dev Phases are bounded in blocks (phaseBlocks each): commit until openBlock + phaseBlocks,
///      reveal until commitBlock + phaseBlocks, recovery until commitBlock + 2 * phaseBlocks. A
///      phase ends early as soon as every contribution is in. Sources: Pedersen, "Non-interactive
///      and information-theoretic secure verifiable secret sharing", CRYPTO'91; EIP-196 (ecAdd,
///      ecMul); EIP-712. T = max(1, floor((N - 1) / 3)) for N Active nodes at opening, and Q needs
///      at least 2T + 1 members, so T+1 honest share holders exist if at most T are faulty.
abstract contract RandomnessBeacon is EIP712 {
    enum RoundStatus {
        None,
        Open, // commit phase
        Committed, // reveal and recovery phases
        Finalized,
        Failed
    }

    /// @notice A round as stored. Slot 0 packs the small fields.
    struct Round {
        uint40 openBlock;
        uint40 commitBlock;
        uint8 threshold;
        uint8 participantCount;
        uint8 settledCount; // revealed + recovered
        RoundStatus status;
        uint64 revealedMask; // bit i: participants[i] revealed itself
        uint64 recoveredMask; // bit i: participants[i]'s contribution was recovered
        bytes32 participantsHash; // keccak256(abi.encode(address[] participants, bytes32[] commitments))
        uint256 accumulator; // sum of the contributions opened so far, mod r (0 once Finalized)
        bytes32 output;
        uint96 potWei; // fees and slashed stake, paid to the revealers at finalization (carried
        // to the next round opened if nobody revealed)
        uint64 successor; // round that took over the requests of a round failed before its commit
    }

    /// @notice An opening of contribution `index` of a round.
    struct Opening {
        uint256 index;
        uint256 secret; // s_i, element of F_r
        uint256 salt; // salt_i, element of F_r
        bytes32 restHash; // keccak256 of the commitment points C_1..C_T
    }

    enum RequestStatus {
        None,
        Pending,
        Fulfilled,
        CallbackFailed
    }

    /// @notice A consumer's request for one random value.
    struct Request {
        address requester;
        uint64 roundId;
        uint24 callbackGasLimit;
        RequestStatus status;
    }

    /// @notice EIP-712 type hash of BeaconCommit(uint256 roundId,bytes32 participantsHash).
    bytes32 public constant BEACON_COMMIT_TYPEHASH = keccak256(
        "BeaconCommit(uint256 roundId,bytes32 participantsHash)"
    );
    /// @notice BN254 scalar field order r (the group order of G1).
    uint256 public constant FIELD_ORDER = 21888242871839275222246405745257275088548364400416034343698204186575808495617;
    /// @notice Pedersen generator H = try-and-increment hash of "MPCMarket/pedersen/H" (counter 0).
    uint256 public constant H_X = 0x0ad60f0bde053fa84253c242302a2e760d8989580a1e13e3c9df88c572d598fd;
    uint256 public constant H_Y = 0x17bc53eb26c2da0ba80350ba09b910cd8a6e61eeb45ea668a5051fabda18c382;
    /// @notice Most participants in a round (the masks are 64 bits).
    uint256 public constant MAX_PARTICIPANTS = 64;
    /// @notice Fewest Active nodes needed to open a round.
    uint256 public constant MIN_BEACON_NODES = 3;
    /// @notice Largest callback gas limit a request may ask for.
    uint256 public constant MAX_CALLBACK_GAS = 2_000_000;
    /// @dev Gas kept back for the bookkeeping after a callback.
    uint256 private constant CALLBACK_RESERVE_GAS = 10_000;

    /// @notice Length of each phase in blocks.
    uint40 public immutable phaseBlocks;
    /// @notice Price (wei) of one randomness request.
    uint96 public immutable randomnessFeeWei;
    /// @notice Stake (wei) seized from a participant whose contribution had to be recovered.
    uint96 public immutable beaconSlashWei;

    uint64 private _roundCount;
    uint64 private _pendingRound; // the round new requests join while it is Open
    uint256 private _requestCount;
    /// @dev Pot of a round that finalized without any revealer (all recovered): it goes to the
    ///      next round opened, so no fee or slashed stake is ever locked.
    uint96 private _carryWei;
    mapping(uint256 roundId => Round) private _rounds;
    mapping(uint256 requestId => Request) private _requests;
    /// @dev Callback gas paid with a request (wei), credited to whoever delivers it.
    mapping(uint256 requestId => uint256) private _callbackFeeWei;

    /// @notice Round `roundId` opened at `openBlock` with threshold T; commits accepted until
    ///         block `commitDeadline`; `activeNodes` were Active at opening.
    event RoundOpened(
        uint256 indexed roundId,
        uint256 openBlock,
        uint256 commitDeadline,
        uint8 threshold,
        uint256 activeNodes
    );
    /// @notice The participants of `roundId` and their commitments, in ascending address order.
    event RoundCommitted(
        uint256 indexed roundId,
        address[] participants,
        bytes32[] commitments,
        uint256 revealDeadline
    );
    /// @notice A contribution was opened: by its owner (recovered = false) or reconstructed from
    ///         T+1 shares after the reveal phase (recovered = true).
    event ContributionOpened(uint256 indexed roundId, address indexed participant, uint256 secret, bool recovered);
    /// @notice Round `roundId` produced `output`; each revealer was credited `rewardPerRevealerWei`.
    event RoundFinalized(
        uint256 indexed roundId,
        bytes32 output,
        uint64 revealedMask,
        uint64 recoveredMask,
        uint256 rewardPerRevealerWei
    );
    /// @notice Round `roundId` failed: no commit in time (its requests moved to round
    ///         `successor`), or contributions missing after recovery (`missingMask`; successor 0:
    ///         it yields no value).
    event RoundFailed(uint256 indexed roundId, uint256 successor, uint64 missingMask);
    /// @notice `requester` paid `feeWei` for a random value from round `roundId`.
    event RandomnessRequested(
        uint256 indexed requestId,
        address indexed requester,
        uint256 roundId,
        uint256 callbackGasLimit,
        uint256 feeWei
    );
    /// @notice Request `requestId` was answered with `value`; `callbackOk` is false if the
    ///         requester has no code (an EOA), or its callback reverted or ran out of gas (the
    ///         value stays readable).
    event RandomnessFulfilled(uint256 indexed requestId, uint256 roundId, bytes32 value, bool callbackOk);

    /// @notice A round must be opened but too few nodes are Active.
    /// @param active Active nodes now.
    /// @param need MIN_BEACON_NODES.
    error BeaconTooFewActiveNodes(uint256 active, uint256 need);
    /// @notice requestRandomness paid less than requestPriceWei(callbackGasLimit).
    /// @param sentWei msg.value (wei).
    /// @param needWei The price (wei).
    error BeaconFeeTooLow(uint256 sentWei, uint256 needWei);
    /// @notice A callback gas limit above MAX_CALLBACK_GAS.
    /// @param limit The callback gas limit asked for.
    /// @param max MAX_CALLBACK_GAS.
    error BeaconCallbackGasTooHigh(uint256 limit, uint256 max);
    /// @notice No round `roundId` was ever opened.
    /// @param roundId The round.
    error BeaconUnknownRound(uint256 roundId);
    /// @notice The round is no longer Open or its commit deadline passed (a late or second commit).
    /// @param roundId The round.
    error BeaconCommitPhaseClosed(uint256 roundId);
    /// @notice participants, commitments and sigs differ in length.
    error BeaconLengthMismatch();
    /// @notice Fewer participants than 2T + 1.
    /// @param have Participants passed.
    /// @param need 2T + 1.
    error BeaconTooFewParticipants(uint256 have, uint256 need);
    /// @notice More participants than MAX_PARTICIPANTS.
    /// @param have Participants passed.
    /// @param max MAX_PARTICIPANTS.
    error BeaconTooManyParticipants(uint256 have, uint256 max);
    /// @notice A participant is listed twice.
    /// @param participant The repeated address.
    error BeaconDuplicateCommit(address participant);
    /// @notice Participants not strictly ascending.
    /// @param index Position (0-based) of the first one out of order.
    error BeaconParticipantsNotSorted(uint256 index);
    /// @notice A participant's BeaconCommit signature is malformed or by someone else.
    /// @param participant The participant.
    error BeaconInvalidCommitSignature(address participant);
    /// @notice The round is not in its reveal or recovery phases (status Committed).
    /// @param roundId The round.
    error BeaconRoundNotCommitted(uint256 roundId);
    /// @notice reveal after the reveal phase (block.number > revealDeadline).
    /// @param roundId The round.
    /// @param revealDeadline Last block of the reveal phase.
    error BeaconRevealPhaseClosed(uint256 roundId, uint256 revealDeadline);
    /// @notice recover during the reveal phase (block.number <= revealDeadline).
    /// @param roundId The round.
    /// @param revealDeadline Last block of the reveal phase.
    error BeaconRecoveryNotOpen(uint256 roundId, uint256 revealDeadline);
    /// @notice recover after the recovery phase (block.number > recoveryDeadline).
    /// @param roundId The round.
    /// @param recoveryDeadline Last block of the recovery phase.
    error BeaconRecoveryPhaseClosed(uint256 roundId, uint256 recoveryDeadline);
    /// @notice participants and commitments do not hash to the committed participantsHash.
    error BeaconParticipantsMismatch();
    /// @notice An opening names a participant index past the end of Q.
    /// @param index The index given.
    error BeaconInvalidIndex(uint256 index);
    /// @notice None of the openings is new (all were on chain already, or none was given).
    /// @param roundId The round.
    error BeaconNothingToOpen(uint256 roundId);
    /// @notice An opening's secret or salt is not below FIELD_ORDER.
    error BeaconNotAFieldElement();
    /// @notice A reveal does not match the participant's commitment.
    /// @param participant The participant.
    error BeaconRevealMismatch(address participant);
    /// @notice A recovered contribution does not match the participant's commitment.
    /// @param participant The participant.
    error BeaconRecoveryMismatch(address participant);
    /// @notice failRound for a round that can still complete, or is final.
    /// @param roundId The round.
    error BeaconRoundNotFailable(uint256 roundId);
    /// @notice No request `requestId` was ever made.
    /// @param requestId The request.
    error BeaconUnknownRequest(uint256 requestId);
    /// @notice The request was answered already.
    /// @param requestId The request.
    error BeaconRequestNotPending(uint256 requestId);
    /// @notice The round serving the request is not Finalized (yet, or ever: Failed after its
    ///          commit).
    /// @param roundId The round finally serving the request.
    error BeaconRoundNotFinal(uint256 roundId);
    /// @notice An EIP-196 precompile call (ecMul, ecAdd) failed.
    error BeaconEcPrecompileFailed();

    constructor(uint40 phaseBlocks_, uint96 randomnessFeeWei_, uint96 beaconSlashWei_) {
        phaseBlocks = phaseBlocks_;
        randomnessFeeWei = randomnessFeeWei_;
        beaconSlashWei = beaconSlashWei_;
    }

    // ------------------------------------------------------------------ hooks (the registry)

    function _isActiveNode(address node) internal view virtual returns (bool);

    function _isRegisteredNode(address node) internal view virtual returns (bool);

    function _creditReward(address node, uint256 amountWei) internal virtual;

    function _activeNodes() internal view virtual returns (uint256);

    /// @dev Seize up to `amountWei` of `node`'s stake; returns the amount seized.
    function _slashNode(address node, uint256 amountWei) internal virtual returns (uint256);

    // ------------------------------------------------------------------ requests

    /// @notice Price (wei) of a request with `callbackGasLimit`: randomnessFeeWei for the round's
    ///         participants plus the callback's gas at callbackGasPriceWei() for whoever
    ///         delivers it.
    function requestPriceWei(uint256 callbackGasLimit) public view returns (uint256) {
        return randomnessFeeWei + callbackGasLimit * callbackGasPriceWei();
    }

    /// @notice Gas price (wei) at which callback gas is charged now: 2 x base fee + 1 gwei.
    function callbackGasPriceWei() public view returns (uint256) {
        return 2 * block.basefee + 1 gwei;
    }

    /// @notice Buy one random value. It is derived from the output of the round this request
    ///         joins (the Open round, or a new one) as keccak256(abi.encode(output, requestId)),
    ///         and delivered by fulfill() to msg.sender's onRandomness(requestId, value) with
    ///         `callbackGasLimit` gas (0 = no callback; read it with randomnessOf). Pay at least
    ///         requestPriceWei(callbackGasLimit): the callback part goes to the deliverer, the
    ///         rest to the round's revealers.
    /// @dev Reverts BeaconCallbackGasTooHigh(limit, max), BeaconFeeTooLow(sent, price),
    ///      BeaconTooFewActiveNodes(active, 3) if a round must be opened and fewer than 3 nodes are
    ///      Active. Emits RandomnessRequested (and RoundOpened).
    function requestRandomness(uint256 callbackGasLimit) external payable returns (uint256 requestId) {
        if (callbackGasLimit > MAX_CALLBACK_GAS) revert BeaconCallbackGasTooHigh(callbackGasLimit, MAX_CALLBACK_GAS);
        uint256 callbackFee = callbackGasLimit * callbackGasPriceWei();
        uint256 price = randomnessFeeWei + callbackFee;
        if (msg.value < price) revert BeaconFeeTooLow(msg.value, price);
        uint64 roundId = _requestRound();
        Round storage round = _rounds[roundId];
        round.potWei = SafeCast.toUint96(uint256(round.potWei) + msg.value - callbackFee);
        requestId = ++_requestCount;
        _requests[requestId] = Request(msg.sender, roundId, uint24(callbackGasLimit), RequestStatus.Pending);
        if (callbackFee != 0) _callbackFeeWei[requestId] = callbackFee;
        emit RandomnessRequested(requestId, msg.sender, roundId, callbackGasLimit, msg.value);
    }

    /// @notice Deliver the value of a Pending request whose round (or its successor) is
    ///         Finalized; anyone may call, and is credited the request's callback fee (pull
    ///         payment). The callback gets exactly callbackGasLimit gas (ExactGasCall); if the
    ///         requester has no code, or the callback reverts or runs out of gas, the request is
    ///         still answered (CallbackFailed) and the value stays readable through randomnessOf.
    /// @dev Reverts BeaconUnknownRequest(id), BeaconRequestNotPending(id), BeaconRoundNotFinal(round),
    ///      ExactGasCallInsufficientGas(gasleft, needed) if the caller did not forward enough gas
    ///      for the callback (so a caller cannot make it fail on purpose). Emits RandomnessFulfilled.
    function fulfill(uint256 requestId) external {
        Request storage req = _requests[requestId];
        if (req.status == RequestStatus.None) revert BeaconUnknownRequest(requestId);
        if (req.status != RequestStatus.Pending) revert BeaconRequestNotPending(requestId);
        uint256 roundId = _resolveRound(req.roundId);
        Round storage round = _rounds[roundId];
        if (round.status != RoundStatus.Finalized) revert BeaconRoundNotFinal(roundId);
        bytes32 value = keccak256(abi.encode(round.output, requestId));
        uint256 limit = req.callbackGasLimit;
        address requester = req.requester;

        bool ok = true;
        uint256 callbackFee = _callbackFeeWei[requestId];
        if (callbackFee != 0) {
            delete _callbackFeeWei[requestId];
            _creditReward(msg.sender, callbackFee); // the deliverer paid the callback's gas
        }
        if (limit > 0) {
            req.status = RequestStatus.Fulfilled; // effects before the interaction
            bytes memory data = abi.encodeCall(IRandomnessConsumer.onRandomness, (requestId, value));
            ok = ExactGasCall.callWithExactGas(requester, limit, CALLBACK_RESERVE_GAS, data);
            if (!ok) req.status = RequestStatus.CallbackFailed;
        } else {
            req.status = RequestStatus.Fulfilled;
        }
        emit RandomnessFulfilled(requestId, roundId, value, ok);
    }

    // ------------------------------------------------------------------ the round

    /// @notice Put the agreed participant set Q of round `roundId` on chain, with every member's
    ///         EIP-712 BeaconCommit(roundId, participantsHash) signature. Anyone may submit.
    /// @param participants Q, strictly ascending, each an Active registered node; 2T+1..64 of them.
    /// @param commitments commitments[i] = keccak256(abi.encode(P.x, P.y, restHash)) of participant i.
    /// @param sigs sigs[i] by participants[i].
    /// @dev Reverts BeaconUnknownRound(id); BeaconCommitPhaseClosed(id) if the round is no longer Open or its
    ///      commit deadline passed (a late or second commit); BeaconLengthMismatch();
    ///      BeaconTooFewParticipants(have, 2T+1); BeaconTooManyParticipants(have, 64); then per participant
    ///      BeaconDuplicateCommit(p) / BeaconParticipantsNotSorted(i) / RegistryNotRegistered(p) /
    ///      RegistryNotActive(p) /
    ///      BeaconInvalidCommitSignature(p). Emits RoundCommitted.
    function commitRound(
        uint256 roundId,
        address[] calldata participants,
        bytes32[] calldata commitments,
        Sig[] calldata sigs
    ) external {
        Round storage round = _rounds[roundId];
        RoundStatus status = round.status;
        if (status == RoundStatus.None) revert BeaconUnknownRound(roundId);
        if (status != RoundStatus.Open || block.number > uint256(round.openBlock) + phaseBlocks) {
            revert BeaconCommitPhaseClosed(roundId);
        }
        uint256 n = participants.length;
        if (commitments.length != n || sigs.length != n) revert BeaconLengthMismatch();
        uint256 need = 2 * uint256(round.threshold) + 1;
        if (n < need) revert BeaconTooFewParticipants(n, need);
        if (n > MAX_PARTICIPANTS) revert BeaconTooManyParticipants(n, MAX_PARTICIPANTS);
        bytes32 participantsHash = keccak256(abi.encode(participants, commitments));
        bytes32 digest = MessageHashUtils.toTypedDataHash(
            _domainSeparatorV4(),
            keccak256(abi.encode(BEACON_COMMIT_TYPEHASH, roundId, participantsHash))
        );
        address prev = address(0);
        for (uint256 i = 0; i < n; ++i) {
            address p = participants[i];
            if (p == prev) revert BeaconDuplicateCommit(p);
            if (p < prev) revert BeaconParticipantsNotSorted(i);
            if (!_isRegisteredNode(p)) revert RegistryNotRegistered(p);
            if (!_isActiveNode(p)) revert RegistryNotActive(p);
            Sig calldata sig = sigs[i];
            (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecover(digest, sig.v, sig.r, sig.s);
            if (err != ECDSA.RecoverError.NoError || signer != p) revert BeaconInvalidCommitSignature(p);
            prev = p;
        }
        round.commitBlock = uint40(block.number);
        round.participantCount = uint8(n);
        round.status = RoundStatus.Committed;
        round.participantsHash = participantsHash;
        if (_pendingRound == roundId) _pendingRound = 0;
        emit RoundCommitted(roundId, participants, commitments, block.number + phaseBlocks);
    }

    /// @notice Open contributions of round `roundId` during its reveal phase; anyone may submit
    ///         (participants send their openings to each other and one batches them).
    /// @param participants The round's Q exactly as committed.
    /// @param commitments Q's commitments exactly as committed.
    /// @dev Reverts BeaconUnknownRound / BeaconRoundNotCommitted(id), BeaconRevealPhaseClosed(id, deadline) after
    ///      commitBlock + phaseBlocks, BeaconParticipantsMismatch(), and per opening BeaconInvalidIndex(i),
    ///      BeaconNotAFieldElement(), BeaconRevealMismatch(p); openings already on chain are skipped, and
    ///      BeaconNothingToOpen(id) if none is new. The last opening finalizes the round. Emits
    ///      ContributionOpened per new opening (and RoundFinalized).
    function reveal(
        uint256 roundId,
        address[] calldata participants,
        bytes32[] calldata commitments,
        Opening[] calldata openings
    ) external {
        Round storage round = _committedRound(roundId);
        uint256 revealDeadline = uint256(round.commitBlock) + phaseBlocks;
        if (block.number > revealDeadline) revert BeaconRevealPhaseClosed(roundId, revealDeadline);
        _open(roundId, round, participants, commitments, openings, false);
    }

    /// @notice Submit contributions reconstructed from T+1 verified shares after the reveal phase;
    ///         anyone may submit. Each is checked against its owner's commitment exactly like a
    ///         reveal, and the owner (who withheld) is slashed when the round finalizes.
    /// @dev Reverts BeaconUnknownRound / BeaconRoundNotCommitted(id), BeaconRecoveryNotOpen(id, revealDeadline)
    ///      during the reveal phase, BeaconRecoveryPhaseClosed(id, deadline) after
    ///      commitBlock + 2 * phaseBlocks, BeaconParticipantsMismatch(), and per opening BeaconInvalidIndex(i),
    ///      BeaconNotAFieldElement(), BeaconRecoveryMismatch(p); openings already on chain are skipped, and
    ///      BeaconNothingToOpen(id) if none is new. Emits ContributionOpened.
    function recover(
        uint256 roundId,
        address[] calldata participants,
        bytes32[] calldata commitments,
        Opening[] calldata openings
    ) external {
        Round storage round = _committedRound(roundId);
        uint256 revealDeadline = uint256(round.commitBlock) + phaseBlocks;
        if (block.number <= revealDeadline) revert BeaconRecoveryNotOpen(roundId, revealDeadline);
        uint256 recoveryDeadline = revealDeadline + phaseBlocks;
        if (block.number > recoveryDeadline) revert BeaconRecoveryPhaseClosed(roundId, recoveryDeadline);
        _open(roundId, round, participants, commitments, openings, true);
    }

    /// @notice Declare round `roundId` Failed; anyone may call.
    ///         - Never committed by its commit deadline: nothing about its output was ever fixed,
    ///           so its requests and jobs move to a new round (its `successor`; 0 if fewer than 3
    ///           nodes are Active, in which case they stay unserved).
    ///         - Committed, but contributions still missing after its recovery deadline (more than
    ///           T withheld): participants that did not reveal are slashed, and the round yields
    ///           NO value and gets NO successor: a round whose output was fixed (and may be known
    ///           to the withholders) is never re-drawn, so failing it buys no second chance. Its
    ///           jobs get no committee (they are refunded at their deadlines) and its requests no
    ///           value.
    ///         The pot goes to the next round opened.
    /// @dev Reverts BeaconUnknownRound(id), BeaconRoundNotFailable(id) if the round can still complete or is
    ///      final, BeaconParticipantsMismatch(). Emits RoundFailed(id, successor, missingMask).
    /// @param participants The round's Q as committed (empty if it never committed).
    /// @param commitments Q's commitments as committed (empty if it never committed).
    function failRound(uint256 roundId, address[] calldata participants, bytes32[] calldata commitments) external {
        Round storage round = _rounds[roundId];
        RoundStatus status = round.status;
        if (status == RoundStatus.None) revert BeaconUnknownRound(roundId);
        uint64 missing = 0;
        if (status == RoundStatus.Open) {
            if (block.number <= uint256(round.openBlock) + phaseBlocks) revert BeaconRoundNotFailable(roundId);
        } else if (status == RoundStatus.Committed) {
            if (block.number <= uint256(round.commitBlock) + 2 * uint256(phaseBlocks)) {
                revert BeaconRoundNotFailable(roundId);
            }
            if (keccak256(abi.encode(participants, commitments)) != round.participantsHash) {
                revert BeaconParticipantsMismatch();
            }
            uint256 n = round.participantCount;
            uint64 revealed = round.revealedMask;
            uint64 opened = revealed | round.recoveredMask;
            uint256 seized = 0;
            for (uint256 i = 0; i < n; ++i) {
                uint64 bit = uint64(1) << i;
                if (opened & bit == 0) missing |= bit;
                // Whoever did not reveal withheld, recovered or not (as at finalization).
                if (revealed & bit == 0) seized += _slashNode(participants[i], beaconSlashWei);
            }
            round.potWei = SafeCast.toUint96(uint256(round.potWei) + seized);
        } else {
            revert BeaconRoundNotFailable(roundId);
        }
        round.status = RoundStatus.Failed;
        if (_pendingRound == roundId) _pendingRound = 0;
        _carryWei = SafeCast.toUint96(uint256(_carryWei) + round.potWei);
        round.potWei = 0;
        uint64 successor = 0;
        if (status == RoundStatus.Open && _activeNodes() >= MIN_BEACON_NODES) {
            successor = _requestRound();
            round.successor = successor;
        }
        emit RoundFailed(roundId, successor, missing);
    }

    // ------------------------------------------------------------------ views

    /// @notice Number of rounds ever opened; ids are 1..roundCount().
    function roundCount() external view returns (uint256) {
        return _roundCount;
    }

    /// @notice The Open round new requests join (0 if none).
    function pendingRound() external view returns (uint256) {
        return _pendingRound;
    }

    /// @notice The stored round `roundId` (all zero if unknown).
    function getRound(uint256 roundId) external view returns (Round memory) {
        return _rounds[roundId];
    }

    /// @notice The round that finally serves requests of `roundId` (follows Failed -> successor).
    function resolveRound(uint256 roundId) external view returns (uint256) {
        return _resolveRound(roundId);
    }

    /// @notice Number of randomness requests ever made.
    function requestCount() external view returns (uint256) {
        return _requestCount;
    }

    /// @notice The stored request `requestId`.
    function getRequest(uint256 requestId) external view returns (Request memory) {
        return _requests[requestId];
    }

    /// @notice The random value of request `requestId` once its round is Finalized.
    /// @dev Reverts BeaconUnknownRequest(id), BeaconRoundNotFinal(round).
    function randomnessOf(uint256 requestId) external view returns (bytes32) {
        Request storage req = _requests[requestId];
        if (req.status == RequestStatus.None) revert BeaconUnknownRequest(requestId);
        uint256 roundId = _resolveRound(req.roundId);
        Round storage round = _rounds[roundId];
        if (round.status != RoundStatus.Finalized) revert BeaconRoundNotFinal(roundId);
        return keccak256(abi.encode(round.output, requestId));
    }

    /// @notice EIP-712 digest each member of Q signs to commit round `roundId`.
    function hashBeaconCommit(uint256 roundId, bytes32 participantsHash) external view returns (bytes32) {
        return
            MessageHashUtils.toTypedDataHash(
                _domainSeparatorV4(),
                keccak256(abi.encode(BEACON_COMMIT_TYPEHASH, roundId, participantsHash))
            );
    }

    // ------------------------------------------------------------------ internal

    /// @dev The round a new request joins: the pending Open round if its commit phase is still
    ///      running, else a newly opened one.
    function _requestRound() internal returns (uint64 roundId) {
        roundId = _pendingRound;
        if (roundId != 0) {
            Round storage pending = _rounds[roundId];
            if (pending.status == RoundStatus.Open && block.number <= uint256(pending.openBlock) + phaseBlocks) {
                return roundId;
            }
        }
        uint256 active = _activeNodes();
        if (active < MIN_BEACON_NODES) revert BeaconTooFewActiveNodes(active, MIN_BEACON_NODES);
        uint256 t = (active - 1) / 3;
        if (t == 0) t = 1;
        if (2 * t + 1 > MAX_PARTICIPANTS) t = (MAX_PARTICIPANTS - 1) / 2;
        roundId = ++_roundCount;
        Round storage round = _rounds[roundId];
        round.openBlock = uint40(block.number);
        round.threshold = uint8(t);
        round.status = RoundStatus.Open;
        uint96 carry = _carryWei;
        if (carry != 0) {
            round.potWei = carry;
            _carryWei = 0;
        }
        _pendingRound = roundId;
        emit RoundOpened(roundId, block.number, block.number + phaseBlocks, uint8(t), active);
    }

    /// @dev Follow Failed rounds to their successors (a round failed after its commit has none).
    function _resolveRound(uint256 roundId) internal view returns (uint256) {
        Round storage round = _rounds[roundId];
        while (round.status == RoundStatus.Failed && round.successor != 0) {
            roundId = round.successor;
            round = _rounds[roundId];
        }
        return roundId;
    }

    /// @dev (round finally serving `roundId`, its output, commit block and status).
    function _roundState(
        uint256 roundId
    ) internal view returns (uint256 finalRoundId, bytes32 output, uint256 commitBlock, RoundStatus status) {
        finalRoundId = _resolveRound(roundId);
        Round storage round = _rounds[finalRoundId];
        return (finalRoundId, round.output, round.commitBlock, round.status);
    }

    function _committedRound(uint256 roundId) private view returns (Round storage round) {
        round = _rounds[roundId];
        if (round.status == RoundStatus.None) revert BeaconUnknownRound(roundId);
        if (round.status != RoundStatus.Committed) revert BeaconRoundNotCommitted(roundId);
    }

    function _open(
        uint256 roundId,
        Round storage round,
        address[] calldata participants,
        bytes32[] calldata commitments,
        Opening[] calldata openings,
        bool recovered
    ) private {
        if (keccak256(abi.encode(participants, commitments)) != round.participantsHash) {
            revert BeaconParticipantsMismatch();
        }
        uint256 n = participants.length;
        uint64 opened = round.revealedMask | round.recoveredMask;
        uint64 newly = 0;
        uint256 added = 0;
        uint256 acc = round.accumulator;
        for (uint256 k = 0; k < openings.length; ++k) {
            Opening calldata o = openings[k];
            uint256 i = o.index;
            if (i >= n) revert BeaconInvalidIndex(i);
            address p = participants[i];
            uint64 bit = uint64(1) << i;
            // Already opened (by a concurrent batch or a participant's own reveal): skipped, so
            // nobody can make an honest batch revert by front-running one of its openings.
            if ((opened | newly) & bit != 0) continue;
            if (o.secret >= FIELD_ORDER || o.salt >= FIELD_ORDER) revert BeaconNotAFieldElement();
            (uint256 px, uint256 py) = _pedersen(o.secret, o.salt);
            if (keccak256(abi.encode(px, py, o.restHash)) != commitments[i]) {
                if (recovered) revert BeaconRecoveryMismatch(p);
                revert BeaconRevealMismatch(p);
            }
            acc = addmod(acc, o.secret, FIELD_ORDER);
            newly |= bit;
            ++added;
            emit ContributionOpened(roundId, p, o.secret, recovered);
        }
        if (added == 0) revert BeaconNothingToOpen(roundId);
        if (recovered) round.recoveredMask |= newly;
        else round.revealedMask |= newly;
        uint256 settled = uint256(round.settledCount) + added;
        round.settledCount = uint8(settled);
        // The partial sum is stored only while contributions are missing (a round opened in one
        // batch never writes it: 22k gas less).
        if (settled == n) _finalize(roundId, round, participants, acc);
        else round.accumulator = acc;
    }

    function _finalize(uint256 roundId, Round storage round, address[] calldata participants, uint256 acc) private {
        if (round.accumulator != 0) round.accumulator = 0;
        bytes32 output = keccak256(abi.encode(block.chainid, address(this), roundId, acc));
        round.output = output;
        round.status = RoundStatus.Finalized;
        uint64 revealedMask = round.revealedMask;
        uint64 recoveredMask = round.recoveredMask;
        uint256 n = participants.length;
        uint256 pot = round.potWei;
        uint256 revealers = 0;
        for (uint256 i = 0; i < n; ++i) {
            if (recoveredMask & (uint64(1) << i) != 0) pot += _slashNode(participants[i], beaconSlashWei);
            else ++revealers;
        }
        uint256 share = 0;
        if (pot > 0 && revealers > 0) {
            share = pot / revealers;
            uint256 remainder = pot - share * revealers;
            bool first = true;
            for (uint256 i = 0; i < n; ++i) {
                if (revealedMask & (uint64(1) << i) == 0) continue;
                _creditReward(participants[i], first ? share + remainder : share);
                first = false;
            }
            pot = 0;
        } else if (pot > 0) {
            _carryWei = SafeCast.toUint96(uint256(_carryWei) + pot); // nobody revealed
            pot = 0;
        }
        round.potWei = uint96(pot);
        emit RoundFinalized(roundId, output, revealedMask, recoveredMask, share);
    }

    /// @dev secret*G + salt*H on BN254 G1 through the EIP-196 precompiles (ecMul 0x07, ecAdd 0x06).
    function _pedersen(uint256 secret, uint256 salt) private view returns (uint256 x, uint256 y) {
        bool ok;
        assembly ("memory-safe") {
            let p := mload(0x40)
            // secret * G, G = (1, 2)
            mstore(p, 1)
            mstore(add(p, 0x20), 2)
            mstore(add(p, 0x40), secret)
            ok := staticcall(gas(), 0x07, p, 0x60, p, 0x40)
            // salt * H, written after the first point
            mstore(add(p, 0x40), H_X)
            mstore(add(p, 0x60), H_Y)
            mstore(add(p, 0x80), salt)
            ok := and(ok, staticcall(gas(), 0x07, add(p, 0x40), 0x60, add(p, 0x40), 0x40))
            ok := and(ok, staticcall(gas(), 0x06, p, 0x80, p, 0x40))
            x := mload(p)
            y := mload(add(p, 0x20))
        }
        if (!ok) revert BeaconEcPrecompileFailed();
    }
}
