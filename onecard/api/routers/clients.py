"""Administrators manage clients (portals and terminals) under ``/v1/admin/clients``.

A new client's secret is in the create (or rotate-secret) response only; it is never stored
in the clear, so no Idempotency-Key replay can return it again.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from onecard.api.deps import Admin, RuntimeDep
from onecard.api.schemas import (
    ClientCreated,
    ClientIn,
    ClientOut,
    ClientSecretOut,
    ClientUpdate,
    PageOut,
)
from onecard.core.errors import InvalidInput
from onecard.identity.oidc import clients
from onecard.identity.oidc.models import ClientStatus

router = APIRouter(prefix="/v1/admin/clients", tags=["clients"])


@router.post("", status_code=201, response_model=ClientCreated, summary="Register a client")
def create_client(body: ClientIn, principal: Admin, runtime: RuntimeDep) -> ClientCreated:
    spec = clients.ClientSpec(**body.model_dump())
    with runtime.database.session() as session:
        client, secret = clients.create_client(session, spec, actor=principal.actor)
        session.flush()
        return ClientCreated(**ClientOut.of(client).model_dump(), client_secret=secret)


@router.get("", response_model=PageOut[ClientOut], summary="List clients")
def list_clients(
    principal: Admin,
    runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> PageOut[ClientOut]:
    with runtime.database.session() as session:
        page = clients.list_clients(session, limit=limit, cursor=cursor)
        return PageOut(items=[ClientOut.of(c) for c in page.items], next_cursor=page.next_cursor)


@router.get("/{client_id}", response_model=ClientOut, summary="Show a client")
def show_client(client_id: str, principal: Admin, runtime: RuntimeDep) -> ClientOut:
    with runtime.database.session() as session:
        return ClientOut.of(clients.get_client(session, client_id))


@router.patch("/{client_id}", response_model=ClientOut, summary="Change a client")
def update_client(
    client_id: str, body: ClientUpdate, principal: Admin, runtime: RuntimeDep
) -> ClientOut:
    changes = body.model_dump(exclude_unset=True)
    with runtime.database.session() as session:
        client = clients.get_client(session, client_id)
        spec = clients.spec_of(client, **_typed(changes))
        return ClientOut.of(clients.update_client(session, client, spec, actor=principal.actor))


@router.post(
    "/{client_id}/rotate-secret", response_model=ClientSecretOut, summary="New client secret"
)
def rotate_secret(client_id: str, principal: Admin, runtime: RuntimeDep) -> ClientSecretOut:
    with runtime.database.session() as session:
        client = clients.get_client(session, client_id)
        secret = clients.rotate_secret(session, client, actor=principal.actor)
        return ClientSecretOut(client_id=client.client_id, client_secret=secret)


def _set_status(
    client_id: str, status: ClientStatus, principal: Admin, runtime: RuntimeDep
) -> ClientOut:
    with runtime.database.session() as session:
        client = clients.get_client(session, client_id)
        return ClientOut.of(clients.set_status(session, client, status, actor=principal.actor))


@router.post("/{client_id}/disable", response_model=ClientOut, summary="Disable a client")
def disable_client(client_id: str, principal: Admin, runtime: RuntimeDep) -> ClientOut:
    return _set_status(client_id, ClientStatus.DISABLED, principal, runtime)


@router.post("/{client_id}/enable", response_model=ClientOut, summary="Enable a client")
def enable_client(client_id: str, principal: Admin, runtime: RuntimeDep) -> ClientOut:
    return _set_status(client_id, ClientStatus.ACTIVE, principal, runtime)


_NULLABLE = {"backchannel_logout_uri", "jwks", "jwks_uri", "sector_identifier"}


def _typed(changes: dict) -> dict:
    """Tuples where the spec holds tuples (lists from JSON); null only where it means 'none'."""
    nulled = sorted(k for k, v in changes.items() if v is None and k not in _NULLABLE)
    if nulled:
        raise InvalidInput(
            f"these fields cannot be null: {', '.join(nulled)}", code="null_not_allowed"
        )
    return {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
