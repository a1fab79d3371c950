"""The provider's configuration and long-lived helpers, built once per process."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from onecard.core.keyring import Keyring
from onecard.core.sealing import Sealer
from onecard.core.settings import Settings
from onecard.identity.oidc.clients import ClientCache
from onecard.identity.oidc.jwks import RemoteJwks


@dataclass
class Provider:
    """What every protocol function needs besides a database session."""

    issuer: str
    sealer: Sealer
    keyring: Keyring
    access_token_ttl: timedelta = timedelta(minutes=5)
    id_token_ttl: timedelta = timedelta(minutes=5)
    refresh_token_ttl: timedelta = timedelta(hours=8)
    session_ttl: timedelta = timedelta(hours=8)
    code_ttl: timedelta = timedelta(seconds=60)
    clients: ClientCache = field(default_factory=ClientCache)
    remote_jwks: RemoteJwks = field(default_factory=RemoteJwks)

    @classmethod
    def from_settings(cls, settings: Settings, sealer: Sealer, keyring: Keyring) -> Provider:
        return cls(
            issuer=settings.issuer,
            sealer=sealer,
            keyring=keyring,
            access_token_ttl=timedelta(seconds=settings.access_token_ttl_seconds),
            id_token_ttl=timedelta(seconds=settings.id_token_ttl_seconds),
            refresh_token_ttl=timedelta(seconds=settings.refresh_token_ttl_seconds),
            session_ttl=timedelta(seconds=settings.session_ttl_seconds),
            code_ttl=timedelta(seconds=settings.authorization_code_ttl_seconds),
        )
