"""One typed settings object per process, read from the environment once and passed down."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    nats_url: str | None = None
    signing_key: str | None = None
    home: Path = Path(".dealreg")
    host: str = "127.0.0.1"
    registration_port: int = 8080
    conflict_port: int = 8081
    db_pool_size: int = 20
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return cls(
            database_url=env.get("DEALREG_DATABASE_URL") or None,
            nats_url=env.get("DEALREG_NATS_URL") or None,
            signing_key=env.get("DEALREG_SIGNING_KEY") or None,
            home=Path(env.get("DEALREG_HOME", ".dealreg")),
            host=env.get("DEALREG_HOST", "127.0.0.1"),
            registration_port=int(env.get("DEALREG_REGISTRATION_PORT", "8080")),
            conflict_port=int(env.get("DEALREG_CONFLICT_PORT", "8081")),
            db_pool_size=int(env.get("DEALREG_DB_POOL_SIZE", "20")),
            log_level=env.get("DEALREG_LOG_LEVEL", "info"),
        )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)

    def require(self) -> Settings:
        """The settings a service needs to run; raises a clear error for what is missing."""
        missing = [
            name
            for name, value in (
                ("DEALREG_DATABASE_URL", self.database_url),
                ("DEALREG_NATS_URL", self.nats_url),
                ("DEALREG_SIGNING_KEY", self.signing_key),
            )
            if not value
        ]
        if missing:
            raise SystemExit(f"dealreg: set {', '.join(missing)} (or run `dealreg up`)")
        return self


def local_signing_key(home: Path) -> str:
    """The signing key `dealreg up` keeps under $DEALREG_HOME, created on first use."""
    path = home / "signing.key"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
