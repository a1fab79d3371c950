"""The one-card: the virtual card, linked cards (social security, transit, bank), the signed QR
token format, the offline verifier and the trust list (DESIGN.md §6; built in issue #5)."""
