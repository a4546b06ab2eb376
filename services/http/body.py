"""Request bodies decoded by msgspec, with errors a client can act on.

Bodies are decoded here rather than by the framework so that every failure is classified the same
way: not JSON (or not UTF-8) is 400, any field problem is 422 with the field's path, and nothing a
client sends can raise past this point.
"""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from litestar import Request

from services.http.problems import Problem, validation_problem

T = TypeVar("T")
MAX_BODY_BYTES = 1024 * 1024
_PATH = re.compile(r" - at `\$(.*)`$")
_json = msgspec.json.Decoder()


def field_error(err: msgspec.ValidationError) -> tuple[str, str]:
    """('customer.country', 'Expected `str`...') from msgspec's '... - at `$.customer.country`'."""
    text = str(err)
    m = _PATH.search(text)
    if not m:
        return "", text
    path = m.group(1).lstrip(".")
    return path, text[: m.start()]


def decode_json(raw: bytes, type_: type[T]) -> T:
    if not raw.strip():
        raise Problem(400, "malformed-body", "The request body is not JSON", "the request body is empty")
    try:
        generic = _json.decode(raw)
    except msgspec.DecodeError as e:
        raise Problem(400, "malformed-body", "The request body is not JSON", str(e)) from e
    try:
        return msgspec.convert(generic, type_, strict=True)
    except msgspec.ValidationError as e:
        raise validation_problem([field_error(e)]) from e


async def read_body(request: Request, type_: type[T]) -> T:
    """Read, bound and decode a JSON body into `type_` (Struct with constraints)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "payload-too-large", "The request body is too large", f"at most {MAX_BODY_BYTES} bytes")
    return decode_json(raw, type_)
