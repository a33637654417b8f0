// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

/// @title IMPCJobConsumer — callback interface of MPC Market jobs posted by contracts
/// @notice A contract that posts a job with postJobWithCallback(..., callbackGasLimit) receives
///         the opened result through onMPCResult, called by the market when the job is
///         finalized, with exactly callbackGasLimit gas. A callback that reverts or runs out of
///         gas does not block finalization or the committee's payment; the market logs
///         JobCallback(jobId, finalizer, feeWei, ok = false) and the result stays readable in the
///         JobFinalized log (and its hash in getJob(jobId).resultHash).
interface IMPCJobConsumer {
    /// @param jobId The id returned by postJobWithCallback.
    /// @param aggregates The opened aggregate vector of the job's query (README "Query grammar":
    ///        e.g. [n, S1] for mean:COL, values fixed-point scaled by 10^12).
    function onMPCResult(uint256 jobId, int256[] calldata aggregates) external;
}

/// @notice The market's job entry points, as seen by consumers.
interface IMPCJobMarket {
    function postJobWithCallback(
        bytes32 datasetId,
        string calldata query,
        uint8 committeeSize,
        uint8 threshold,
        uint16 minProviders,
        uint40 timeoutS,
        uint256 callbackGasLimit
    ) external payable returns (uint256 jobId);
    function reclaimEscrow(uint256 jobId) external;
    function jobCallbackFeeWei(uint256 callbackGasLimit) external view returns (uint256);
    function minPaymentWei() external view returns (uint96);
}
