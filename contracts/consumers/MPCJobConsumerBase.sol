// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {IMPCJobConsumer, IMPCJobMarket} from "../interfaces/IMPCJobConsumer.sol";

/// @title MPCJobConsumerBase — inherit to post MPC Market jobs from a contract and receive results
/// @notice Call _postJob(...) to post a job whose result comes back through _onMPCResult when the
///         job is finalized, and _reclaimEscrow(jobId) to get escrow and callback fee back from a
///         job that expired unanswered. Only the market can deliver a result or send ETH here.
abstract contract MPCJobConsumerBase is IMPCJobConsumer {
    /// @notice The market (the deployed MPCMarket).
    IMPCJobMarket public immutable market;

    /// @notice Only the market may call onMPCResult or send ETH (refunds).
    /// @param caller msg.sender.
    error MPCJobConsumerOnlyMarket(address caller);

    constructor(IMPCJobMarket market_) {
        market = market_;
    }

    /// @inheritdoc IMPCJobConsumer
    function onMPCResult(uint256 jobId, int256[] calldata aggregates) external {
        if (msg.sender != address(market)) revert MPCJobConsumerOnlyMarket(msg.sender);
        _onMPCResult(jobId, aggregates);
    }

    /// @notice Accepts the refunds of reclaimEscrow, from the market only.
    receive() external payable {
        if (msg.sender != address(market)) revert MPCJobConsumerOnlyMarket(msg.sender);
    }

    /// @dev Post a job (market.postJobWithCallback) whose result is delivered to _onMPCResult
    ///      with `callbackGasLimit` gas, sending `valueWei` from this contract's balance: the
    ///      market keeps market.jobCallbackFeeWei(callbackGasLimit) (at the current gas price)
    ///      for the callback and escrows the rest (which must reach market.minPaymentWei()). See
    ///      JobMarket.postJob for the other parameters and the errors.
    function _postJob(
        bytes32 datasetId,
        string memory query,
        uint8 committeeSize,
        uint8 threshold,
        uint16 minProviders,
        uint40 timeoutS,
        uint256 callbackGasLimit,
        uint256 valueWei
    ) internal returns (uint256 jobId) {
        return
            market.postJobWithCallback{value: valueWei}(
                datasetId,
                query,
                committeeSize,
                threshold,
                minProviders,
                timeoutS,
                callbackGasLimit
            );
    }

    /// @dev Reclaim escrow and callback fee of an expired job this contract posted; returns the
    ///      amount received (wei). Reverts as JobMarket.reclaimEscrow.
    function _reclaimEscrow(uint256 jobId) internal returns (uint256 refundedWei) {
        uint256 before = address(this).balance;
        market.reclaimEscrow(jobId);
        return address(this).balance - before;
    }

    /// @dev Called with the opened aggregates of job `jobId`; must fit in the requested callback
    ///      gas. A revert here is recorded by the market (JobCallback ok = false) and undoes only
    ///      this call's effects.
    function _onMPCResult(uint256 jobId, int256[] calldata aggregates) internal virtual;
}
