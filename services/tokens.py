"""Bearer tokens: HS256 JWTs naming a role, its scope, and the actor recorded on every fact."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

import jwt

ROLES = ("admin", "partner", "authority", "ops", "integration")
ISSUER = "dealreg"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by us."""


@dataclass(frozen=True)
class Principal:
    role: str
    subject: str
    program_id: str | None = None
    partner_id: str | None = None
    level: int | None = None

    def sees_program(self, program_id: str) -> bool:
        """Admins without a program see every program; everyone else only their own."""
        return self.program_id == program_id or (self.role == "admin" and self.program_id is None)


def parse_ttl(text: str) -> dt.timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 15m, 1h, 7d")
    n, unit = float(m.group(1)), m.group(2)
    return dt.timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


def mint(
    key: str,
    *,
    role: str,
    now: dt.datetime,
    program_id: str | None = None,
    partner_id: str | None = None,
    level: int | None = None,
    subject: str | None = None,
    ttl: dt.timedelta = dt.timedelta(hours=1),
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role in ("partner", "authority", "ops", "integration") and not program_id:
        raise ValueError(f"a {role} token needs --program")
    if role == "partner" and not partner_id:
        raise ValueError("a partner token needs --partner")
    if role == "authority" and not level:
        raise ValueError("an authority token needs --level")
    default_subject = ":".join(str(x) for x in (role, program_id, partner_id or level) if x)
    claims = {
        "iss": ISSUER,
        "sub": subject or default_subject,
        "role": role,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    for name, value in (("program", program_id), ("partner", partner_id), ("level", level)):
        if value is not None:
            claims[name] = value
    return jwt.encode(claims, key, algorithm="HS256")


_VERIFIED: OrderedDict[tuple[str, str], tuple[Principal, float]] = OrderedDict()
_VERIFIED_MAX = 4096


def verify(key: str, token: str) -> Principal:
    """The principal a token names; raises InvalidToken. A portal sends the same token with every
    request, so a verified one is remembered (until it expires) instead of checked again."""
    cached = _VERIFIED.get((key, token))
    if cached is not None:
        principal, expires = cached
        if time.time() < expires:
            return principal
        del _VERIFIED[(key, token)]
    principal, expires = _verify(key, token)
    _VERIFIED[(key, token)] = (principal, expires)
    if len(_VERIFIED) > _VERIFIED_MAX:
        _VERIFIED.popitem(last=False)
    return principal


def _verify(key: str, token: str) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(token, key, algorithms=["HS256"], issuer=ISSUER, options={"require": ["exp", "sub"]})
    except jwt.PyJWTError as e:
        raise InvalidToken(str(e)) from e
    role = claims.get("role")
    level = claims.get("level")
    if role not in ROLES or (level is not None and not isinstance(level, int)):
        raise InvalidToken("unknown role or scope")
    principal = Principal(
        role=role,
        subject=str(claims["sub"]),
        program_id=claims.get("program"),
        partner_id=claims.get("partner"),
        level=level,
    )
    return principal, float(claims["exp"])
