"""Helpers shared by the conflict API's controllers."""

from __future__ import annotations

from contracts.envelope import ID_PATTERN
from services.http.problems import validation_problem


def check_program_id(program_id: str) -> None:
    if not ID_PATTERN.match(program_id):
        raise validation_problem([("program_id", "must match [a-z0-9][a-z0-9_-]{0,63}")])


def iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None
