"""RFC 9457 problem details: every error a client sees, with a stable machine-readable ``code``.

Domain errors map to status codes here (and only here). Request validation errors become 422
``request_invalid`` listing the fields at fault, without echoing the submitted values (they may
be identity numbers or passwords). Anything unexpected is logged with a reference id and answered
500 ``internal_error`` without a stack trace.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onecard.core import errors

PROBLEM_JSON = "application/problem+json"
CLIENT_CLOSED = "onecard.client_closed"
log = logging.getLogger("onecard.api")

STATUS = {
    errors.InvalidInput: 422,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.InvalidState: 409,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.TooManyAttempts: 429,
    errors.ConfigurationError: 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def problem(
    status: int, code: str, title: str, detail: str | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status, "code": code}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="onecard"'
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_of(exc: errors.OnecardError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.OnecardError)
    response = problem(status_of(exc), exc.code, exc.title, exc.detail, **exc.extra)
    if isinstance(exc, errors.TooManyAttempts):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = [
        {"location": ".".join(str(p) for p in error["loc"]), "message": error["msg"]}
        for error in exc.errors()
    ]
    return problem(
        422,
        "request_invalid",
        "Invalid request",
        "the request does not match the schema",
        errors=fields,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    response = problem(exc.status_code, code, code.replace("_", " ").capitalize(), detail)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


class UnexpectedErrors:
    """Answers any unhandled exception with a 500 problem (logged with a reference id).

    It sits inside the security-headers middleware, so a 500 carries the same headers as every
    other response (Starlette's own last-resort handler sits outside all middleware).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # The client hung up before we answered: nobody to answer, nothing went wrong
            # here. Metrics count it as 499 (client closed request), not as a server error.
            scope[CLIENT_CLOSED] = True
        except Exception as exc:
            if started:
                raise
            reference = uuid.uuid4().hex[:12]
            log.error("unhandled error, reference %s", reference, exc_info=exc)
            response = problem(
                500,
                "internal_error",
                "Internal error",
                "something went wrong on our side",
                reference=reference,
            )
            await response(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.OnecardError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
