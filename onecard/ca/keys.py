"""The authorities' private keys: generation, sealing, and the root key's offline custody.

Private keys are sealed with the same AES-256-GCM field sealing as the keyring's signing keys
(associated data: the authority's table, column and row), opened only to sign, and never
logged or returned. The root key can be exported as encrypted PKCS#8 (PBES2, AES-256) under a
passphrase and then erased from the database; operations that need it afterwards take the
exported file.
"""

from __future__ import annotations

import uuid
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from onecard.core.errors import InvalidInput
from onecard.core.sealing import Sealer

CaPrivateKey = ec.EllipticCurvePrivateKey
Column = Literal["private_key", "ocsp_private_key"]
MIN_PASSPHRASE_LENGTH = 12
_CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1}


def generate(curve: Literal["P-256", "P-384"]) -> CaPrivateKey:
    return ec.generate_private_key(_CURVES[curve]())


def seal(sealer: Sealer, key: CaPrivateKey, *, authority_id: uuid.UUID, column: Column) -> bytes:
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return sealer.seal(der, table="ca_authority", column=column, row_id=str(authority_id))


def open_sealed(
    sealer: Sealer, sealed: bytes, *, authority_id: uuid.UUID, column: Column
) -> CaPrivateKey:
    der = sealer.open(sealed, table="ca_authority", column=column, row_id=str(authority_id))
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError("authority keys are elliptic-curve keys")
    return key


def check_passphrase(passphrase: str) -> bytes:
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise InvalidInput(
            f"the passphrase must have at least {MIN_PASSPHRASE_LENGTH} characters",
            code="passphrase_too_short",
        )
    return passphrase.encode()


def export_encrypted(key: CaPrivateKey, passphrase: str) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` (PKCS#8, PBES2 with AES-256-CBC), readable by openssl."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(check_passphrase(passphrase)),
    )


def load_exported(data: bytes, passphrase: str) -> CaPrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=passphrase.encode())
    except (ValueError, TypeError):
        raise InvalidInput(
            "the key file cannot be opened with this passphrase", code="root_key_unreadable"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput("the key file does not hold a CA key", code="root_key_unreadable")
    return key


def same_key(private_key: CaPrivateKey, public_key: object) -> bool:
    return private_key.public_key() == public_key
