"""Sealing of sensitive fields (PIPL art. 28) and blind indexes for equality look-ups.

- The **master key** (32 random bytes) comes from ``ONECARD_MASTER_KEY`` or a key file; the
  embedded default creates ``var/master.key`` with mode 0600 on first start.
- Every purpose gets its own key, derived with HKDF-SHA256 and a label; no key is used for two
  purposes.
- :meth:`Sealer.seal` encrypts with AES-256-GCM under associated data naming the table, the
  column and the row, so a sealed value copied into another row or column fails to open.
  Format: ``b"\\x01" + nonce(12) + ciphertext||tag``; the leading byte is the format version.
- :meth:`Sealer.blind_index` is HMAC-SHA256 under a separate derived key: equal inputs give equal
  indexes (so a unique constraint works), and the index reveals nothing without the master key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from onecard.core.errors import ConfigurationError
from onecard.core.settings import Settings

MASTER_KEY_BYTES = 32
_FORMAT_V1 = b"\x01"
_NONCE_BYTES = 12


class SealedValueError(Exception):
    """A sealed value failed to open: wrong key, wrong row/column, or tampered bytes."""


def load_master_key(settings: Settings, *, create: bool = False) -> bytes:
    """The master key from the environment or the key file (created when ``create``)."""
    if settings.master_key is not None:
        return _decode_key(settings.master_key.get_secret_value(), "ONECARD_MASTER_KEY")
    path = settings.effective_master_key_file
    if not path.exists():
        if not create:
            raise ConfigurationError(
                f"no master key: {path} does not exist and ONECARD_MASTER_KEY is not set",
                code="master_key_missing",
            )
        _create_key_file(path)
    return _decode_key(path.read_text().strip(), str(path))


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner only
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()
    # O_EXCL: two workers starting at once must not write two different keys.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(encoded + "\n")


def _decode_key(encoded: str, origin: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        key = b""
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigurationError(
            f"{origin} must hold {MASTER_KEY_BYTES} bytes in base64url", code="master_key_invalid"
        )
    return key


def generate_master_key() -> str:
    """A fresh master key in the text form ``ONECARD_MASTER_KEY`` expects."""
    return base64.urlsafe_b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()


class Sealer:
    """Seals, opens and blind-indexes values under keys derived from one master key."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise ValueError("master key must be 32 bytes")
        self._master_key = master_key

    def __repr__(self) -> str:
        return "Sealer(<master key hidden>)"

    @lru_cache(maxsize=64)  # noqa: B019 - one Sealer lives for the process; few purposes
    def derive_key(self, label: str) -> bytes:
        """A 32-byte key for one purpose, e.g. ``"seal/person.identity_number"``."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=None,
            info=f"onecard/v1/{label}".encode(),
        ).derive(self._master_key)

    @lru_cache(maxsize=64)  # noqa: B019
    def _aead(self, table: str, column: str) -> AESGCM:
        return AESGCM(self.derive_key(f"seal/{table}.{column}"))

    def seal(self, plaintext: str | bytes, *, table: str, column: str, row_id: object) -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead(table, column).encrypt(nonce, data, _aad(table, column, row_id))
        return _FORMAT_V1 + nonce + sealed

    def open(self, sealed: bytes, *, table: str, column: str, row_id: object) -> bytes:
        if len(sealed) < 1 + _NONCE_BYTES + 16 or sealed[:1] != _FORMAT_V1:
            raise SealedValueError("not a sealed value")
        nonce, body = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            return self._aead(table, column).decrypt(nonce, body, _aad(table, column, row_id))
        except InvalidTag as exc:
            raise SealedValueError(f"cannot open {table}.{column} for this row") from exc

    def open_text(self, sealed: bytes, *, table: str, column: str, row_id: object) -> str:
        return self.open(sealed, table=table, column=column, row_id=row_id).decode()

    def blind_index(self, value: str, *, purpose: str) -> bytes:
        """HMAC-SHA256 of the normalised ``value``; equal inputs give equal indexes."""
        key = self.derive_key(f"blind-index/{purpose}")
        return hmac.new(key, value.encode(), hashlib.sha256).digest()


def _aad(table: str, column: str, row_id: object) -> bytes:
    return f"{table}\x1f{column}\x1f{row_id}".encode()
