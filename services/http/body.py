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
# a missing or unknown field is reported at its parent: the client needs the field's own name
_NAMED_FIELD = re.compile(r"^Object (?:missing required|contains unknown) field `(.*)`$")
_json = msgspec.json.Decoder()


def field_error(err: msgspec.ValidationError) -> tuple[str, str]:
    """('customer.country', 'Expected `str`...') from msgspec's '... - at `$.customer.country`'."""
    text = str(err)
    m = _PATH.search(text)
    path, message = (m.group(1).lstrip("."), text[: m.start()]) if m else ("", text)
    named = _NAMED_FIELD.match(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return path, message


def nul_error(value: object) -> tuple[str, str] | None:
    """The first string (or key) holding U+0000, which PostgreSQL cannot store, as a field error.

    Iterative, because a body may nest as deep as the JSON decoder allows."""
    stack: list[tuple[str, object]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path, "must not contain the NUL character (U+0000)"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else key
                if "\x00" in key:
                    return path, "field names must not contain the NUL character (U+0000)"
                stack.append((child_path, child))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", child) for i, child in enumerate(item))
    return None


def decode_json(raw: bytes, type_: type[T]) -> T:
    if not raw.strip():
        raise Problem(400, "malformed-body", "The request body is not JSON", "the request body is empty")
    try:
        generic = _json.decode(raw)
    except msgspec.DecodeError as e:
        raise Problem(400, "malformed-body", "The request body is not JSON", str(e)) from e
    except UnicodeDecodeError as e:
        raise Problem(400, "malformed-body", "The request body is not JSON", "the body is not valid UTF-8") from e
    except RecursionError as e:
        raise Problem(400, "malformed-body", "The request body is not JSON", "the body nests too deeply") from e
    try:
        value = msgspec.convert(generic, type_, strict=True)
    except msgspec.ValidationError as e:
        raise validation_problem([field_error(e)]) from e
    except RecursionError as e:
        raise Problem(400, "malformed-body", "The request body is not JSON", "the body nests too deeply") from e
    if (nul := nul_error(generic)) is not None:
        raise validation_problem([nul])
    return value


async def read_body(request: Request, type_: type[T]) -> T:
    """Read, bound and decode a JSON body into `type_` (Struct with constraints)."""
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(413, "payload-too-large", "The request body is too large", f"at most {MAX_BODY_BYTES} bytes")
    return decode_json(raw, type_)
