// SPDX-License-Identifier: MIT
// MPC Market contracts 0.2.0
pragma solidity 0.8.28;

import {IMPCJobConsumer, IMPCJobMarket} from "../interfaces/IMPCJobConsumer.sol";

/// @dev Posts jobs with a callback through `post`, forwarding msg.value.
abstract contract JobPoster is IMPCJobConsumer {
    IMPCJobMarket public immutable market;

    constructor(IMPCJobMarket market_) {
        market = market_;
    }

    function post(
        bytes32 datasetId,
        string calldata query,
        uint40 timeoutS,
        uint256 gasLimit
    ) external payable returns (uint256) {
        return market.postJobWithCallback{value: msg.value}(datasetId, query, 3, 1, 1, timeoutS, gasLimit);
    }

    receive() external payable {}
}

/// @dev Test consumer whose callback always reverts (with a 10 kB revert payload).
contract RevertingJobConsumer is JobPoster {
    constructor(IMPCJobMarket market_) JobPoster(market_) {}

    function onMPCResult(uint256, int256[] calldata) external pure {
        bytes memory junk = new bytes(10_000);
        assembly {
            revert(add(junk, 0x20), mload(junk))
        }
    }
}

/// @dev Test consumer whose callback burns all the gas it gets.
contract GasHogJobConsumer is JobPoster {
    uint256 public counter;

    constructor(IMPCJobMarket market_) JobPoster(market_) {}

    function onMPCResult(uint256, int256[] calldata) external {
        while (true) {
            ++counter;
        }
    }
}

/// @dev Test consumer whose callback tries to re-enter the market for its own job
///      (reclaimEscrow) and records the revert selector it got, and what the market reports
///      about the job's callback fee at that moment (already credited: 0).
contract ReentrantJobConsumer is JobPoster {
    bytes4 public reclaimError;
    uint256 public feeSeen = type(uint256).max;
    uint256 public calls;

    constructor(IMPCJobMarket market_) JobPoster(market_) {}

    function onMPCResult(uint256 jobId, int256[] calldata) external {
        ++calls;
        try market.reclaimEscrow(jobId) {
            reclaimError = bytes4(0xffffffff); // must not happen
        } catch (bytes memory reason) {
            reclaimError = bytes4(reason);
        }
        (, uint256 fee) = IJobCallbackView(address(market)).jobCallback(jobId);
        feeSeen = fee;
    }
}

interface IJobCallbackView {
    function jobCallback(uint256 jobId) external view returns (uint256 callbackGasLimit, uint256 feeWei);
}
