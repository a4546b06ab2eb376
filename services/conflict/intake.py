"""The conflict service's consumer of registration facts: each one is decided under the program lock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import takewhile

import asyncpg
import msgspec

from contracts.envelope import CloudEvent, encode
from contracts.registration_events import (
    REGISTRATION_EVENTS,
    ExtensionRequested,
    OutcomeReported,
    RegistrationAmended,
    RegistrationAppealed,
    RegistrationSubmitted,
    RegistrationWithdrawn,
)
from services.conflict import claims_repo, name_index, policy_store, tie_groups
from services.conflict.deciding import amended_claim, decide, reevaluate_waitlist, submitted_claim
from services.conflict.domain import ownership
from services.conflict.domain.effects import status_event
from services.conflict.domain.identity import country_key
from services.conflict.domain.policy import tie_window
from services.conflict.recorder import lock_program, mark_and_lock_program, meta_of, record
from services.conflict.submission_runs import decide_run
from services.eventlog.consumer import Delivered

CONSUMER = "conflict-intake"


class ClaimNotYetKnown(Exception):
    """A fact about a registration whose submission has not been applied yet: retried later."""


_DECIDED_ON = (
    RegistrationSubmitted,
    RegistrationAmended,
    RegistrationWithdrawn,
    OutcomeReported,
    ExtensionRequested,
    RegistrationAppealed,
)
# only the facts decided on are delivered: not the directory's, nor the statuses the registration
# service records back (one for every decision), which would double the messages to apply
FILTER_SUBJECTS = [
    f"dealreg.registration.*.{name}" for name, kind in REGISTRATION_EVENTS.items() if kind in _DECIDED_ON
]


async def mark_batch(
    conn: asyncpg.Connection, consumer: str, event_ids: list[str], program_id: str, data: Iterable[msgspec.Struct] = ()
) -> set[str]:
    """A batch of one program's facts marked processed, with the program's lock taken (which every
    fact decided on takes first), the names that arrived in its submissions' countries read (which
    each of them searches) and the candidates of the submissions it starts with asked for
    (`_first_run`), in one round trip (`mark_and_lock_program`)."""
    data = list(data)
    countries = {country_key(e.customer.country) for e in data if isinstance(e, RegistrationSubmitted)}
    return await mark_and_lock_program(conn, consumer, event_ids, program_id, countries, _first_run(program_id, data))


def _first_run(program_id: str, data: list[msgspec.Struct]) -> Callable[[], name_index.Prefetch | None] | None:
    """The candidate queries of the submissions the batch starts with (the run `handle_batch` decides
    first, before the transaction writes anything), as the policy this process last saw in force
    makes them: asked with the lock, they spare the run its own round trip for them
    (`rival_candidates_many`, which takes them only if the policy in force makes the same ones)."""
    run = list(takewhile(lambda e: isinstance(e, RegistrationSubmitted), data))
    seen = policy_store.last_seen(program_id)
    if len(run) < 2 or seen is None or tie_window(seen[0]):
        return None  # one fact is decided alone; a tie window's are pooled one by one
    policy = seen[0]
    claims = [submitted_claim(e, policy) for e in run if e.program_id == program_id]
    probes = claims_repo.rival_probes(claims, policy)
    threshold = policy.match.name_similarity
    return lambda: name_index.prefetch(program_id, probes, threshold, claims_repo.COLUMNS)


async def handle(conn: asyncpg.Connection, ce: CloudEvent, e: msgspec.Struct) -> None:
    """Apply one registration fact (inside the consumer's transaction)."""
    if not isinstance(e, _DECIDED_ON):
        return  # directory facts and recorded statuses need nothing here (a durable made before
        # FILTER_SUBJECTS still delivers them)
    await lock_program(conn, e.program_id)
    match e:
        case RegistrationSubmitted():
            await _submitted(conn, ce, e)
        case RegistrationAmended():
            await _amended(conn, ce, e)
        case RegistrationWithdrawn():
            await _let_go(conn, ce, e.registration_id, "withdrawn", "withdrawn", e.withdrawn_at)
        case OutcomeReported():
            await _let_go(conn, ce, e.registration_id, e.result, e.result, e.reported_at)
        case ExtensionRequested():
            await _extension(conn, ce, e)
        case RegistrationAppealed():
            from services.conflict import appeals

            await appeals.appealed(conn, ce, e)


async def handle_batch(conn: asyncpg.Connection, delivered: list[Delivered]) -> None:
    """Apply a batch of one program's facts in order: each run of submissions decided together
    (`submission_runs`), every other fact as `handle` does."""
    run: list[Delivered] = []
    first = True  # the run the batch starts with, decided before anything is written
    for d in [*delivered, None]:
        if d is not None and isinstance(d.data, RegistrationSubmitted):
            run.append(d)
            continue
        if run:
            await decide_run(conn, run, handle, first=first)
        run, first = [], False
        if d is not None:
            with d.handling():
                await handle(conn, d.ce, d.data)


async def _known(conn: asyncpg.Connection, registration_id: str):
    claim = await claims_repo.load(conn, registration_id)
    if claim is None:
        raise ClaimNotYetKnown(registration_id)
    return claim


async def _submitted(conn: asyncpg.Connection, ce: CloudEvent, e: RegistrationSubmitted) -> None:
    policy, version = await policy_store.in_force(conn, e.program_id)
    claim = await claims_repo.insert(conn, submitted_claim(e, policy), encode(e.customer).decode())
    if tie_window(policy):
        await tie_groups.join_or_open(conn, claim, policy, e.submitted_at)
        return
    await decide(conn, (claim,), policy, version, e.submitted_at, ce.id, meta_of(ce))


async def _amended(conn: asyncpg.Connection, ce: CloudEvent, e: RegistrationAmended) -> None:
    claim = await _known(conn, e.registration_id)
    policy, version = await policy_store.in_force(conn, e.program_id)
    await claims_repo.update_terms(conn, amended_claim(claim, e, policy))
    if claim.status == "info_requested" and e.answers_info_request:
        emits = [status_event(claim, "pending_review", None, e.amended_at, rule="review", version=version)]
        await record(conn, emits, cause_id=ce.id, now=e.amended_at, meta=meta_of(ce), program_id=e.program_id)
    elif e.rematch and claim.status in ("pending", "pending_review"):
        fresh = await claims_repo.load(conn, claim.claim_id)
        await decide(conn, (fresh,), policy, version, e.amended_at, ce.id, meta_of(ce))


async def _let_go(
    conn: asyncpg.Connection, ce: CloudEvent, registration_id: str, status: str, reason: str, now
) -> None:
    """Withdrawn, won or lost: the registration's own final fact, and what follows for the others."""
    claim = await _known(conn, registration_id)
    if claim.status in ("withdrawn", "won", "lost"):
        return
    policy, version = await policy_store.in_force(conn, claim.program_id)
    emits = ownership.release(claim, reason, now)
    waiting = await claims_repo.waitlisted_behind(conn, claim, policy) if status == "won" else []
    emits += ownership.close_opportunity(waiting, version, now)
    await conn.execute("UPDATE conflict.claims SET status = $2 WHERE claim_id = $1", claim.claim_id, status)
    await record(conn, emits, cause_id=ce.id, now=now, meta=meta_of(ce), program_id=claim.program_id)
    if status != "won" and claim.status == "approved":
        await reevaluate_waitlist(conn, claim, policy, version, now, ce.id, meta_of(ce))


async def _extension(conn: asyncpg.Connection, ce: CloudEvent, e: ExtensionRequested) -> None:
    claim = await _known(conn, e.registration_id)
    policy, version = await policy_store.in_force(conn, claim.program_id)
    emits = ownership.extend(claim, policy, version, e.requested_at)
    await record(conn, emits, cause_id=ce.id, now=e.requested_at, meta=meta_of(ce), program_id=claim.program_id)
