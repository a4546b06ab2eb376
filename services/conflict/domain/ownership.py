"""Ownership timelines: extensions, warnings, expiry and release (pure)."""

from __future__ import annotations

import datetime as dt

from services.conflict.domain.claims import Claim
from services.conflict.domain.effects import Emit, ownership_event, status_event
from services.conflict.domain.policy import Policy, extension_days, extension_request_window


def extend(claim: Claim, policy: Policy, version: int, now: dt.datetime) -> list[Emit]:
    """Grant an extension requested at `now`, or refuse it with its reason.

    Granted up to `max_extensions`, when requested within `request_window_days` before the end of the
    window. A request made earlier than that is refused as `extension_too_early`, one made after the
    end as `extension_too_late`.
    """
    until = claim.protected_until
    if claim.status != "approved" or until is None or now >= until:
        return [status_event(claim, "extension_denied", "extension_too_late", now, rule="extension", version=version)]
    if claim.extensions >= policy.extension.max_extensions:
        return [
            status_event(claim, "extension_denied", "extension_limit_reached", now, rule="extension", version=version)
        ]
    if now < until - extension_request_window(policy):
        return [status_event(claim, "extension_denied", "extension_too_early", now, rule="extension", version=version)]
    new_until = until + extension_days(policy)
    return [
        ownership_event(
            "extended",
            claim,
            now,
            claim.approved_at or now,
            new_until,
            attribution=claim.attribution_percent,
            reason="extension_granted",
        ),
        status_event(
            claim,
            "approved",
            "extension_granted",
            now,
            rule="extension",
            version=version,
            protected_until=new_until,
            attribution=claim.attribution_percent,
        ),
    ]


def warn_expiring(claim: Claim, now: dt.datetime) -> list[Emit]:
    if not claim.holds_at(now):
        return []
    return [
        ownership_event(
            "expiring",
            claim,
            now,
            claim.approved_at or now,
            claim.protected_until,
            attribution=claim.attribution_percent,
            reason="expiry_warning",
        )
    ]


def expire(claim: Claim, version: int, now: dt.datetime) -> list[Emit]:
    """The window ended: the registration expires and lets go of the customer."""
    if claim.status != "approved" or claim.protected_until is None or claim.protected_until > now:
        return []
    return [
        status_event(claim, "expired", "protection_expired", now, rule="ownership", version=version),
        ownership_event(
            "released", claim, now, claim.approved_at or now, claim.protected_until, reason="protection_expired"
        ),
    ]


def release(claim: Claim, reason: str, now: dt.datetime) -> list[Emit]:
    """The holder withdrew, lost or won: its hold on the customer ends now."""
    if claim.status != "approved":
        return []
    return [
        ownership_event(
            "released", claim, now, claim.approved_at or now, now, reason=reason, attribution=claim.attribution_percent
        )
    ]


def close_opportunity(waiting: list[Claim], version: int, now: dt.datetime) -> list[Emit]:
    """The holder won: claims waiting behind it on the same products have nothing left to win."""
    return [status_event(c, "rejected", "opportunity_closed", now, rule="ownership", version=version) for c in waiting]
