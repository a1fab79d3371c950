"""Audit tags of the certificate authority (``domain:subject:action``)."""

from __future__ import annotations

from enum import StrEnum


class CaAction(StrEnum):
    AUTHORITY_CREATE = "ca:authority:create"
    AUTHORITY_RETIRE = "ca:authority:retire"
    OCSP_RESPONDER_ISSUE = "ca:authority:ocsp_responder"
    ROOT_KEY_EXPORT = "ca:authority:export_root_key"
    ROOT_KEY_REMOVE = "ca:authority:remove_root_key"
    CERTIFICATE_ISSUE = "ca:certificate:issue"
    CERTIFICATE_REVOKE = "ca:certificate:revoke"
    CERTIFICATE_VIEW = "ca:certificate:view"
    CRL_PUBLISH = "ca:crl:publish"
    DNS_ALLOW = "ca:dns_allowance:create"
    DNS_REMOVE = "ca:dns_allowance:remove"
