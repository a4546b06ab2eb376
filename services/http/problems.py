"""RFC 9457 problem details: the one place where errors become HTTP responses."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException
from litestar.exceptions import MethodNotAllowedException as LitestarMethodNotAllowed

log = structlog.get_logger(__name__)
PROBLEM_TYPE_BASE = "https://dealreg.io/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error the client can act on, with a stable `type` slug."""

    def __init__(self, status: int, slug: str, title: str, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail or title
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        out = {"type": PROBLEM_TYPE_BASE + self.slug, "title": self.title, "status": self.status, "detail": self.detail}
        if instance:
            out["instance"] = instance
        out.update(self.extra)
        return out


def validation_problem(errors: list[tuple[str, str]]) -> Problem:
    return Problem(
        422,
        "validation-error",
        "The request body is not valid",
        "; ".join(f"{f or 'body'}: {m}" for f, m in errors),
        errors=[{"field": f, "message": m} for f, m in errors],
    )


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "not-found", "Not found", f"no such {what}")


def unauthorized(detail: str = "a valid bearer token is required") -> Problem:
    p = Problem(401, "unauthorized", "Unauthorized", detail)
    p.headers["WWW-Authenticate"] = 'Bearer realm="dealreg"'
    return p


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", "Forbidden", detail)


def _response(problem: Problem, request: Request) -> Response:
    return Response(
        content=msgspec.json.encode(problem.body(request.url.path)),
        status_code=problem.status,
        media_type=MEDIA_TYPE,
        headers=problem.headers,
    )


def problem_handler(request: Request, exc: Problem) -> Response:
    return _response(exc, request)


def http_exception_handler(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    slug = {
        400: "bad-request",
        404: "not-found",
        405: "method-not-allowed",
        413: "payload-too-large",
        415: "unsupported-media-type",
    }.get(status, "http-error")
    if status == 400 and getattr(exc, "extra", None):
        # query or path parameter validation from the framework
        errors = [(str(e.get("key", "")), str(e.get("message", ""))) for e in exc.extra if isinstance(e, dict)]
        return _response(
            Problem(
                400,
                "invalid-parameter",
                "A parameter is not valid",
                exc.detail,
                errors=[{"field": f, "message": m} for f, m in errors],
            ),
            request,
        )
    if isinstance(exc, NotFoundException):
        return _response(not_found(), request)
    if isinstance(exc, LitestarMethodNotAllowed):
        return _response(Problem(405, slug, "Method not allowed", exc.detail), request)
    return _response(Problem(status, slug, exc.detail or "HTTP error", exc.detail), request)


def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("http.unhandled_error", path=request.url.path, error=repr(exc))
    return _response(Problem(500, "internal-error", "Internal error", "the request could not be completed"), request)


EXCEPTION_HANDLERS = {
    Problem: problem_handler,
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
