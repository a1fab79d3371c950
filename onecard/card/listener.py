"""The card follows its person's status (an identity status listener, see
:func:`onecard.identity.lifecycle.register_status_listener`).

- Suspending the person suspends their active card, remembering why.
- Reinstating the person resumes the card only if it was suspended because the person was: a
  card an officer suspended, or one reported lost, stays as it is.
- Closing the person closes their card.

The listener runs inside the person's status change, so the person's and the card's new
statuses (and their audit events) commit together. Importing this module registers it; every
process that changes statuses must import it (the runtime does).
"""

from __future__ import annotations

import uuid

from sqlmodel import Session

from onecard.card import cards
from onecard.core.audit import Actor
from onecard.identity.lifecycle import Transition, register_status_listener
from onecard.identity.models import SubjectStatus


def on_status_change(
    session: Session, kind: str, subject_id: uuid.UUID, transition: Transition, actor: Actor
) -> None:
    if kind != "person":
        return  # enterprises hold no card
    if transition.target == SubjectStatus.SUSPENDED:
        cards.suspend_with_person(session, subject_id, actor=actor, reason=transition.reason)
    elif transition.target == SubjectStatus.ACTIVE:
        cards.resume_with_person(session, subject_id, actor=actor)
    elif transition.target == SubjectStatus.CLOSED:
        cards.close_with_person(session, subject_id, actor=actor, reason=transition.reason)


register_status_listener(on_status_change)
