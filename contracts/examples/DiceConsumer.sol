// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {IRandomnessBeacon} from "../interfaces/IRandomnessConsumer.sol";
import {RandomnessConsumerBase} from "../consumers/RandomnessConsumerBase.sol";

/// @title DiceConsumer — example: roll a die with the MPC Market beacon
/// @notice roll() (payable: the beacon fee) requests a value; the beacon calls back and the die
///         face 1..6 is stored under the request id and logged.
contract DiceConsumer is RandomnessConsumerBase {
    /// @notice Gas the callback needs (storage write and event), with margin.
    uint256 public constant CALLBACK_GAS = 60_000;

    /// @notice Face (1..6) of each delivered roll; 0 while pending.
    mapping(uint256 requestId => uint8) public faceOf;
    /// @notice Who asked for each roll.
    mapping(uint256 requestId => address) public rollerOf;

    event RollRequested(uint256 indexed requestId, address indexed roller);
    event Rolled(uint256 indexed requestId, address indexed roller, uint8 face);

    constructor(IRandomnessBeacon beacon_) RandomnessConsumerBase(beacon_) {}

    /// @notice Roll a die; send at least beacon.requestPriceWei(CALLBACK_GAS) (any excess goes to
    ///         the beacon's participants).
    function roll() external payable returns (uint256 requestId) {
        requestId = beacon.requestRandomness{value: msg.value}(CALLBACK_GAS);
        rollerOf[requestId] = msg.sender;
        emit RollRequested(requestId, msg.sender);
    }

    function _onRandomness(uint256 requestId, bytes32 value) internal override {
        // 2^256 mod 6 = 4: the bias of the modulo is below 2^-253.
        uint8 face = uint8(uint256(value) % 6) + 1;
        faceOf[requestId] = face;
        emit Rolled(requestId, rollerOf[requestId], face);
    }
}
