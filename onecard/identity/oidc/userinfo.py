"""The UserInfo endpoint (OIDC Core §5.3): the consented claims for an access token.

Claims come from the token's scopes plus those asked for userinfo in the ``claims``
parameter, limited to what the client may have; ``sub`` is the one in the token, so it always
matches the ID token's.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from onecard.identity.models import Person, SubjectStatus
from onecard.identity.oidc.claims import ClaimContext, ClaimsRequest, claim_values, released_claims
from onecard.identity.oidc.errors import InsufficientScope, InvalidToken
from onecard.identity.oidc.models import Grant
from onecard.identity.oidc.provider import Provider
from onecard.identity.oidc.tokens import TokenRejected, verify_access_token


def userinfo(session: Session, provider: Provider, token: str) -> dict[str, Any]:
    try:
        info = verify_access_token(session, provider, token)
    except TokenRejected as exc:
        raise InvalidToken(exc.reason) from None
    if "openid" not in info.scopes or info.grant_id is None:
        raise InsufficientScope("userinfo needs a token with the openid scope")
    grant = session.get(Grant, info.grant_id)
    client = provider.clients.get(session, info.client_id)
    person = session.get(Person, grant.person_id) if grant else None
    if grant is None or client is None or person is None:
        raise InvalidToken("the token's grant is gone")
    if person.status != SubjectStatus.ACTIVE:
        raise InvalidToken("the account is not active")
    request = ClaimsRequest.from_json(grant.claims)
    userinfo_request = ClaimsRequest(id_token={}, userinfo=request.userinfo) if request else None
    names = released_claims(
        sorted(info.scopes),
        userinfo_request,
        allowed_scopes=client.scopes,
        full_identity_number=client.full_identity_number,
    )
    values = claim_values(
        session,
        provider.sealer,
        person,
        [n for n in names if n != "sub"],
        ClaimContext(client.client_id, grant.enterprise_id),
    )
    return {"sub": info.claims["sub"], **values}
