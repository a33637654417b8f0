// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {IMPCJobMarket} from "../interfaces/IMPCJobConsumer.sol";
import {MPCJobConsumerBase} from "../consumers/MPCJobConsumerBase.sol";

/// @title StatsConsumer — example: a contract that buys the mean of a column with an MPC job
/// @notice requestMean(...) (payable: escrow plus callback fee) posts the job "mean:COLUMN" over a
///         dataset; when the job is finalized the market calls back with the aggregates
///         [n, S1] (README "Query grammar": n rows, S1 = sum of the values scaled by 10^12) and
///         the mean is stored as meanScaled = S1 / n (10^12 fixed point, rounded toward zero)
///         and logged. If the job expires unanswered, reclaim(jobId) pays escrow and callback fee
///         back to the requester.
contract StatsConsumer is MPCJobConsumerBase {
    /// @notice Gas the callback needs (three storage slots and an event), with margin.
    uint256 public constant CALLBACK_GAS = 120_000;
    /// @notice Fixed-point scale of the aggregates and of meanScaled (offchain/fixedpoint.py).
    int256 public constant SCALE = 1e12;

    enum Status {
        None,
        Pending,
        Done,
        Refunded
    }

    /// @notice A mean request: who paid, its state, and once Done its row count n, the sum S1
    ///         (scaled by SCALE) and the mean S1 / n (scaled by SCALE; 0 if n = 0).
    struct MeanRequest {
        address requester; // slot 0
        Status status; // slot 0
        uint64 n; // slot 0
        int256 sumScaled;
        int256 meanScaled;
    }

    mapping(uint256 jobId => MeanRequest) private _requests;

    event MeanRequested(uint256 indexed jobId, address indexed requester, bytes32 indexed datasetId, string column);
    /// @notice The result of `jobId` arrived: `n` rows, sum and mean scaled by 10^12.
    event MeanComputed(uint256 indexed jobId, uint256 n, int256 sumScaled, int256 meanScaled);
    event MeanRefunded(uint256 indexed jobId, address indexed requester, uint256 amountWei);

    /// @notice The callback got an aggregate vector that is not [n >= 0, S1] (the job's
    ///         committee did not answer a mean query); the market records the callback as failed.
    /// @param jobId The job.
    error StatsUnexpectedAggregates(uint256 jobId);
    /// @notice reclaim for a job that is not a Pending mean request of this contract.
    /// @param jobId The job.
    error StatsNotPending(uint256 jobId);
    /// @notice The requester refused the refund.
    error StatsRefundFailed();

    constructor(IMPCJobMarket market_) MPCJobConsumerBase(market_) {}

    /// @notice Buy the mean of `column` over dataset `datasetId` (keccak256 of its name). Send at
    ///         least market.minPaymentWei() + market.jobCallbackFeeWei(CALLBACK_GAS); the
    ///         callback fee is taken at the gas price of the block the transaction lands in and
    ///         the rest is the job's escrow (paid to the committee).
    /// @dev Reverts as JobMarket.postJobWithCallback (JobPaymentTooLow, JobInvalidQuery, ...).
    function requestMean(
        bytes32 datasetId,
        string calldata column,
        uint8 committeeSize,
        uint8 threshold,
        uint16 minProviders,
        uint40 timeoutS
    ) external payable returns (uint256 jobId) {
        jobId = _postJob(
            datasetId,
            string.concat("mean:", column),
            committeeSize,
            threshold,
            minProviders,
            timeoutS,
            CALLBACK_GAS,
            msg.value
        );
        MeanRequest storage r = _requests[jobId];
        r.requester = msg.sender;
        r.status = Status.Pending;
        emit MeanRequested(jobId, msg.sender, datasetId, column);
    }

    /// @notice Pay escrow and callback fee of an expired, unanswered request back to its
    ///         requester; anyone may call.
    /// @dev Reverts StatsNotPending(jobId), then as JobMarket.reclaimEscrow (JobDeadlineNotReached, ...),
    ///      StatsRefundFailed() if the requester refuses the ETH.
    function reclaim(uint256 jobId) external {
        MeanRequest storage r = _requests[jobId];
        if (r.status != Status.Pending) revert StatsNotPending(jobId);
        r.status = Status.Refunded;
        uint256 amount = _reclaimEscrow(jobId);
        address requester = r.requester;
        emit MeanRefunded(jobId, requester, amount);
        (bool ok, ) = payable(requester).call{value: amount}("");
        if (!ok) revert StatsRefundFailed();
    }

    /// @notice The request behind job `jobId`.
    function requestOf(uint256 jobId) external view returns (MeanRequest memory) {
        return _requests[jobId];
    }

    function _onMPCResult(uint256 jobId, int256[] calldata aggregates) internal override {
        MeanRequest storage r = _requests[jobId];
        if (aggregates.length != 2 || aggregates[0] < 0 || aggregates[0] > int256(uint256(type(uint64).max))) {
            revert StatsUnexpectedAggregates(jobId);
        }
        int256 n = aggregates[0];
        int256 sum = aggregates[1];
        int256 mean = n == 0 ? int256(0) : sum / n; // Solidity rounds toward zero
        r.status = Status.Done;
        r.n = uint64(uint256(n));
        r.sumScaled = sum;
        r.meanScaled = mean;
        emit MeanComputed(jobId, uint256(n), sum, mean);
    }
}
