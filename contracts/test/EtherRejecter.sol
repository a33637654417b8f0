// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

/// @title EtherRejecter — test double: a buyer or node account that refuses ETH
/// @notice Forwards arbitrary calls (with value) to `target` and bubbles up reverts; its receive()
///         reverts, so any payout to it fails. Used to test the market's MarketTransferFailed paths.
///         Not part of the deployed product (compiled only with include_tests=True).
contract EtherRejecter {
    address public immutable target;

    error EtherRefused();

    constructor(address target_) {
        target = target_;
    }

    /// @notice Call `target` with `data` and msg.value; reverts with the callee's revert data.
    function forward(bytes calldata data) external payable returns (bytes memory result) {
        bool ok;
        (ok, result) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(result, 0x20), mload(result))
            }
        }
    }

    receive() external payable {
        revert EtherRefused();
    }
}
