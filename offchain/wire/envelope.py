"""Signed, encrypted peer-to-peer messages ("envelopes") between registered nodes.

Construction (sender -> recipient whose X25519 key is registered on chain):

1. ephemeral X25519 key pair per message (RFC 7748); ``shared = X25519(eph, recipient_pub)``;
2. ``key = HKDF-SHA256(shared, salt = eph_pub || recipient_pub, info = "mpc-market/peer/v1")``,
   32 bytes (RFC 5869);
3. ``ciphertext = ChaCha20-Poly1305(key, nonce, plaintext, aad = canonical_header)`` with a
   random 12-byte nonce (RFC 8439); the ciphertext carries the 16-byte tag;
4. ``digest = keccak256(canonical_header || eph_pub || nonce || ciphertext)``, signed by the
   sender's Ethereum key as an EIP-191 personal message (``"\\x19Ethereum Signed
   Message:\\n32" || digest``). ``canonical_header`` is ``abi.encode("mpc-market/peer/v1",
   chain_id, contract, job_id, kind, sender, recipient)`` — always 352 bytes because ``kind``
   is 1-32 ASCII bytes, so the concatenation is unambiguous.

Wire format: a JSON object with exactly the fields ``v`` (=1), ``chain_id``, ``contract``,
``job_id``, ``kind``, ``sender``, ``recipient`` (checksummed addresses), ``eph_pub``, ``nonce``,
``ciphertext``, ``signature`` (lower-case ``0x`` hex; the signature is 65 bytes ``r||s||v``
with low ``s`` and ``v`` in {27, 28}). At most ``MAX_ENVELOPE_BYTES`` (1 MiB) of JSON.

Guarantees, once :func:`open_envelope` returns: the header's sender signed exactly this header
and ciphertext (checked *before* any decryption), the message is addressed to this recipient,
chain and contract, and the plaintext is what the sender encrypted. The caller must still check
that the sender is allowed to talk (registered, in the job's committee) and use
:class:`ReplayGuard` against replays.

Leakage: the header (chain, contract, job, kind, sender, recipient), the plaintext length
(ciphertext = plaintext + 16 bytes) and timing are public. The signature is transferable: anyone
can prove the sender sent this ciphertext (intended, for transcripts). Compromise of the
recipient's X25519 key exposes all messages ever sent to it (no recipient forward secrecy).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from secrets import token_bytes
from typing import Annotated, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_abi.abi import encode as abi_encode
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from offchain.encoding.eip712 import Sig, SignatureError, recover_signer
from offchain.errors import MarketError
from offchain.wire.fields import Address, HexBytes

PROTOCOL_TAG = "mpc-market/peer/v1"
HKDF_INFO = PROTOCOL_TAG.encode()
VERSION = 1
MAX_ENVELOPE_BYTES = 1 << 20
"""Largest accepted raw JSON envelope (1 MiB)."""
MAX_CIPHERTEXT_BYTES = (MAX_ENVELOPE_BYTES - 4096) // 2
"""Largest ciphertext (hex doubles it; 4 KiB is left for the other fields)."""
MAX_PLAINTEXT_BYTES = MAX_CIPHERTEXT_BYTES - 16
"""Largest plaintext :func:`seal` accepts, so that every sealed envelope fits the limit."""

_HEADER_TYPES = ["string", "uint256", "address", "uint256", "string", "address", "address"]
_HEADER_LEN = 352

Envelope = dict[str, int | str]
"""A JSON-able envelope as produced by :func:`seal`."""


class EnvelopeError(MarketError):
    """Base class of every reason an envelope is refused."""


class Malformed(EnvelopeError):
    """Not valid JSON, wrong schema, bad encoding of a field, or larger than the size limit."""


class Misaddressed(EnvelopeError):
    """Well formed but for another recipient, chain id or contract."""


class BadSignature(EnvelopeError):
    """Signature invalid, non-canonical (high s), or not by the header's sender.

    Any change to the signed content (header, ephemeral key, nonce, ciphertext) by a third
    party lands here, because the signature is checked before decryption.
    """


class Tampered(EnvelopeError):
    """Correctly signed but does not decrypt (AEAD failure or invalid ephemeral key)."""


class Replayed(EnvelopeError):
    """A message with the same (chain, contract, job, kind, sender, recipient) was accepted."""


class Header(BaseModel):
    """The public, authenticated part of an envelope (immutable, hashable).

    ``chain_id`` in ``[1, 2**256)``, ``job_id`` in ``[0, 2**256)``, ``kind`` matches
    ``[a-z_]{1,32}``, addresses are EIP-55 checksummed strings. Constructing one with other
    values raises ``pydantic.ValidationError``.
    """

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    chain_id: Annotated[int, Field(ge=1, lt=2**256)]
    contract: Address
    job_id: Annotated[int, Field(ge=0, lt=2**256)]
    kind: Annotated[str, Field(pattern=r"^[a-z_]{1,32}$")]
    sender: Address
    recipient: Address


class _Wire(Header):
    v: Annotated[int, Field(ge=VERSION, le=VERSION)]
    eph_pub: Annotated[HexBytes, Field(min_length=66, max_length=66)]
    nonce: Annotated[HexBytes, Field(min_length=26, max_length=26)]
    ciphertext: Annotated[HexBytes, Field(min_length=2 + 32,
                                          max_length=2 + 2 * MAX_CIPHERTEXT_BYTES)]
    signature: Annotated[HexBytes, Field(min_length=132, max_length=132)]

    def header(self) -> Header:
        return Header(
            chain_id=self.chain_id, contract=self.contract, job_id=self.job_id,
            kind=self.kind, sender=self.sender, recipient=self.recipient,
        )


def canonical_header(header: Header) -> bytes:
    """The 352-byte ABI encoding of the header with the protocol tag (AAD and signed prefix)."""
    out = abi_encode(
        _HEADER_TYPES,
        [PROTOCOL_TAG, header.chain_id, header.contract, header.job_id, header.kind,
         header.sender, header.recipient],
    )
    assert len(out) == _HEADER_LEN
    return out


def _signed_digest(aad: bytes, eph_pub: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    return keccak(aad + eph_pub + nonce + ciphertext)


def _derive_key(shared: bytes, eph_pub: bytes, recipient_pub: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=eph_pub + recipient_pub,
                info=HKDF_INFO)
    return hkdf.derive(shared)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate field {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _parse(raw: bytes | Mapping[str, Any]) -> _Wire:
    obj: Any
    if isinstance(raw, bytes | bytearray | memoryview):
        if len(raw) > MAX_ENVELOPE_BYTES:
            raise Malformed(f"envelope of {len(raw)} bytes exceeds {MAX_ENVELOPE_BYTES}")
        data = bytes(raw)
        # A valid envelope is one flat object. Refusing nesting before parsing matters: importing
        # eth_account (via py_ecc) raises the recursion limit to 100000, and json.loads of a
        # deeply nested document then overflows the C stack and kills the process.
        if data.count(b"{") > 1 or b"[" in data:
            raise Malformed("envelope must be a flat JSON object (no nested objects or arrays)")
        try:
            obj = json.loads(data.decode("utf-8"), object_pairs_hook=_reject_duplicates,
                             parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Malformed(f"envelope is not valid JSON: {exc}") from exc
    elif isinstance(raw, Mapping):
        obj = dict(raw)
    else:
        raise Malformed(f"envelope must be bytes or a mapping, got {type(raw).__name__}")
    if not isinstance(obj, dict):
        raise Malformed("envelope must be a JSON object")
    try:
        return _Wire.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise Malformed(f"invalid envelope: {problems}") from exc


def _hex(value: str) -> bytes:
    return bytes.fromhex(value[2:])


def _recover(digest: bytes, signature: bytes) -> str:
    try:
        return recover_signer(encode_defunct(primitive=digest), Sig.from_bytes(signature))
    except (SignatureError, ValueError) as exc:
        raise BadSignature(str(exc)) from exc


def _verify_signature(digest: bytes, signature: bytes, expected_signer: str) -> None:
    signer = _recover(digest, signature)
    if signer != expected_signer:
        raise BadSignature(f"signed by {signer}, not by the header's sender {expected_signer}")


def seal(header: Header, plaintext: bytes, sender: LocalAccount,
         recipient_enc_pub: bytes) -> Envelope:
    """Encrypt ``plaintext`` to ``recipient_enc_pub`` and sign it as ``header.sender``.

    ``recipient_enc_pub``: the recipient's raw 32-byte X25519 key, taken from the on-chain
    registry. Returns the JSON-able envelope (see module docstring); ``json.dumps`` of it is
    below ``MAX_ENVELOPE_BYTES``. Raises ``ValueError`` if ``sender`` is not ``header.sender``,
    the key is not 32 bytes or is a low-order point, or the plaintext exceeds
    ``MAX_PLAINTEXT_BYTES``; ``TypeError`` if ``header`` is not a :class:`Header`.
    """
    if not isinstance(header, Header):
        raise TypeError("header must be an envelope.Header")
    if sender.address != header.sender:
        raise ValueError(f"sender key is {sender.address}, header says {header.sender}")
    if len(recipient_enc_pub) != 32:
        raise ValueError("recipient X25519 key must be 32 bytes")
    if len(plaintext) > MAX_PLAINTEXT_BYTES:
        raise ValueError(f"plaintext of {len(plaintext)} bytes exceeds {MAX_PLAINTEXT_BYTES}")
    recipient_pub = bytes(recipient_enc_pub)
    eph = X25519PrivateKey.from_private_bytes(token_bytes(32))
    eph_pub = eph.public_key().public_bytes_raw()
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_pub))
    key = _derive_key(shared, eph_pub, recipient_pub)
    nonce = token_bytes(12)
    aad = canonical_header(header)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, bytes(plaintext), aad)
    digest = _signed_digest(aad, eph_pub, nonce, ciphertext)
    signature = bytes(sender.sign_message(encode_defunct(primitive=digest)).signature)
    return {
        "v": VERSION,
        "chain_id": header.chain_id,
        "contract": header.contract,
        "job_id": header.job_id,
        "kind": header.kind,
        "sender": header.sender,
        "recipient": header.recipient,
        "eph_pub": "0x" + eph_pub.hex(),
        "nonce": "0x" + nonce.hex(),
        "ciphertext": "0x" + ciphertext.hex(),
        "signature": "0x" + signature.hex(),
    }


def open_envelope(raw: bytes | Mapping[str, Any], *, recipient: str,
                  recipient_key: X25519PrivateKey, chain_id: int,
                  contract: str) -> tuple[Header, bytes]:
    """Validate, authenticate and decrypt an envelope addressed to us.

    ``raw``: the JSON bytes (at most ``MAX_ENVELOPE_BYTES``) or an already parsed object.
    ``recipient``/``contract``: our address and the market contract (any case; normalised).
    Checks, in order: size and schema (:class:`Malformed`); recipient, chain id and contract
    (:class:`Misaddressed`); signature by ``header.sender`` over the header, ephemeral key,
    nonce and ciphertext (:class:`BadSignature`); decryption (:class:`Tampered`). Does not
    check replays (:class:`ReplayGuard`) or whether the sender is authorised.
    Returns ``(header, plaintext)``. Raises ``ValueError`` if ``recipient``/``contract`` are
    not addresses.
    """
    wire = _parse(raw)
    header = wire.header()
    if header.chain_id != chain_id:
        raise Misaddressed(f"envelope is for chain {header.chain_id}, we are on {chain_id}")
    if header.contract != to_checksum_address(contract):
        raise Misaddressed(f"envelope is for contract {header.contract}, not {contract}")
    if header.recipient != to_checksum_address(recipient):
        raise Misaddressed(f"envelope is for {header.recipient}, not {recipient}")
    aad = canonical_header(header)
    eph_pub, nonce, ciphertext = _hex(wire.eph_pub), _hex(wire.nonce), _hex(wire.ciphertext)
    digest = _signed_digest(aad, eph_pub, nonce, ciphertext)
    _verify_signature(digest, _hex(wire.signature), header.sender)
    recipient_pub = recipient_key.public_key().public_bytes_raw()
    try:
        shared = recipient_key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    except ValueError as exc:  # low-order ephemeral point: all-zero shared secret
        raise Tampered("invalid ephemeral key") from exc
    key = _derive_key(shared, eph_pub, recipient_pub)
    try:
        plaintext = ChaCha20Poly1305(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag as exc:
        raise Tampered("ciphertext does not decrypt for this recipient key") from exc
    return header, plaintext


def envelope_digest(env: bytes | Mapping[str, Any]) -> bytes:
    """The 32-byte digest the sender signed: ``keccak(canonical_header || eph_pub || nonce ||
    ciphertext)``. Used as the envelope's transcript (Merkle) leaf.

    It excludes the signature, so it cannot be changed by re-encoding the signature; it does
    not verify the signature either. Raises :class:`Malformed` like :func:`open_envelope`.
    """
    wire = _parse(env)
    return _signed_digest(canonical_header(wire.header()), _hex(wire.eph_pub),
                          _hex(wire.nonce), _hex(wire.ciphertext))


def envelope_signer(env: bytes | Mapping[str, Any]) -> tuple[bytes, str]:
    """``(digest, signer)``: the 32-byte :func:`envelope_digest` and the checksum address its
    signature recovers to, without decrypting (an auditor checks a transcript it cannot read).

    The signer is *not* compared with the header's sender: the caller does that. Raises
    :class:`Malformed` like :func:`open_envelope`, :class:`BadSignature` for a non-canonical
    (high s, v not in {27, 28}) or unrecoverable signature.
    """
    wire = _parse(env)
    digest = _signed_digest(canonical_header(wire.header()), _hex(wire.eph_pub),
                            _hex(wire.nonce), _hex(wire.ciphertext))
    return digest, _recover(digest, _hex(wire.signature))


class ReplayGuard:
    """Accept at most one message per (chain, contract, job, kind, sender, recipient).

    Call :meth:`accept` only after :func:`open_envelope` succeeded, so that only authenticated
    headers take memory. Memory grows with the number of accepted messages until
    :meth:`forget_job` is called for a finished job. Thread-safe.
    """

    def __init__(self) -> None:
        self._seen: dict[int, set[tuple[int, str, str, str, str]]] = {}
        self._lock = threading.Lock()

    def accept(self, header: Header) -> None:
        """Record ``header``; raise :class:`Replayed` if an equal key was recorded before."""
        key = (header.chain_id, header.contract, header.kind, header.sender, header.recipient)
        with self._lock:
            seen = self._seen.setdefault(header.job_id, set())
            if key in seen:
                raise Replayed(
                    f"duplicate {header.kind!r} message for job {header.job_id} from "
                    f"{header.sender} to {header.recipient}"
                )
            seen.add(key)

    def forget_job(self, job_id: int) -> None:
        """Drop every record for ``job_id`` (on any chain or contract); no-op if none."""
        with self._lock:
            self._seen.pop(job_id, None)

    def __len__(self) -> int:
        with self._lock:
            return sum(len(s) for s in self._seen.values())
