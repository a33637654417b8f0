// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

/// @title ExactGasCall — call a consumer with exactly the gas it asked for
/// @notice The one callback primitive of MPC Market, used by JobMarket (onMPCResult) and
///         RandomnessBeacon (onRandomness). After Chainlink's CallWithExactGas
///         (contracts/src/v0.8/shared/call/CallWithExactGas.sol): the caller must forward enough
///         gas that the callee really gets `gasLimit` (EIP-150 lets a CALL forward at most 63/64
///         of the gas left), so that whoever sends the transaction cannot make a callback fail on
///         purpose by starving it; a target without code is not called and counts as not
///         delivered; the callee's return data is never copied, so a consumer cannot grief the
///         caller with a huge revert payload.
library ExactGasCall {
    /// @notice The transaction forwarded too little gas for the callee to get its full limit.
    /// @param gasLeft Gas left when the check was made.
    /// @param needed Gas needed at that point: gasLimit + gasLimit / 63 + the caller's reserve.
    error ExactGasCallInsufficientGas(uint256 gasLeft, uint256 needed);

    /// @dev Calls `target` with calldata `data`, no value and exactly `gasLimit` gas.
    ///      Reverts ExactGasCallInsufficientGas(gasleft, needed) unless gasleft() >= needed =
    ///      gasLimit + gasLimit / 63 + reserveGas (reserveGas: what the caller spends after the
    ///      check, the account access included). Then returns false without calling if `target`
    ///      has no code (EXTCODESIZE = 0: an EOA, a destroyed or a not yet deployed contract),
    ///      else whether the call returned without reverting (false also when the callee ran out
    ///      of gas). Return data is not copied. Not a reentrancy guard: the caller must have made
    ///      all its effects before (checks-effects-interactions).
    /// @param target The consumer to call.
    /// @param gasLimit Gas the callee gets.
    /// @param reserveGas Gas the caller keeps on top of the call's needs.
    /// @param data ABI-encoded calldata.
    /// @return success True only if `target` has code and the call did not revert.
    function callWithExactGas(
        address target,
        uint256 gasLimit,
        uint256 reserveGas,
        bytes memory data
    ) internal returns (bool success) {
        uint256 needed = gasLimit + gasLimit / 63 + reserveGas;
        if (gasleft() < needed) revert ExactGasCallInsufficientGas(gasleft(), needed);
        // A CALL to an address without code succeeds without running anything: not a delivery.
        if (target.code.length == 0) return false;
        assembly ("memory-safe") {
            success := call(gasLimit, target, 0, add(data, 0x20), mload(data), 0, 0)
        }
    }
}
