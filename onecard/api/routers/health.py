"""Liveness, readiness, Prometheus metrics and the published signing keys (JWKS)."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from sqlalchemy.exc import SQLAlchemyError

from onecard.api.deps import RuntimeDep
from onecard.core.errors import NotFound

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: database reachable and signing keys loaded")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        runtime.database.ping()
        checks["database"] = "ok"
        with runtime.database.session() as session:
            for alg in ("RS256", "ES256"):
                runtime.keyring.signer(session, "token", alg)
        checks["keys"] = "ok"
    except SQLAlchemyError:
        checks.setdefault("database", "unreachable")
    except NotFound:
        checks["keys"] = "missing"
    ready = all(value == "ok" for value in checks.values()) and len(checks) == 2
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
def metrics() -> Response:
    registry = DEFAULT_REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/.well-known/jwks.json", summary="Published token signing keys (RFC 7517)")
def jwks(runtime: RuntimeDep) -> JSONResponse:
    with runtime.database.session() as session:
        keys = runtime.keyring.jwks(session)
    return JSONResponse(keys, headers={"Cache-Control": "public, max-age=300"})
