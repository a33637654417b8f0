// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

// Declarations shared by the modules of MPCMarket (NodeRegistry, JobMarket, RandomnessBeacon).
// They are declared once, at file level, so that MPCMarket, which inherits all three modules,
// holds (and its ABI lists) each of them exactly once.

/// @notice An ECDSA signature over an EIP-712 digest; v in {27, 28}, s in the lower half of the
///         secp256k1 order (low-s, enforced by OpenZeppelin ECDSA.tryRecover).
struct Sig {
    bytes32 r;
    bytes32 s;
    uint8 v;
}

/// @notice `node` has never registered, or has fully exited (status None in the registry).
/// @param node The address that was looked up.
error RegistryNotRegistered(address node);

/// @notice `node` is registered but not Active (it is Exiting), so it cannot take a new role
///         (request an exit again, join a committee or a beacon round).
/// @param node The address that was looked up.
error RegistryNotActive(address node);

/// @notice An ETH payment from the market to the caller was refused (the call failed).
error MarketTransferFailed();
