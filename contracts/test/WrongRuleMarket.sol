// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {MPCMarket} from "../MPCMarket.sol";

/// @title WrongRuleMarket — test double: a market whose committee draw breaks the rule
/// @notice Identical to MPCMarket except drawCommittee: it draws as the real rule does, then
///         swaps the lowest drawn member for the lowest candidate left out. Whenever there are
///         more candidates than seats the committee therefore differs from the rule's, while
///         everything else (assignment, signatures, payments) works as usual, so an audit must
///         fail `committee.selection_rule` and nothing else (tests/test_audit.py).
///         Not part of the deployed product (compiled only with include_tests=True).
contract WrongRuleMarket is MPCMarket {
    constructor(
        uint96 minStakeWei_,
        uint40 exitDelayS_,
        uint96 minPaymentWei_,
        uint40 maxTimeoutS_,
        uint40 phaseBlocks_,
        uint96 randomnessFeeWei_,
        uint96 beaconSlashWei_
    )
        MPCMarket(
            minStakeWei_,
            exitDelayS_,
            minPaymentWei_,
            maxTimeoutS_,
            phaseBlocks_,
            randomnessFeeWei_,
            beaconSlashWei_
        )
    {}

    function drawCommittee(
        address[] memory candidates,
        uint256 n,
        bytes32 seed
    ) public pure override returns (address[] memory committee) {
        uint256 m = candidates.length;
        address[] memory pool = new address[](m);
        for (uint256 i = 0; i < m; ++i) pool[i] = candidates[i];
        committee = super.drawCommittee(candidates, n, seed); // shuffles `candidates` in place
        if (m == n) return committee;
        for (uint256 i = 0; i < m; ++i) {
            address c = pool[i];
            bool drawn = false;
            for (uint256 k = 0; k < n; ++k) {
                if (committee[k] == c) drawn = true;
            }
            if (!drawn) {
                committee[0] = c; // replace the lowest member, then restore ascending order
                for (uint256 k = 0; k + 1 < n && committee[k] > committee[k + 1]; ++k) {
                    (committee[k], committee[k + 1]) = (committee[k + 1], committee[k]);
                }
                return committee;
            }
        }
    }
}
