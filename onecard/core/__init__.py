"""Shared kernel with no business rules: settings, database, clock, errors, sealing,
keyring, audit trail and validators for national numbers."""
