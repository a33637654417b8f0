// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {NodeRegistry} from "./NodeRegistry.sol";
import {JobMarket} from "./JobMarket.sol";

/// @title MPCMarket — node registry and job market in one contract
/// @notice Deployed contract of MPC Market: NodeRegistry (staked PKI) + JobMarket (escrowed,
///         t+1-signature-finalized MPC jobs). One contract, so signature and registry checks need
///         no cross-contract calls.
contract MPCMarket is NodeRegistry, JobMarket {
    /// @notice exitDelayS must exceed maxTimeoutS so that a committee member cannot withdraw its
    ///         stake before a job it serves has ended.
    error InvalidConfiguration(uint256 exitDelayS, uint256 maxTimeoutS);

    /// @param minStakeWei_ Minimal node stake (wei).
    /// @param exitDelayS_ Seconds from requestExit() to the earliest withdrawStake().
    /// @param minPaymentWei_ Minimal job escrow (wei).
    /// @param maxTimeoutS_ Longest job timeout (seconds); must be < exitDelayS_.
    /// @dev Reverts InvalidConfiguration(exitDelayS, maxTimeoutS) if exitDelayS_ <= maxTimeoutS_.
    constructor(uint96 minStakeWei_, uint40 exitDelayS_, uint96 minPaymentWei_, uint40 maxTimeoutS_)
        NodeRegistry(minStakeWei_, exitDelayS_)
        JobMarket(minPaymentWei_, maxTimeoutS_)
    {
        if (exitDelayS_ <= maxTimeoutS_) revert InvalidConfiguration(exitDelayS_, maxTimeoutS_);
    }

    function _isActiveNode(address node) internal view override returns (bool) {
        return _statusOf(node) == NodeStatus.Active;
    }

    function _isRegisteredNode(address node) internal view override returns (bool) {
        return _statusOf(node) != NodeStatus.None;
    }

    function _creditReward(address node, uint256 amountWei) internal override {
        _credit(node, amountWei);
    }
}
