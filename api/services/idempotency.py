"""``Idempotency-Key`` for POST /v1/jobs (after draft-ietf-httpapi-idempotency-key-header).

The response to the first request with a key is stored with a fingerprint of its body (SHA-256
of the canonical JSON) in ``<state dir>/idempotency.json`` (written atomically, mode 0600), so it
survives a restart. A retry with the same key and the same body gets that response again, with
``Idempotent-Replayed: true``, and nothing is broadcast. The same key with another body is a 422
``idempotency-key-reuse``; a retry while the first request is still running is a 409
``idempotency-key-in-use``.

Stored are the responses whose outcome is final on chain: 201 (job posted) and a mined
transaction that reverted. Before a transaction is broadcast, the key is bound to the request's
fingerprint and the transaction hash (state "pending"): a retry with the same body follows that
transaction (the job if it was mined, else 504 again), another body is a 422, so no retry after
a 504 or a lost connection can post a second transaction under the key.
A request refused before anything was broadcast (validation, or the node refusing the
transaction) is not stored: the chain did not change, so repeating it gives the same answer
anyway, and a client may fix its body and retry with the key. Entries expire after TTL_S.

Independently of keys, a signed transaction can be mined only once (its nonce), and POST
/v1/jobs answers a transaction already on chain with the job it created, so no retry can create
a second job.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from offchain.errors import MarketError

TTL_S = 24 * 3600
MAX_KEY_LENGTH = 255


class IdempotencyKeyError(MarketError, ValueError):
    """An ``Idempotency-Key`` header value that is not a key; the message says why ("must be
    ..."). The API answers it as a 422 ``validation-error`` on ``header.Idempotency-Key``
    (:mod:`api.problems`)."""


def parse_key(raw: str) -> str:
    """The key from the header value: 1..255 visible ASCII characters, optionally quoted as an
    RFC 8941 string. Raises IdempotencyKeyError (a ValueError)."""
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise IdempotencyKeyError(f"must be 1 to {MAX_KEY_LENGTH} characters")
    if not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise IdempotencyKeyError("must be visible ASCII characters without spaces")
    return key


def fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


@dataclass(frozen=True)
class Stored:
    fingerprint: str
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    created: float
    tx_hash: str | None = None
    pending: bool = False  # bound before broadcasting; no final response yet


class IdempotencyStore:
    """Key -> stored response, persisted in ``path`` (JSON)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Stored] = {}
        self.in_flight: set[str] = set()
        if path.is_file():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                for key, e in raw.get("entries", {}).items():
                    tx_hash = e.get("tx_hash")
                    self._entries[key] = Stored(str(e["fingerprint"]), int(e["status"]),
                                                dict(e["body"]), dict(e.get("headers", {})),
                                                float(e["created"]),
                                                None if tx_hash is None else str(tx_hash),
                                                e.get("state", "done") == "pending")
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                raise ValueError(f"{path} is not an idempotency store: {exc!r}") from None

    def get(self, key: str) -> Stored | None:
        entry = self._entries.get(key)
        if entry is not None and time.time() - entry.created > TTL_S:
            return None
        return entry

    def put(self, key: str, fp: str, status: int, body: dict[str, Any],
            headers: dict[str, str] | None = None) -> None:
        self._set(key, Stored(fp, status, body, dict(headers or {}), time.time(),
                              body.get("tx_hash")))

    def reserve(self, key: str, fp: str, tx_hash: str) -> None:
        """Bind ``key`` to ``fp`` and ``tx_hash`` before the transaction is broadcast."""
        self._set(key, Stored(fp, 0, {}, {}, time.time(), tx_hash, pending=True))

    def release(self, key: str) -> None:
        """Drop a pending binding (the transaction was refused: nothing was broadcast)."""
        entry = self._entries.get(key)
        if entry is not None and entry.pending:
            del self._entries[key]
            self._save()

    def _set(self, key: str, entry: Stored) -> None:
        now = entry.created
        self._entries = {k: e for k, e in self._entries.items() if now - e.created <= TTL_S}
        self._entries[key] = entry
        self._save()

    def _save(self) -> None:
        data = {"version": 1, "entries": {
            k: {"fingerprint": e.fingerprint, "status": e.status, "body": e.body,
                "headers": e.headers, "created": e.created, "tx_hash": e.tx_hash,
                "state": "pending" if e.pending else "done"}
            for k, e in self._entries.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".idempotency-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
