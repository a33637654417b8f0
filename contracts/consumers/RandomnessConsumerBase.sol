// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {IRandomnessBeacon, IRandomnessConsumer} from "../interfaces/IRandomnessConsumer.sol";

/// @title RandomnessConsumerBase — inherit to buy random values from the MPC Market beacon
/// @notice Call _requestRandomness(callbackGasLimit) (paying the beacon's fee from this contract's
///         balance) and implement _onRandomness. Only the beacon can deliver a value.
abstract contract RandomnessConsumerBase is IRandomnessConsumer {
    /// @notice The beacon (the deployed MPCMarket).
    IRandomnessBeacon public immutable beacon;

    /// @notice Only the beacon may call onRandomness.
    /// @param caller msg.sender.
    error RandomnessConsumerOnlyBeacon(address caller);

    constructor(IRandomnessBeacon beacon_) {
        beacon = beacon_;
    }

    /// @inheritdoc IRandomnessConsumer
    function onRandomness(uint256 requestId, bytes32 value) external {
        if (msg.sender != address(beacon)) revert RandomnessConsumerOnlyBeacon(msg.sender);
        _onRandomness(requestId, value);
    }

    /// @dev Request one value, paying the beacon's price (wei: its fee plus the callback's gas)
    ///      from this contract's balance.
    function _requestRandomness(uint256 callbackGasLimit) internal returns (uint256 requestId) {
        uint256 fee = beacon.requestPriceWei(callbackGasLimit);
        return beacon.requestRandomness{value: fee}(callbackGasLimit);
    }

    /// @dev Called with the value of `requestId`; must fit in the requested callback gas.
    function _onRandomness(uint256 requestId, bytes32 value) internal virtual;
}
