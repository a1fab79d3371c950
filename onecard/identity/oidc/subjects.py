"""Subject identifiers (OpenID Connect Core §8): public, or pairwise per client sector.

A public ``sub`` is the person's UUID. A pairwise ``sub`` is an HMAC of the sector (the
registered sector identifier, else the host of the client's redirect URIs) and the person's
UUID under a key derived from the master key, so two portals of different sectors get
unrelated identifiers and cannot correlate a citizen without the city's help.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from urllib.parse import urlsplit

from onecard.core.jose import b64url
from onecard.core.sealing import Sealer
from onecard.identity.oidc.models import Client, SubjectType

_PAIRWISE_LABEL = "oidc-pairwise-subject"


def sector_of(client: Client) -> str:
    if client.sector_identifier:
        return client.sector_identifier
    hosts = {urlsplit(uri).hostname or "" for uri in client.redirect_uris}
    # Clients without redirect URIs (terminals) form a sector of their own.
    return hosts.pop() if len(hosts) == 1 else f"client:{client.client_id}"


def subject_for(sealer: Sealer, client: Client, person_id: uuid.UUID) -> str:
    if client.subject_type == SubjectType.PUBLIC:
        return str(person_id)
    key = sealer.derive_key(_PAIRWISE_LABEL)
    message = f"{sector_of(client)}\x00{person_id}".encode()
    return b64url(hmac.new(key, message, hashlib.sha256).digest())
