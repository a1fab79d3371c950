"""The card package's signing keys, registered with the keyring (:mod:`onecard.core.keyring`).

- ``card`` (ES256) signs the QR tokens (:mod:`onecard.card.token`). Its public keys travel in
  the trust list (next, active and retired ones), not in the OpenID Connect JWKS: only
  terminals need them.
- ``trust_list`` (ES256) signs the trust list (:mod:`onecard.card.trustlist`). Its public
  keys are in the JWKS (``/.well-known/jwks.json``), where terminals fetch them.

Importing this module registers both uses; every process imports it (``onecard.api.runtime``)
before the keys are ensured, so ``onecard init`` creates them and rotation covers them. The
names live beside the code that uses them, so the offline verifier never imports the keyring.
"""

from __future__ import annotations

from onecard.card.token import CARD_ALG, CARD_KEY_PURPOSE
from onecard.card.trustlist import TRUST_LIST_KEY_PURPOSE
from onecard.core.keyring import register_key_use

__all__ = ["CARD_ALG", "CARD_KEY_PURPOSE", "TRUST_LIST_KEY_PURPOSE"]

register_key_use(CARD_KEY_PURPOSE, CARD_ALG)
register_key_use(TRUST_LIST_KEY_PURPOSE, CARD_ALG, published=True)
