"""onecard: a city's citizen one-card and identity trust service.

Packages (DESIGN.md §1), with dependencies pointing one way,
``api -> identity, card, ca -> core``:

- :mod:`onecard.core` shared kernel: settings, database, sealing, keyring, audit, validators.
- :mod:`onecard.identity` persons, enterprises, staff roles, credentials, assurance levels.
- :mod:`onecard.card` the virtual card, linked cards and signed QR codes.
- :mod:`onecard.ca` the certificate authority.
- :mod:`onecard.api` the HTTP application and the ``onecard`` command line.
"""

__version__ = "0.1.0"
