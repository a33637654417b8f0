// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {MarketTransferFailed, RegistryNotActive, RegistryNotRegistered} from "../libraries/MarketTypes.sol";

/// @title NodeRegistry — the staked public-key registry (the PKI) of MPC Market
/// @notice A node registers an X25519 encryption key and an endpoint by locking a stake. The
///         registry is the only certificate authority of the system: peers encrypt to the key
///         registered here and check signatures against the registered address.
/// @dev Hot fields (stake, rewards, exitAt, status) share ONE storage slot, so crediting a reward
///      is a nonzero -> nonzero write. Payments are pull-based (withdrawRewards/withdrawStake),
///      follow checks-effects-interactions and are guarded by ReentrancyGuardTransient.
abstract contract NodeRegistry is ReentrancyGuardTransient {
    /// @notice Lifecycle of a node. None = never registered or fully exited.
    enum NodeStatus {
        None,
        Active,
        Exiting
    }

    /// @dev Slot 0: stakeWei (96) | rewardsWei (96) | exitAt (40) | status (8) = 240 bits.
    /// @dev Slot 1: registeredBlock (64) | exitBlock (64): the block numbers that fix a node's
    ///      eligibility for committees seeded by a beacon round (see eligibleAt).
    struct Node {
        uint96 stakeWei;
        uint96 rewardsWei;
        uint40 exitAt;
        NodeStatus status;
        uint64 registeredBlock;
        uint64 exitBlock;
        bytes32 encKey;
        string endpoint;
    }

    /// @notice Maximal endpoint length in bytes.
    uint256 public constant MAX_ENDPOINT_BYTES = 256;

    /// @notice Minimal stake (wei) a node must lock to register.
    uint96 public immutable minStakeWei;
    /// @notice Seconds between requestExit() and the earliest withdrawStake().
    uint40 public immutable exitDelayS;

    mapping(address node => Node) private _nodes;
    /// @dev 1-based position of a registered node in `_nodeList` (0 = absent).
    mapping(address node => uint256) private _listPos;
    address[] private _nodeList;
    /// @dev Number of Active nodes.
    uint256 private _activeCount;

    /// @notice A node registered with `stakeWei` locked, X25519 key `encKey` and `endpoint`.
    event NodeRegistered(address indexed node, uint256 stakeWei, bytes32 encKey, string endpoint);
    /// @notice A node changed its endpoint.
    event NodeEndpointUpdated(address indexed node, string endpoint);
    /// @notice A node asked to leave; its stake unlocks at `exitAt` (unix seconds).
    event NodeExitRequested(address indexed node, uint256 exitAt);
    /// @notice A node left and was paid back `stakeWei` plus its unpaid `rewardsWei`.
    event NodeExited(address indexed node, uint256 stakeWei, uint256 rewardsWei);
    /// @notice A node withdrew `amountWei` of credited rewards.
    event RewardsWithdrawn(address indexed node, uint256 amountWei);
    /// @notice `amountWei` of the node's stake was seized for provable misbehaviour; the node is
    ///         now Exiting (it can no longer be drawn) and its stake unlocks at `exitAt`.
    event NodeSlashed(address indexed node, uint256 amountWei, uint256 exitAt);

    /// @notice The caller is already registered (Active or Exiting).
    /// @param node The caller.
    error RegistryAlreadyRegistered(address node);
    /// @notice register() was sent less than the minimal stake.
    /// @param sentWei msg.value (wei).
    /// @param minWei minStakeWei (wei).
    error RegistryStakeTooLow(uint256 sentWei, uint256 minWei);
    /// @notice The X25519 encryption key is zero.
    error RegistryInvalidEncryptionKey();
    /// @notice The endpoint is empty, longer than MAX_ENDPOINT_BYTES or not printable ASCII
    ///         without spaces.
    error RegistryInvalidEndpoint();
    /// @notice withdrawStake() before the exit delay passed, or without requestExit().
    /// @param exitAt Earliest withdrawal time (unix seconds; 0 if no exit was requested).
    error RegistryExitNotReady(uint256 exitAt);
    /// @notice withdrawRewards() with no credited rewards.
    error RegistryNothingToWithdraw();
    /// @notice nodeAt(index) past the end of the node list.
    /// @param index The index asked for (0-based).
    /// @param length nodeCount().
    error RegistryIndexOutOfBounds(uint256 index, uint256 length);

    constructor(uint96 minStakeWei_, uint40 exitDelayS_) {
        minStakeWei = minStakeWei_;
        exitDelayS = exitDelayS_;
    }

    // ------------------------------------------------------------------ mutating

    /// @notice Register the caller as an Active node, locking msg.value as stake.
    /// @param encKey The node's X25519 public key (32 bytes, must be nonzero).
    /// @param endpoint Where peers reach the node (e.g. "http://host:port"), 1..256 bytes.
    /// @dev Reverts RegistryStakeTooLow(sent, min) if msg.value < minStakeWei, RegistryInvalidEncryptionKey() if
    ///      encKey is zero, RegistryInvalidEndpoint() if endpoint is empty, longer than 256 bytes
    ///      or not printable ASCII without spaces,
    ///      RegistryAlreadyRegistered(node) if the caller is Active or Exiting, and
    ///      SafeCastOverflowedUintDowncast if msg.value does not fit 96 bits.
    ///      Rewards left from an earlier registration are kept. Emits NodeRegistered.
    function register(bytes32 encKey, string calldata endpoint) external payable {
        if (msg.value < minStakeWei) revert RegistryStakeTooLow(msg.value, minStakeWei);
        if (encKey == bytes32(0)) revert RegistryInvalidEncryptionKey();
        _checkEndpoint(endpoint);
        Node storage n = _nodes[msg.sender];
        if (n.status != NodeStatus.None) revert RegistryAlreadyRegistered(msg.sender);

        n.stakeWei = SafeCast.toUint96(msg.value);
        n.status = NodeStatus.Active;
        n.registeredBlock = uint64(block.number);
        n.exitBlock = 0;
        n.encKey = encKey;
        n.endpoint = endpoint;
        _nodeList.push(msg.sender);
        _listPos[msg.sender] = _nodeList.length;
        ++_activeCount;
        emit NodeRegistered(msg.sender, msg.value, encKey, endpoint);
    }

    /// @notice Change the caller's peer endpoint (e.g. after a restart on another port).
    /// @dev Reverts RegistryNotRegistered(node) if the caller is not registered (Active or Exiting),
    ///      RegistryInvalidEndpoint() as in register. Emits NodeEndpointUpdated(node, endpoint).
    function updateEndpoint(string calldata endpoint) external {
        _checkEndpoint(endpoint);
        Node storage n = _nodes[msg.sender];
        if (n.status == NodeStatus.None) revert RegistryNotRegistered(msg.sender);
        n.endpoint = endpoint;
        emit NodeEndpointUpdated(msg.sender, endpoint);
    }

    /// @dev 1..MAX_ENDPOINT_BYTES bytes of printable ASCII without spaces (0x21..0x7e), so that
    ///      every client can decode it (a non-UTF-8 string would break ABI decoding of getNode
    ///      and of the registry's logs for everyone).
    function _checkEndpoint(string calldata endpoint) private pure {
        bytes calldata b = bytes(endpoint);
        uint256 len = b.length;
        if (len == 0 || len > MAX_ENDPOINT_BYTES) revert RegistryInvalidEndpoint();
        for (uint256 i = 0; i < len; ++i) {
            bytes1 c = b[i];
            if (c < 0x21 || c > 0x7e) revert RegistryInvalidEndpoint();
        }
    }

    /// @notice Start leaving: Active -> Exiting; the stake unlocks after exitDelayS seconds.
    /// @dev An Exiting node can no longer be put on new committees but still serves (and is paid
    ///      for) the jobs it is on: exitDelayS > maxTimeoutS outlives every open job.
    ///      Reverts RegistryNotRegistered(node) if the caller is not registered, RegistryNotActive(node) if it is
    ///      already Exiting. Emits NodeExitRequested(node, exitAt).
    function requestExit() external {
        Node storage n = _nodes[msg.sender];
        NodeStatus status = n.status;
        if (status == NodeStatus.None) revert RegistryNotRegistered(msg.sender);
        if (status != NodeStatus.Active) revert RegistryNotActive(msg.sender);
        uint40 exitAt = _startExit(n);
        emit NodeExitRequested(msg.sender, exitAt);
    }

    /// @dev Active -> Exiting now: records the exit block and time, returns exitAt.
    function _startExit(Node storage n) private returns (uint40 exitAt) {
        exitAt = uint40(block.timestamp) + exitDelayS;
        n.exitAt = exitAt;
        n.status = NodeStatus.Exiting;
        n.exitBlock = uint64(block.number);
        --_activeCount;
    }

    /// @notice Leave the registry: pays the caller its stake plus any unpaid rewards (wei) and
    ///         removes it from the node list (it may register again later).
    /// @dev Allowed once block.timestamp >= exitAt. Reverts RegistryNotRegistered(node) if the caller is
    ///      not registered, RegistryExitNotReady(exitAt) if it never requested an exit (exitAt = 0) or the
    ///      delay has not passed, MarketTransferFailed() if the payment is refused. Emits NodeExited.
    function withdrawStake() external nonReentrant {
        Node storage n = _nodes[msg.sender];
        NodeStatus status = n.status;
        if (status == NodeStatus.None) revert RegistryNotRegistered(msg.sender);
        uint256 exitAt = n.exitAt;
        if (status != NodeStatus.Exiting || block.timestamp < exitAt) revert RegistryExitNotReady(exitAt);
        uint256 stake = n.stakeWei;
        uint256 rewards = n.rewardsWei;

        delete _nodes[msg.sender];
        _removeFromList(msg.sender);
        emit NodeExited(msg.sender, stake, rewards);

        _pay(msg.sender, stake + rewards);
    }

    /// @notice Withdraw all rewards (wei) credited to the caller by finalized jobs.
    /// @dev Works for any address holding rewards (registered or not). Reverts
    ///      RegistryNothingToWithdraw() if none are credited, MarketTransferFailed() if the payment is refused.
    ///      Emits RewardsWithdrawn(node, amountWei).
    function withdrawRewards() external nonReentrant {
        Node storage n = _nodes[msg.sender];
        uint256 amount = n.rewardsWei;
        if (amount == 0) revert RegistryNothingToWithdraw();
        n.rewardsWei = 0;
        emit RewardsWithdrawn(msg.sender, amount);
        _pay(msg.sender, amount);
    }

    // ------------------------------------------------------------------ views

    /// @notice Everything the registry holds about `node` (all zero if unknown).
    /// @return stakeWei Locked stake (wei).
    /// @return rewardsWei Credited, not yet withdrawn rewards (wei).
    /// @return exitAt Earliest withdrawStake() time (unix seconds; 0 unless Exiting).
    /// @return status 0 None, 1 Active, 2 Exiting.
    /// @return encKey Registered X25519 public key.
    /// @return endpoint Registered endpoint.
    function getNode(
        address node
    )
        external
        view
        returns (
            uint256 stakeWei,
            uint256 rewardsWei,
            uint256 exitAt,
            NodeStatus status,
            bytes32 encKey,
            string memory endpoint
        )
    {
        Node storage n = _nodes[node];
        return (n.stakeWei, n.rewardsWei, n.exitAt, n.status, n.encKey, n.endpoint);
    }

    /// @notice Whether `node` is registered and Active (eligible for new committees).
    function isActive(address node) external view returns (bool) {
        return _nodes[node].status == NodeStatus.Active;
    }

    /// @notice Block numbers that decide committee eligibility: the block `node` registered in
    ///         and the block it started exiting in (0 if it has not).
    function nodeBlocks(address node) external view returns (uint256 registeredBlock, uint256 exitBlock) {
        Node storage n = _nodes[node];
        return (n.registeredBlock, n.exitBlock);
    }

    /// @notice Number of Active nodes.
    function activeNodeCount() external view returns (uint256) {
        return _activeCount;
    }

    /// @notice Whether `node` is eligible for a committee whose snapshot block is `snapshotBlock`:
    ///         registered before that block and not exiting at it (exit requested later or never).
    function eligibleAt(address node, uint256 snapshotBlock) public view returns (bool) {
        Node storage n = _nodes[node];
        if (n.status == NodeStatus.None) return false;
        uint256 exitBlock = n.exitBlock;
        return n.registeredBlock < snapshotBlock && (exitBlock == 0 || exitBlock > snapshotBlock);
    }

    /// @notice Number of registered (Active or Exiting) nodes.
    function nodeCount() external view returns (uint256) {
        return _nodeList.length;
    }

    /// @notice The `i`-th registered node (0-based; order changes on removal, swap-and-pop).
    /// @dev Reverts RegistryIndexOutOfBounds(i, length) if i >= nodeCount().
    function nodeAt(uint256 i) external view returns (address) {
        uint256 len = _nodeList.length;
        if (i >= len) revert RegistryIndexOutOfBounds(i, len);
        return _nodeList[i];
    }

    // ------------------------------------------------------------------ internal

    /// @dev Nodes eligible at `snapshotBlock` (see eligibleAt), sorted ascending by address, so that
    ///      the list does not depend on the registry's storage order. O(m log m) sorting (heap
    ///      sort, in place), so the cost stays linear-ish in the registry size.
    ///      Loop bound: the walk visits every registered node (nodeCount(), Exiting ones
    ///      included), and nothing caps that count: each entry costs one stake (minStakeWei), so
    ///      growing it is costly, not impossible. Each entry reads three cold slots (~6.5k gas)
    ///      before the sort, so assignCommittee fits a 30M-gas block only up to roughly 4,000
    ///      registered nodes; past that no committee can be assigned (a DoS ceiling; issue 9).
    function _eligibleNodesAt(uint256 snapshotBlock) internal view virtual returns (address[] memory list) {
        uint256 len = _nodeList.length;
        list = new address[](len);
        uint256 m = 0;
        for (uint256 i = 0; i < len; ++i) {
            address node = _nodeList[i];
            if (eligibleAt(node, snapshotBlock)) list[m++] = node;
        }
        assembly ("memory-safe") {
            mstore(list, m)
        }
        _heapSort(list);
    }

    function _heapSort(address[] memory a) private pure {
        uint256 n = a.length;
        if (n < 2) return;
        for (uint256 i = n / 2; i > 0; --i) _siftDown(a, i - 1, n);
        for (uint256 end = n - 1; end > 0; --end) {
            (a[0], a[end]) = (a[end], a[0]);
            _siftDown(a, 0, end);
        }
    }

    function _siftDown(address[] memory a, uint256 root, uint256 n) private pure {
        while (true) {
            uint256 child = 2 * root + 1;
            if (child >= n) return;
            if (child + 1 < n && a[child + 1] > a[child]) ++child;
            if (a[root] >= a[child]) return;
            (a[root], a[child]) = (a[child], a[root]);
            root = child;
        }
    }

    /// @dev Number of Active nodes.
    function _activeNodeCount() internal view returns (uint256) {
        return _activeCount;
    }

    /// @dev Seize up to `amountWei` of `node`'s stake and move it to Exiting (if Active).
    ///      Returns the amount seized (wei); the caller decides where it goes. Emits NodeSlashed.
    function _slash(address node, uint256 amountWei) internal returns (uint256 seizedWei) {
        Node storage n = _nodes[node];
        if (n.status == NodeStatus.None) return 0;
        uint256 stake = n.stakeWei;
        seizedWei = amountWei < stake ? amountWei : stake;
        n.stakeWei = uint96(stake - seizedWei);
        if (n.status == NodeStatus.Active) _startExit(n);
        emit NodeSlashed(node, seizedWei, n.exitAt);
    }

    /// @dev Status of `node` for the job market (committee and provider checks).
    function _statusOf(address node) internal view returns (NodeStatus) {
        return _nodes[node].status;
    }

    /// @dev Credit `amountWei` of rewards to `node` (a committee member: its slot is nonzero).
    function _credit(address node, uint256 amountWei) internal {
        Node storage n = _nodes[node];
        n.rewardsWei = SafeCast.toUint96(uint256(n.rewardsWei) + amountWei);
    }

    /// @dev Send `amountWei` to `to`; reverts MarketTransferFailed() if the call fails.
    function _pay(address to, uint256 amountWei) internal {
        // slither-disable-next-line arbitrary-send-eth,low-level-calls
        (bool ok, ) = payable(to).call{value: amountWei}("");
        if (!ok) revert MarketTransferFailed();
    }

    function _removeFromList(address node) private {
        uint256 pos = _listPos[node]; // 1-based, nonzero for a registered node
        uint256 last = _nodeList.length;
        if (pos != last) {
            address moved = _nodeList[last - 1];
            _nodeList[pos - 1] = moved;
            _listPos[moved] = pos;
        }
        _nodeList.pop();
        delete _listPos[node];
    }
}
