"""The first-administrator bootstrap (the one-time ``oct_`` token printed on first start).

Everything else authenticates with access tokens from the OpenID Connect provider
(:mod:`onecard.api.routers.oauth`).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from onecard.api.deps import BootstrapPrincipal, RuntimeDep
from onecard.api.schemas import Bootstrap, PersonOut
from onecard.identity import bootstrap as bootstrapping
from onecard.identity.models import ApiToken
from onecard.identity.persons import NewPerson

router = APIRouter(prefix="/v1", tags=["authentication"])


@router.post(
    "/bootstrap",
    status_code=201,
    response_model=PersonOut,
    summary="Create the first administrator with the one-time bootstrap token",
)
def bootstrap(body: Bootstrap, principal: BootstrapPrincipal, runtime: RuntimeDep) -> PersonOut:
    new = NewPerson(body.name, body.identity_number, body.phone, body.email)
    with runtime.database.session() as session:
        token = session.get(ApiToken, uuid.UUID(principal.token_id))
        assert token is not None
        bootstrapping.consume_bootstrap_token(session, token)
        person = bootstrapping.create_first_admin(
            session, runtime.sealer, runtime.hasher, new, body.password, actor=principal.actor
        )
        return PersonOut.of(person)
