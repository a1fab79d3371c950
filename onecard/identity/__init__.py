"""Identity: persons (citizens), enterprises and their members, staff roles, credentials
(password, TOTP, recovery codes), assurance levels and, later, the OpenID Connect provider."""
