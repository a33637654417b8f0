// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {NodeRegistry} from "./core/NodeRegistry.sol";
import {JobMarket} from "./core/JobMarket.sol";
import {RandomnessBeacon} from "./core/RandomnessBeacon.sol";

/// @title MPCMarket — node registry, job market and randomness beacon in one contract
/// @notice The deployed contract of MPC Market: core/NodeRegistry (staked PKI) + core/JobMarket
///         (escrowed, t+1-signature-finalized MPC jobs) + core/RandomnessBeacon (the
///         commit/reveal/recover beacon that seeds committees). One contract, so signature and
///         registry checks need no cross-contract calls. typeAndVersion() names the build.
contract MPCMarket is NodeRegistry, JobMarket, RandomnessBeacon {
    /// @notice exitDelayS must exceed maxTimeoutS so that a committee member cannot withdraw its
    ///         stake before a job it serves has ended.
    /// @param exitDelayS The exit delay asked for (seconds).
    /// @param maxTimeoutS The longest job timeout asked for (seconds).
    error MarketInvalidConfiguration(uint256 exitDelayS, uint256 maxTimeoutS);

    /// @param minStakeWei_ Minimal node stake (wei).
    /// @param exitDelayS_ Seconds from requestExit() to the earliest withdrawStake().
    /// @param minPaymentWei_ Minimal job escrow (wei).
    /// @param maxTimeoutS_ Longest job timeout (seconds); must be < exitDelayS_.
    /// @param phaseBlocks_ Length of each beacon phase (commit, reveal, recovery) in blocks.
    /// @param randomnessFeeWei_ Price of one randomness request (wei).
    /// @param beaconSlashWei_ Stake seized from a beacon participant that withheld its reveal.
    /// @dev Reverts MarketInvalidConfiguration(exitDelayS, maxTimeoutS) if exitDelayS_ <= maxTimeoutS_.
    constructor(
        uint96 minStakeWei_,
        uint40 exitDelayS_,
        uint96 minPaymentWei_,
        uint40 maxTimeoutS_,
        uint40 phaseBlocks_,
        uint96 randomnessFeeWei_,
        uint96 beaconSlashWei_
    )
        NodeRegistry(minStakeWei_, exitDelayS_)
        JobMarket(minPaymentWei_, maxTimeoutS_)
        RandomnessBeacon(phaseBlocks_, randomnessFeeWei_, beaconSlashWei_)
    {
        if (exitDelayS_ <= maxTimeoutS_) revert MarketInvalidConfiguration(exitDelayS_, maxTimeoutS_);
    }

    /// @notice Contract type and version of this build, Chainlink's typeAndVersion convention:
    ///         "MPCMarket <major>.<minor>.<patch>" (the version in every contracts/ file header).
    ///         Not the EIP-712 domain version, which is "1".
    function typeAndVersion() external pure returns (string memory) {
        return "MPCMarket 0.2.0";
    }

    function _isActiveNode(address node) internal view override(JobMarket, RandomnessBeacon) returns (bool) {
        return _statusOf(node) == NodeStatus.Active;
    }

    function _isRegisteredNode(address node) internal view override(JobMarket, RandomnessBeacon) returns (bool) {
        return _statusOf(node) != NodeStatus.None;
    }

    function _creditReward(address node, uint256 amountWei) internal override(JobMarket, RandomnessBeacon) {
        _credit(node, amountWei);
    }

    function _activeNodes() internal view override returns (uint256) {
        return _activeNodeCount();
    }

    function _slashNode(address node, uint256 amountWei) internal override returns (uint256) {
        return _slash(node, amountWei);
    }

    function _requestSeedRound() internal override returns (uint64) {
        return _requestRound();
    }

    function _roundSeed(
        uint256 roundId
    )
        internal
        view
        override
        returns (uint256 finalRoundId, bytes32 output, uint256 commitBlock, bool finalized, bool failed)
    {
        RoundStatus status;
        (finalRoundId, output, commitBlock, status) = _roundState(roundId);
        return (finalRoundId, output, commitBlock, status == RoundStatus.Finalized, status == RoundStatus.Failed);
    }

    function _callbackGasPriceWei() internal view override returns (uint256) {
        return callbackGasPriceWei();
    }

    function _eligibleNodesAt(
        uint256 snapshotBlock
    ) internal view override(NodeRegistry, JobMarket) returns (address[] memory) {
        return NodeRegistry._eligibleNodesAt(snapshotBlock);
    }
}
