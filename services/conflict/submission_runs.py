"""A run of one program's submissions, decided as one by one but in a few round trips.

One by one, each submission costs four round trips under the program's lock: insert its claim,
fetch its candidates, append its decision, update the projections. A run of n submissions here
costs about four in all: every candidate query is sent in one pipeline, the decisions are taken in
memory in log order, the projection updates of earlier claims are sent in one pipeline, and the
appends of all the run's decisions, with its claims (each written once, as decided), in one
statement.

The decisions are the ones `intake.handle` would take for the same facts in the same order, so
they do not depend on how the facts were fetched in batches:

- The candidates fetched are the stored claims. The run's own claims are matched in memory: one by
  one, a claim's candidates include the run's claims before it, with the status their decisions
  gave them. The pure `collision` rules only confirm claims that the candidate query would find
  (equal keys, or a similar name in the same country, and a shared product when required), so
  confirming all of them finds the same rivals. They come after the stored ones, in log order, as
  their sequence numbers will.
- A decision changes claims (the one decided and its rivals); the changes are applied to the
  claims held in memory, and a later decision reads those, not the rows fetched before. The query
  filters on status: a claim it left out because of its status could only be missed if a decision
  in the run gave it a rival's status; a decision only changes claims it read (all fetched as
  candidates, so known here), and one that would change another stops the run (NotBatchable).
- Closed deals (incumbency) are read as one by one: no submission's decision closes a deal.

Policies with a tie window pool submissions in the database, so their runs go one by one. A run
stopped for any reason (a submitted claim found stored already among them) is rolled back and the
consumer applies its facts one at a time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import asyncpg

from contracts.envelope import CloudEvent, encode
from contracts.registration_events import RegistrationSubmitted
from services.conflict import claims_repo, policy_store, projector, timers
from services.conflict.deciding import submitted_claim
from services.conflict.domain.claims import Claim, Situation
from services.conflict.domain.effects import effects_of
from services.conflict.domain.policy import tie_window
from services.conflict.domain.rules import judge
from services.conflict.observe import decided_on_commit, decision_span
from services.conflict.projection_changes import (
    AppealCounted,
    ClaimsJoined,
    ClaimStatusSet,
    DecisionLevelRecorded,
    ProtectionExtended,
    ProtectionGranted,
    StatusDecided,
    changes_of,
)
from services.conflict.projector_fused import fused
from services.conflict.recorder import STORE, lock_program, meta_of, prepared_appends
from services.conflict.timer_changes import ExpiryTimersSet, ReviewTimerSet, TimersCancelled, TimerSet
from services.eventlog.consumer import Delivered


class NotBatchable(Exception):
    """A decision in the run reaches beyond what the run read: decide its facts one by one."""


OneByOne = Callable[[asyncpg.Connection, CloudEvent, Any], Awaitable[None]]


async def decide_run(
    conn: asyncpg.Connection, run: list[Delivered], one_by_one: OneByOne, *, first: bool = False
) -> None:
    """Decide `run`, submissions to one program in log order (inside the consumer's transaction).
    `first`: the transaction has written nothing yet (so the candidates asked for with the program's
    lock, `intake.mark_batch`, are still those)."""
    facts: list[RegistrationSubmitted] = [d.data for d in run]
    program_id = facts[0].program_id
    await lock_program(conn, program_id)
    policy, version = await policy_store.in_force(conn, program_id)
    ids = {e.registration_id for e in facts}
    if tie_window(policy) or len(ids) < len(facts) or any(e.program_id != program_id for e in facts):
        for d in run:
            with d.handling():
                await one_by_one(conn, d.ce, d.data)
        return
    # placeholders after every stored claim, in log order (only their order is read while deciding;
    # the rows get their own sequence numbers, in the same order, when they are written)
    claims = [replace(submitted_claim(e, policy), seq=_UNSTORED + i) for i, e in enumerate(facts)]
    found = await claims_repo.rival_candidates_many(conn, claims, policy, prefetched=first)
    known: dict[str, Claim] = {c.claim_id: c for candidates in found for c in candidates}
    known.update((c.claim_id, c) for c in claims)
    incumbency = "incumbent_on_renewal" in policy.rules
    earlier: list[str] = []
    writes = _Writes(ids)
    for d, e, claim, candidates in zip(run, facts, claims, found, strict=True):
        with d.handling():
            # the stored candidates (in seq order), then the run's claims before this one
            current = [known[c.claim_id] for c in candidates] + [known[i] for i in earlier]
            earlier.append(claim.claim_id)
            live = [c for c in current if c.status in claims_repo.RIVAL_STATUSES]
            rivals = claims_repo.confirmed_rivals(claim, live, policy, {claim.claim_id})
            history = ()
            # closed deals matter only to incumbency, which only a renewal invokes, and only among
            # rivals (a lone claim is approved, or reviewed, before any rule runs)
            if incumbency and rivals and any(c.deal_type == "renewal" for c in (claim, *(r.claim for r in rivals))):
                history = tuple(await claims_repo.history(conn, claim, policy))
            judgement = judge(Situation((claim,), tuple(rivals), history), policy, e.submitted_at)
            emits = effects_of(judgement, policy, version, e.submitted_at, d.ce.id)
            if not emits:
                continue
            with decision_span(program_id, d.ce.id, emits):
                writes.appends += prepared_appends(
                    emits, cause_id=d.ce.id, now=e.submitted_at, meta=meta_of(d.ce), program_id=program_id
                )
                changes = [change for x in emits for change in changes_of(x.name, x.event)]
                _apply_to(known, changes)
                await writes.project(conn, changes)
            decided_on_commit(conn, emits)
    await writes.flush(conn, [known[c.claim_id] for c in claims], [encode(e.customer).decode() for e in facts])


_UNSTORED = 2**62


class _Writes:
    """The run's appends and projection updates, sent when the run is decided.

    The run's own claims are written once, at the end, as the decisions left them in memory
    (`_apply_to`): their row changes are not sent, and neither is the cancelling of timers of theirs
    that were never set (a claim not stored yet has none but those set in the run). Each claim is
    then one insert of its final row, instead of an insert and an update of every index its status
    is in."""

    def __init__(self, unstored: set[str]) -> None:
        self.unstored = unstored
        self.timed: set[str] = set()  # the refs of timers set in the run
        self.appends: list = []
        self.statements: list[tuple[str, tuple]] = []
        self.claims: list[str] = []

    async def project(self, conn: asyncpg.Connection, changes: list) -> None:
        changes = self._to_send(changes)
        if not changes:
            return
        if (statement := fused(changes)) is not None:
            self.statements.append(statement)
            self.claims.append(_claim_of(changes[0]))  # a fused statement changes one claim's rows
            return
        await self._send_projections(conn)  # in order with those before it
        await projector.apply_changes(conn, changes)

    def _to_send(self, changes: list) -> list:
        out = []
        for c in changes:
            match c:
                case StatusDecided() | ProtectionGranted() | ClaimStatusSet() | ProtectionExtended() if (
                    c.claim_id in self.unstored
                ):
                    continue
                case ClaimsJoined():
                    stored = tuple(i for i in c.claim_ids if i not in self.unstored)
                    if stored:
                        out.append(replace(c, claim_ids=stored))
                    continue
                case TimersCancelled() if c.ref_id in self.unstored and c.ref_id not in self.timed:
                    continue
                case TimerSet() | ReviewTimerSet() | ExpiryTimersSet():
                    self.timed.add(_claim_of(c))
            out.append(c)
        return out

    async def flush(self, conn: asyncpg.Connection, claims: list[Claim], customers_json: list[str]) -> None:
        """Send what is left, then write the run's claims and its events: in one statement, the
        run's appends (`EventStore.append_together`) with its claims and the expiry timers left to
        set (`_WITH_EVENTS`)."""
        if not self.appends:  # no event to write the claims with (every decided submission emits)
            raise NotBatchable("the run records no events")
        expiries = timers.expiry_rows(self._last_expiries())
        await self._send_projections(conn)
        rows = claims_repo.decided_rows(claims, customers_json)
        try:
            await STORE.append_together(conn, self.appends, (_WITH_EVENTS, [rows, expiries]))
        except asyncpg.UniqueViolationError as e:
            if e.constraint_name != "claims_pkey":
                raise
            raise NotBatchable("a submitted claim is stored already") from e
        claims_repo.decided_written(claims)
        self.appends = []

    def _last_expiries(self) -> list[tuple]:
        """The expiry timers among the statements left to send, taken out of them to be written with
        the events, after the others: only when each statement left changes rows of its own claim,
        so that their order does not matter (as `_send_projections` sends them)."""
        if len(set(self.claims)) != len(self.claims):
            return []
        expiries = [args for sql, args in self.statements if sql is timers.EXPIRY]
        if expiries:
            kept = [(s, c) for s, c in zip(self.statements, self.claims, strict=True) if s[0] is not timers.EXPIRY]
            self.statements, self.claims = [s for s, _ in kept], [c for _, c in kept]
        return expiries

    async def _send_projections(self, conn: asyncpg.Connection) -> None:
        if not self.statements:
            return
        if len(set(self.claims)) == len(self.claims):
            # each changes rows of its own claim: in any order, so one pipeline per statement
            by_statement: dict[str, list[tuple]] = {}
            for sql, args in self.statements:
                by_statement.setdefault(sql, []).append(args)
            for sql, many in by_statement.items():
                await conn.executemany(sql, many)
        else:
            for sql, args in self.statements:
                await conn.execute(sql, *args)
        self.statements, self.claims = [], []


# what the statement of a run's appends writes besides its events (`EventStore.append_together`): the
# run's claims as decided (`claims_repo.decided_rows`, migration 0015) and the expiry timers of their
# ownership (`timers.expiry_rows`, migration 0016)
_WITH_EVENTS = "conflict.insert_claims({0}::jsonb) + conflict.insert_expiry_timers({1}::jsonb)"


def _claim_of(change) -> str:
    """The claim (or other ref) whose rows a change of a fused statement, or a timer's, is about."""
    match change:
        case ExpiryTimersSet():
            return change.ownership.claim_id
        case ReviewTimerSet():
            return change.registration_id
        case TimerSet():
            return change.ref_id
    return change.claim_id


def _apply_to(known: dict[str, Claim], changes: list) -> None:
    """What the projector's statements do to the claims, done to the claims held in memory."""
    for c in changes:
        match c:
            case StatusDecided():
                claim = _known(known, c.claim_id)
                known[c.claim_id] = replace(
                    claim,
                    status=c.status,
                    protected_until=c.protected_until,
                    attribution_percent=c.attribution_percent,
                    conflict_id=c.conflict_id if c.conflict_id is not None else claim.conflict_id,
                    decided_at=c.decided_at,
                    policy_version=c.policy_version,
                    decided_by=c.decided_by if c.decided_by is not None else claim.decided_by,
                )
            case ProtectionGranted():
                known[c.claim_id] = replace(
                    _known(known, c.claim_id), approved_at=c.approved_at, protected_until=c.protected_until
                )
            case ClaimStatusSet():
                known[c.claim_id] = replace(_known(known, c.claim_id), status=c.status)
            case ClaimsJoined():
                for claim_id in c.claim_ids:
                    known[claim_id] = replace(_known(known, claim_id), conflict_id=c.conflict_id)
            case ProtectionExtended():
                claim = _known(known, c.claim_id)
                known[c.claim_id] = replace(claim, protected_until=c.protected_until, extensions=claim.extensions + 1)
            case AppealCounted() | DecisionLevelRecorded():
                raise NotBatchable(type(c).__name__)  # never a submission's; not followed here


def _known(known: dict[str, Claim], claim_id: str) -> Claim:
    if (claim := known.get(claim_id)) is None:
        raise NotBatchable(f"a decision changes claim {claim_id}, which the run did not read")
    return claim
