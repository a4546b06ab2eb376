"""The conflict service's domain errors, mapped to problem details at the API edge."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the conflict domain raises on purpose."""


class PolicyInvalid(DomainError):
    """A policy document that cannot be published; `errors` holds (field, message) pairs.

    `field` is a path into the document such as `review.sla_hours` or
    `escalation[1].level`; "" means the document as a whole.
    """

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = list(errors)
        summary = "; ".join(f"{field or '<document>'}: {message}" for field, message in self.errors)
        super().__init__(f"invalid policy: {summary}")


class NotJson(PolicyInvalid):
    """The policy body is not JSON at all (400 at the API, unlike a 422 for bad content)."""
