#!/usr/bin/env bash
# Check a finished job from chain data alone with Foundry's `cast` (no MPC Market code involved).
#
#   scripts/cast-audit.sh RPC_URL MARKET_ADDRESS JOB_ID
#
# Reads the job's storage (getJob), its JobPosted, CommitteeAssigned and JobFinalized logs and the
# finalizeJob transaction's calldata; checks the logged committee against the stored hash; recomputes resultHash from the logged aggregates and every committee
# signature's EIP-712 digest from scratch (domain separator, type hash, struct hash), recovers each
# signer with the ecrecover precompile (0x01), and checks it is a committee member registered in the
# on-chain registry, and that at least t+1 signed. python3 is used only to pick fields out of cast's
# JSON output. Exit status 0 only if every check passes.
set -euo pipefail
RPC=$1 M=$2 JOB=$3
HERE=$(cd "$(dirname "$0")/.." && pwd)
CAST=${CAST:-$HERE/node_modules/@foundry-rs/cast-linux-amd64/bin/cast}
export ETH_RPC_URL=$RPC
c() { "$CAST" "$@"; }
pick() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
fail=0
check() { if [ "$2" = "$3" ]; then echo "PASS  $1"; else echo "FAIL  $1: $2 != $3"; fail=1; fi; }

JOB_TOPIC=$(c to-uint256 "$JOB")
POSTED_SIG="JobPosted(uint256 indexed,address indexed,bytes32 indexed,string,uint8,uint256,uint8,uint16,uint256,uint256)"
ASSIGNED_SIG="CommitteeAssigned(uint256 indexed,uint256,address[])"
FINAL_SIG="JobFinalized(uint256 indexed,bytes32,bytes32,bytes32,uint16,uint32,uint256,int256[])"
FINALIZE_FN="finalizeJob(uint256,int256[],address[],(address,bytes32,(bytes32,bytes32,uint8))[],(bytes32,(bytes32,bytes32,uint8))[])"

# 1. The job as stored, and its two logs.
JOB_TUPLE=$(c call "$M" "getJob(uint256)((address,uint96,bytes32,bytes32,uint40,uint8,uint8,uint16,uint8,uint16,uint32,uint64,bytes32))" "$JOB" --json)
STATUS=$(echo "$JOB_TUPLE" | pick 'd[0][8]')
STORED_CH=$(echo "$JOB_TUPLE" | pick 'd[0][3]')
STORED_RH=$(echo "$JOB_TUPLE" | pick 'd[0][12]')
check "job $JOB is Finalized (status 2)" "$STATUS" 2
POSTED=$(c logs --address "$M" "$POSTED_SIG" "$JOB_TOPIC" --from-block 0 --json | pick 'd[0]["data"]')
THRESHOLD=$(c decode-abi --input "f(string,uint8,uint256,uint8,uint16,uint256,uint256)" "$POSTED" --json | pick 'd[3]')
ASSIGNED=$(c logs --address "$M" "$ASSIGNED_SIG" "$JOB_TOPIC" --from-block 0 --json | pick 'd[0]["data"]')
COMMITTEE=$(c decode-abi --input "f(uint256,address[])" "$ASSIGNED" --json | pick '" ".join(a.lower() for a in d[1])')
SEED_ROUND=$(c decode-abi --input "f(uint256,address[])" "$ASSIGNED" --json | pick 'd[0]')
PACKED=0x
for A in $COMMITTEE; do W=$(c abi-encode 'f(address)' "$A"); PACKED=$PACKED${W#0x}; done
check "committee drawn by beacon round $SEED_ROUND matches the stored committeeHash" \
  "$(c keccak "$PACKED")" "$STORED_CH"
FINAL_LOG=$(c logs --address "$M" "$FINAL_SIG" "$JOB_TOPIC" --from-block 0 --json)
FINAL_DATA=$(echo "$FINAL_LOG" | pick 'd[0]["data"]')
TX=$(echo "$FINAL_LOG" | pick 'd[0]["transactionHash"]')
EV=$(c decode-abi --input "f(bytes32,bytes32,bytes32,uint16,uint32,uint256,int256[])" "$FINAL_DATA" --json)
RH=$(echo "$EV" | pick 'd[0]'); IH=$(echo "$EV" | pick 'd[2]')
AGG=$(echo "$EV" | pick '"[" + ",".join(str(a) for a in d[6]) + "]"')
echo "      committee (t=$THRESHOLD): $COMMITTEE"
echo "      aggregates: $AGG   providers: $(echo "$EV" | pick 'd[3]')"

# 2. The recorded result hash follows from the logged aggregates.
check "resultHash = keccak256(abi.encodePacked(aggregates))" \
  "$(c keccak "$(c abi-encode --packed 'f(int256[])' "$AGG")")" "$RH"
check "stored resultHash equals the logged one" "$STORED_RH" "$RH"

# 3. Every committee signature in the finalizeJob calldata, verified from scratch.
DS=$(c keccak "$(c abi-encode 'f(bytes32,bytes32,bytes32,uint256,address)' \
  "$(c keccak 'EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)')" \
  "$(c keccak MPCMarket)" "$(c keccak 1)" "$(c chain-id)" "$M")")
TYPEHASH=$(c keccak "ResultCommitment(uint256 jobId,bytes32 resultHash,bytes32 inputsHash,bytes32 transcriptRoot)")
SIGS=$(c decode-calldata "$FINALIZE_FN" "$(c tx "$TX" input)" --json |
  pick '"\n".join(f"{root} {r} {s} {v}" for root, (r, s, v) in d[4])')
valid=0
while read -r ROOT R S V; do
  SH=$(c keccak "$(c abi-encode 'f(bytes32,uint256,bytes32,bytes32,bytes32)' "$TYPEHASH" "$JOB" "$RH" "$IH" "$ROOT")")
  DIGEST=$(c keccak "0x1901${DS#0x}${SH#0x}")
  RAW=$(c call 0x0000000000000000000000000000000000000001 \
    "$(c abi-encode 'f(bytes32,uint8,bytes32,bytes32)' "$DIGEST" "$V" "$R" "$S")")
  SIGNER=0x${RAW: -40}
  REG=$(c call "$M" "getNode(address)(uint256,uint256,uint256,uint8,bytes32,string)" "$SIGNER" --json | pick 'd[3]')
  case " $COMMITTEE " in *" $SIGNER "*) member=yes ;; *) member=no ;; esac
  check "signature by $SIGNER is from a committee member" "$member" yes
  if [ "$REG" != 0 ]; then echo "PASS  $SIGNER is registered (status $REG)";
  else echo "FAIL  $SIGNER is not registered"; fail=1; fi
  if [ "$member" = yes ] && [ "$REG" != 0 ]; then valid=$((valid + 1)); fi
done <<< "$SIGS"
if [ "$valid" -ge $((THRESHOLD + 1)) ]; then echo "PASS  $valid valid signatures >= t+1 = $((THRESHOLD + 1))";
else echo "FAIL  $valid valid signatures < t+1 = $((THRESHOLD + 1))"; fail=1; fi
exit $fail
