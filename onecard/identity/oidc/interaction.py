"""The state of one authorization request while the citizen signs in and consents.

The validated request parameters and the progress so far (password checked, second factor,
enterprise chosen, consent given) travel in the page forms as one sealed value (AES-256-GCM
under a key of its own), bound by its associated data to the browser's CSRF cookie: it cannot
be read, altered, or replayed from another browser, and the server keeps no row for requests
that are abandoned half-way. It expires after ten minutes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from onecard.core import clock
from onecard.core.jose import b64url, b64url_decode
from onecard.core.sealing import SealedValueError, Sealer

_LIFETIME_SECONDS = 600


class InteractionExpired(Exception):
    pass


@dataclass(frozen=True)
class Interaction:
    params: dict[str, str]
    started_at: int = field(default_factory=lambda: int(clock.now().timestamp()))
    # A fresh authentication made within this request (prompt=login, max_age, step-up).
    authenticated: bool = False
    # Password verified for this person; waiting for the second factor.
    pending_person: str | None = None
    enterprise_id: str | None = None
    enterprise_chosen: bool = False
    consented: bool = False

    def replace(self, **changes: object) -> Interaction:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def seal_interaction(sealer: Sealer, interaction: Interaction, binding: str) -> str:
    data = json.dumps(dataclasses.asdict(interaction), separators=(",", ":")).encode()
    return b64url(sealer.seal(data, table="interaction", column="state", row_id=binding))


def open_interaction(sealer: Sealer, text: str, binding: str) -> Interaction:
    if not text or len(text) > 16_384 or not binding:
        raise InteractionExpired("missing or oversized interaction state")
    try:
        data = sealer.open(b64url_decode(text), table="interaction", column="state", row_id=binding)
        interaction = Interaction(**json.loads(data))
    except (SealedValueError, ValueError, TypeError):
        raise InteractionExpired("the sign-in request is not valid in this browser") from None
    if clock.now().timestamp() - interaction.started_at > _LIFETIME_SECONDS:
        raise InteractionExpired("the sign-in request has expired")
    return interaction
