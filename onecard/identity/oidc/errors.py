"""OAuth 2.0 / OpenID Connect errors, each with its wire code and HTTP status.

RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, OpenID Connect Core §3.1.2.6.
One handler in ``onecard.api`` renders all of them: as a JSON body on the token, introspection
and revocation endpoints, as redirect parameters from the authorization endpoint, and as a
``WWW-Authenticate`` challenge for bearer errors. ``description`` is for developers and holds
no secret.
"""

from __future__ import annotations


class OAuthError(Exception):
    error: str = "invalid_request"
    status_code: int = 400
    # The transaction must still commit before the error is answered (a revocation it made).
    commit: bool = False

    def __init__(self, description: str = "") -> None:
        super().__init__(description or self.error)
        self.description = description


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class ReuseDetected(InvalidGrant):
    """A used code or a rotated refresh token presented again: what it issued is revoked, and
    that revocation commits before ``invalid_grant`` is answered (RFC 9700 §4.14.2)."""

    commit = True


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class AccessDenied(OAuthError):
    error = "access_denied"
    status_code = 403


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class InteractionRequired(OAuthError):
    error = "interaction_required"


class AccountSelectionRequired(OAuthError):
    error = "account_selection_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class InvalidToken(OAuthError):
    """RFC 6750 §3.1: a missing, malformed, expired or revoked bearer token."""

    error = "invalid_token"
    status_code = 401


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status_code = 403


class InvalidRedirect(Exception):
    """The client or redirect URI cannot be trusted: show an error page, never redirect."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
