"""Audit tags of the one-card (``domain:subject:action``)."""

from __future__ import annotations

from enum import StrEnum


class CardAction(StrEnum):
    CARD_ISSUE = "card:card:issue"
    CARD_SUSPEND = "card:card:suspend"
    CARD_RESUME = "card:card:resume"
    CARD_REPORT_LOST = "card:card:report_lost"
    CARD_REISSUE = "card:card:reissue"
    CARD_CLOSE = "card:card:close"
    LINK_CREATE = "card:link:create"
    LINK_REMOVE = "card:link:remove"
    TERMINAL_CREATE = "card:terminal:create"
    TERMINAL_DISABLE = "card:terminal:disable"
    VERIFICATION_RECORD = "card:verification:record"
