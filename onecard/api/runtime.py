"""The long-lived services a process needs, built once from settings.

:func:`prepare` is the start-up sequence of the embedded default (master key, migrations,
signing keys, the CA hierarchy, first-administrator bootstrap code). Workers only :func:`build_runtime`: the
schema and keys already exist by then, and a worker must never race another to create them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from onecard.ca import background  # noqa: F401  (registers its jobs and its status listener)
from onecard.ca.hierarchy import ensure_hierarchy
from onecard.ca.issuance import Signed, record_batch
from onecard.ca.models import Certificate
from onecard.ca.ocsp import OcspResponder
from onecard.ca.service import CertificateAuthority
from onecard.card import (
    keys,  # noqa: F401  (registers the card and trust-list signing keys)
    listener,  # noqa: F401  (registers the card's identity status listener)
)
from onecard.card.online import (
    Disclosure,
    OnlineVerifier,
    TrustListPublisher,
    Verification,
    record_verifications,
)
from onecard.core.audit import Actor
from onecard.core.db import Database, startup_lock
from onecard.core.group_commit import GroupCommit
from onecard.core.keyring import Keyring
from onecard.core.sealing import Sealer, load_master_key
from onecard.core.settings import Settings
from onecard.identity.bootstrap import offer_bootstrap_token
from onecard.identity.oidc.provider import Provider
from onecard.identity.passwords import PasswordHasher
from onecard.identity.staff import admin_exists


@dataclass
class Runtime:
    settings: Settings
    database: Database
    sealer: Sealer
    keyring: Keyring
    hasher: PasswordHasher
    provider: Provider
    ca: CertificateAuthority
    ocsp: OcspResponder
    issuance: GroupCommit[tuple[Signed, Actor], Certificate]
    cards: OnlineVerifier
    verifications: GroupCommit[Verification, Disclosure]
    trust_list: TrustListPublisher

    def close(self) -> None:
        self.issuance.close()
        self.verifications.close()
        self.database.dispose()


def build_runtime(
    settings: Settings, *, create_master_key: bool = False, database: Database | None = None
) -> Runtime:
    settings.check_production()
    create = create_master_key and settings.env != "production"
    sealer = Sealer(load_master_key(settings, create=create))
    keyring = Keyring(sealer, retirement=timedelta(seconds=settings.key_retirement_seconds))
    database = database or Database(
        settings.effective_database_url, pool_size=settings.db_pool_size
    )
    ca = CertificateAuthority(sealer, settings)
    provider = Provider.from_settings(settings, sealer, keyring)
    return Runtime(
        settings=settings,
        database=database,
        sealer=sealer,
        keyring=keyring,
        hasher=PasswordHasher.from_settings(settings),
        provider=provider,
        ca=ca,
        ocsp=OcspResponder(database, ca),
        issuance=GroupCommit(database, record_batch, name="ca-issuance"),
        cards=OnlineVerifier(keyring, provider.issuer),
        verifications=GroupCommit(database, record_verifications, name="card-verify"),
        trust_list=TrustListPublisher(database, keyring, provider.issuer),
    )


@dataclass(frozen=True)
class Prepared:
    runtime: Runtime
    needs_admin: bool
    bootstrap_token: str | None  # issued on this start; None if one is already live


def prepare(settings: Settings) -> Prepared:
    """First-start work, idempotent: migrate, create missing keys, offer a bootstrap token."""
    runtime = build_runtime(settings, create_master_key=True)
    runtime.database.upgrade()
    with runtime.database.session() as session:
        startup_lock(session.connection())
        runtime.keyring.ensure_keys(session, Actor.system())
        ensure_hierarchy(session, runtime.ca, Actor.system())
        needs_admin = not admin_exists(session)
        token = offer_bootstrap_token(session) if needs_admin else None
    return Prepared(runtime, needs_admin, token)
