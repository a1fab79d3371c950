"""Audit tags of the identity package (``domain:subject:action``)."""

from __future__ import annotations

from enum import StrEnum


class IdentityAction(StrEnum):
    PERSON_REGISTER = "identity:person:register"
    PERSON_IMPORT = "identity:person:import"
    PERSON_UPDATE = "identity:person:update"
    PERSON_LEVEL = "identity:person:level"
    PERSON_SUSPEND = "identity:person:suspend"
    PERSON_REINSTATE = "identity:person:reinstate"
    PERSON_CLOSE = "identity:person:close"
    PERSON_VIEW = "identity:person:view"
    PERSON_REVEAL = "identity:person:reveal_identity_number"
    ENTERPRISE_REGISTER = "identity:enterprise:register"
    ENTERPRISE_LEGAL_REPRESENTATIVE = "identity:enterprise:legal_representative"
    ENTERPRISE_SUSPEND = "identity:enterprise:suspend"
    ENTERPRISE_REINSTATE = "identity:enterprise:reinstate"
    ENTERPRISE_CLOSE = "identity:enterprise:close"
    ENTERPRISE_ROLE_GRANT = "identity:enterprise_role:grant"
    ENTERPRISE_ROLE_WITHDRAW = "identity:enterprise_role:withdraw"
    STAFF_ROLE_GRANT = "identity:staff_role:grant"
    STAFF_ROLE_WITHDRAW = "identity:staff_role:withdraw"
    PASSWORD_SET = "identity:password:set"
    TOTP_ENROL = "identity:totp:enrol"
    TOTP_CONFIRM = "identity:totp:confirm"
    TOTP_REMOVE = "identity:totp:remove"
    RECOVERY_CODES_GENERATE = "identity:recovery_codes:generate"
    RECOVERY_CODE_USE = "identity:recovery_code:use"
    SIGN_IN = "identity:sign_in:success"
    SIGN_IN_FAILURE = "identity:sign_in:failure"
    SIGN_IN_LOCKOUT = "identity:sign_in:lockout"
    TOKEN_ISSUE = "identity:api_token:issue"
    TOKEN_REVOKE = "identity:api_token:revoke"
