"""The registration domain's errors as problem details (the one mapping for this API)."""

from __future__ import annotations

from services.eventlog.events import ConcurrencyError
from services.http.problems import Problem, validation_problem
from services.registration.domain.errors import (
    DomainError,
    DuplicateExternalRef,
    InvalidTerms,
    NotEnrolled,
    TransitionForbidden,
)


def to_problem(err: DomainError | ConcurrencyError) -> Problem:
    match err:
        case TransitionForbidden():
            return Problem(
                409,
                "transition-forbidden",
                "The registration's status does not allow this",
                str(err),
                registration_status=err.status,
            )
        case InvalidTerms():
            return validation_problem(err.errors)
        case NotEnrolled():
            return Problem(403, "partner-not-enrolled", "The partner is not enrolled in the program", str(err))
        case DuplicateExternalRef():
            return Problem(
                409,
                "duplicate-external-ref",
                "external_ref is already in use",
                str(err),
                existing_registration_id=err.existing_id,
            )
        case ConcurrencyError():
            return Problem(412, "stale-version", "The registration changed meanwhile", "reload it and try again")
    return Problem(400, "domain-error", "The request cannot be applied", str(err))
