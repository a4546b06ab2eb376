"""The registration domain's errors; the API maps each to one problem type."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the registration domain raises on purpose."""


class TransitionForbidden(DomainError):
    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"cannot {action} a registration that is {status}")
        self.action = action
        self.status = status


class InvalidTerms(DomainError):
    """Values that are well-typed but wrong (an unknown country, a bad domain...)."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = errors


class NotEnrolled(DomainError):
    def __init__(self, program_id: str, partner_id: str) -> None:
        super().__init__(f"partner {partner_id!r} is not enrolled in program {program_id!r}")
        self.program_id = program_id
        self.partner_id = partner_id


class DuplicateExternalRef(DomainError):
    def __init__(self, external_ref: str, existing_id: str) -> None:
        super().__init__(f"external_ref {external_ref!r} is already used by live registration {existing_id}")
        self.external_ref = external_ref
        self.existing_id = existing_id
