"""Opaque cursors for paginated lists, and the 400 problem for a bad query parameter."""

from __future__ import annotations

import base64

from services.http.problems import Problem


def bad_parameter(field: str, message: str) -> Problem:
    return Problem(
        400,
        "invalid-parameter",
        "A parameter is not valid",
        f"{field}: {message}",
        errors=[{"field": field, "message": message}],
    )


def cursor_after(seq: int) -> str:
    """The cursor that continues a list after the row with this sequence number."""
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def seq_of(cursor: str) -> int:
    """The sequence number a cursor this API returned stands for; 400 for anything else."""
    try:
        seq = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
        if not 0 <= seq < 2**63:
            raise ValueError(seq)
        return seq
    except (ValueError, UnicodeError) as e:
        raise bad_parameter("cursor", "not a cursor this API returned") from e
