"""The certificate authority: hierarchy, profiles, issuance, revocation, CRL and OCSP
(DESIGN.md §7; built in issue #4)."""
