// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

/// @title IRandomnessConsumer — callback interface of the MPC Market randomness beacon
/// @notice A contract that calls requestRandomness(callbackGasLimit) on the beacon receives the
///         value through onRandomness, called by the beacon with exactly callbackGasLimit gas.
///         A callback that reverts or runs out of gas does not block the round; the beacon logs
///         RandomnessFulfilled(..., callbackOk = false) and the value stays readable through
///         randomnessOf(requestId).
interface IRandomnessConsumer {
    /// @param requestId The id returned by requestRandomness.
    /// @param value keccak256(abi.encode(roundOutput, requestId)): uniform 256-bit value.
    function onRandomness(uint256 requestId, bytes32 value) external;
}

/// @notice The beacon's request entry point, as seen by consumers.
interface IRandomnessBeacon {
    function requestRandomness(uint256 callbackGasLimit) external payable returns (uint256 requestId);
    function randomnessFeeWei() external view returns (uint96);
    function requestPriceWei(uint256 callbackGasLimit) external view returns (uint256);
}
