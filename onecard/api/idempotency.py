"""Runs a create under an optional ``Idempotency-Key`` (see :mod:`onecard.core.idempotency`)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlmodel import Session

from onecard.core import idempotency


def run(
    session: Session,
    request: Request,
    *,
    caller: str,
    key: str | None,
    body: BaseModel | None,
    secret_fields: frozenset[str] = frozenset(),
    create: Callable[[], BaseModel],
    status_code: int = 201,
) -> Response:
    """Call ``create`` once per (caller, key); replay its response for a retry of the same body.

    ``secret_fields`` are left out of the request fingerprint, which is stored.
    """
    if key is None:
        return JSONResponse(create().model_dump(mode="json"), status_code=status_code)
    key = idempotency.check_key(key)
    body_json = body.model_dump_json(exclude=set(secret_fields)) if body else ""
    print_ = idempotency.fingerprint(request.method, request.url.path, body_json)
    existing = idempotency.find(session, caller, key, print_)
    if existing is not None:
        return Response(
            existing.response,
            status_code=existing.status_code,
            media_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    result = create().model_dump_json()
    idempotency.remember(session, caller, key, print_, status_code, result)
    return Response(result, status_code=status_code, media_type="application/json")
