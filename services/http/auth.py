"""Bearer-token authentication and the role checks every endpoint makes."""

from __future__ import annotations

from litestar import Request

from services.http.problems import forbidden, not_found, unauthorized
from services.tokens import InvalidToken, Principal, verify


def authenticate(request: Request, key: str) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized()
    try:
        return verify(key, token.strip())
    except InvalidToken as e:
        raise unauthorized("the bearer token is not valid") from e


def require_role(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise forbidden(f"this action needs one of the roles: {', '.join(roles)}")


def require_program(principal: Principal, program_id: str, what: str = "resource") -> None:
    """A resource in another program is 404, never 403: its existence is not disclosed."""
    if not principal.sees_program(program_id):
        raise not_found(what)
