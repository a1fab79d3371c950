"""The FastAPI application factory: assembles middleware, error handling and routers.

:func:`create_app` takes a ready :class:`Runtime` (tests, embedded server);
:func:`app_from_environment` is what each uvicorn worker imports (``--factory``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from onecard import __version__
from onecard.api import docs, pages, problems
from onecard.api.middleware import Observability, SecurityHeaders
from onecard.api.ocsp_lane import OcspFastLane
from onecard.api.routers import (
    audit,
    auth,
    ca,
    card_page,
    cards,
    certificates,
    clients,
    counter_page,
    enterprises,
    health,
    me,
    oauth,
    persons,
    staff,
)
from onecard.api.runtime import Runtime, build_runtime
from onecard.api.token_lane import TokenFastLane
from onecard.core.jobs import JobContext, Worker
from onecard.core.settings import get_settings

DESCRIPTION = """onecard: the city's citizen one-card and identity trust service.

Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`.
Lists are paginated with an opaque `cursor`; creates accept an `Idempotency-Key` header.
Authenticate with an access token from the OpenID Connect provider (`/oauth2/token`; see
`/.well-known/openid-configuration`), or, for operators, `onecard admin token`.
"""


def create_app(runtime: Runtime | None) -> FastAPI:
    """The application; ``runtime`` may be ``None`` only to render the OpenAPI document."""
    app = FastAPI(
        title="onecard",
        version=__version__,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # served by onecard.api.docs from local assets
        redoc_url=None,
    )
    app.state.runtime = runtime
    problems.install(app)
    docs.install(app)
    pages.mount_static(app)
    for router in (
        health.router,
        oauth.router,
        auth.router,
        clients.router,
        persons.router,
        me.router,
        staff.router,
        enterprises.router,
        certificates.router,
        ca.router,
        cards.router,
        card_page.router,
        counter_page.router,
        audit.router,
    ):
        app.include_router(router)
    # Outermost last: the OCSP fast lane (binary answers from memory, counted apart) wraps the
    # security headers, which wrap metrics, which wrap the last-resort error handler, which
    # wraps the token endpoint's fast lane.
    app.add_middleware(TokenFastLane, provider=runtime.provider if runtime else None)
    app.add_middleware(problems.UnexpectedErrors)
    app.add_middleware(Observability)
    https = runtime is not None and runtime.settings.public_url.startswith("https://")
    app.add_middleware(SecurityHeaders, https=https)
    app.add_middleware(OcspFastLane, responder=runtime.ocsp if runtime else None)
    return app


def app_from_environment() -> FastAPI:
    """Worker entry point: settings from the environment, schema and keys already prepared."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(levelname)s %(name)s: %(message)s")
    runtime = build_runtime(settings)
    app = create_app(runtime)
    if settings.worker_in_process:
        # Each web worker also runs the job loop (back-channel logouts); leases keep each job
        # to one runner. `onecard worker` runs the loop alone where that is preferred.
        worker = Worker(JobContext.from_runtime(runtime))

        @contextlib.asynccontextmanager
        async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
            worker.start()
            try:
                yield
            finally:
                worker.stop()

        app.router.lifespan_context = lifespan
    return app
