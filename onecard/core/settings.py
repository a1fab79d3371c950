"""Settings from ``ONECARD_*`` environment variables (and an optional ``.env``).

Every setting has a safe default for the embedded mode (SQLite and a master key file under
``./var/``). ``ONECARD_ENV=production`` turns on :meth:`Settings.check_production`, which refuses
settings that are fine on a laptop and dangerous on a server.
"""

from __future__ import annotations

import functools
import stat
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from onecard.core.errors import ConfigurationError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ONECARD_", env_file=".env", extra="ignore", frozen=True
    )

    env: Literal["development", "production"] = Field(
        "development", description="`production` refuses insecure settings at start-up."
    )
    data_dir: Path = Field(
        Path("var"), description="Where the embedded default keeps its database and key file."
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at `<data_dir>/onecard.db`."
    )
    public_url: str = Field(
        "",
        description="Externally visible base URL (OIDC issuer, CRL/OCSP/AIA URLs); "
        "empty means the address served.",
    )
    master_key: SecretStr | None = Field(
        None, description="Master key, 32 bytes in base64url; takes precedence over the file."
    )
    master_key_file: Path | None = Field(
        None, description="Master key file; empty means `<data_dir>/master.key` (mode 0600)."
    )
    log_level: str = Field("INFO", description="Python logging level.")
    db_pool_size: int = Field(
        20, ge=1, description="Connections kept per worker (PostgreSQL); as many again at peaks."
    )
    admin_token_max_ttl_seconds: int = Field(
        8 * 3600, ge=60, description="Longest lifetime the CLI may give an administrator token."
    )
    key_retirement_seconds: int = Field(
        86400,
        ge=60,
        description="How long a retired signing key stays published; longer than any token.",
    )
    login_max_failures: int = Field(
        5, ge=1, description="Failed sign-ins per account (known or not) before a lockout."
    )
    login_lockout_seconds: int = Field(
        900, ge=1, description="Throttling window and lockout length (it expires by itself)."
    )
    login_address_max_failures: int = Field(
        30, ge=1, description="Failed sign-ins per client address within one window."
    )
    access_token_ttl_seconds: int = Field(
        300, ge=30, le=3600, description="Lifetime of OAuth access tokens (RFC 9068 JWTs)."
    )
    id_token_ttl_seconds: int = Field(300, ge=30, le=3600, description="Lifetime of ID tokens.")
    refresh_token_ttl_seconds: int = Field(
        8 * 3600, ge=60, description="Lifetime of a refresh token (each use rotates it)."
    )
    session_ttl_seconds: int = Field(
        8 * 3600, ge=60, description="Lifetime of a single sign-on session."
    )
    authorization_code_ttl_seconds: int = Field(
        60, ge=10, le=600, description="Lifetime of an authorization code (single use)."
    )
    ca_organization: str = Field(
        "Onecard City Trust Service",
        min_length=1,
        max_length=40,
        description="Organisation named in the CA certificates (and in service TLS subjects).",
    )
    worker_in_process: bool = Field(
        True, description="Run the background job loop inside each web worker."
    )
    password_hash_time_cost: int = Field(2, ge=1, description="argon2id iterations (OWASP: 2).")
    password_hash_memory_kib: int = Field(
        19456, ge=8, description="argon2id memory in KiB (OWASP: 19 MiB)."
    )

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def issuer(self) -> str:
        """The OpenID Connect issuer: the public URL, or the embedded default's address
        (``onecard serve`` on its default port) when none is configured."""
        return self.public_url or "http://127.0.0.1:8000"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'onecard.db'}"

    @property
    def effective_master_key_file(self) -> Path:
        return self.master_key_file or self.data_dir / "master.key"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def check_production(self) -> None:
        """Raise :class:`ConfigurationError` listing every insecure setting, if in production."""
        if self.env != "production":
            return
        problems: list[str] = []
        url = urlsplit(self.public_url)
        if not self.public_url:
            problems.append("ONECARD_PUBLIC_URL must be set to the service's https:// address")
        elif url.scheme != "https":
            problems.append("ONECARD_PUBLIC_URL must use https:// (it is the OIDC issuer)")
        if self.master_key is None:
            problems.extend(self._master_key_file_problems())
        if self.password_hash_memory_kib < 19456 or self.password_hash_time_cost < 2:
            problems.append("argon2id parameters are below the OWASP minimum (19 MiB, t=2)")
        if problems:
            raise ConfigurationError(
                "refusing to start in production: " + "; ".join(problems),
                code="insecure_configuration",
            )

    def _master_key_file_problems(self) -> list[str]:
        if self.master_key_file is None:
            return ["set ONECARD_MASTER_KEY or ONECARD_MASTER_KEY_FILE (outside the working dir)"]
        path = self.master_key_file.resolve()
        problems = []
        if path.is_relative_to(Path.cwd().resolve()):
            problems.append("the master key file must not live under the working directory")
        if not path.exists():
            problems.append(f"the master key file {path} does not exist")
        elif stat.S_IMODE(path.stat().st_mode) & 0o077:
            problems.append(f"the master key file {path} must not be readable by group or others")
        return problems


@functools.cache
def get_settings() -> Settings:
    """The process's settings, read once from the environment."""
    return Settings()
