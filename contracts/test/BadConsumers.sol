// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {IRandomnessBeacon, IRandomnessConsumer} from "../interfaces/IRandomnessConsumer.sol";

/// @dev Test consumer whose callback always reverts (with a large revert payload).
contract RevertingConsumer is IRandomnessConsumer {
    IRandomnessBeacon public immutable beacon;

    constructor(IRandomnessBeacon beacon_) {
        beacon = beacon_;
    }

    function request(uint256 gasLimit) external payable returns (uint256) {
        return beacon.requestRandomness{value: msg.value}(gasLimit);
    }

    function onRandomness(uint256, bytes32) external pure {
        bytes memory junk = new bytes(10_000);
        assembly {
            revert(add(junk, 0x20), mload(junk))
        }
    }
}

/// @dev Test consumer whose callback burns all the gas it gets.
contract GasHogConsumer is IRandomnessConsumer {
    IRandomnessBeacon public immutable beacon;
    uint256 public counter;

    constructor(IRandomnessBeacon beacon_) {
        beacon = beacon_;
    }

    function request(uint256 gasLimit) external payable returns (uint256) {
        return beacon.requestRandomness{value: msg.value}(gasLimit);
    }

    function onRandomness(uint256, bytes32) external {
        while (true) {
            ++counter;
        }
    }
}
