"""How the operators' commands show events: the `dealreg trace` tree and the `dealreg tail` line."""

from __future__ import annotations

from typing import Any

import msgspec
from rich.markup import escape
from rich.tree import Tree

from services.ops_timeline import Entry, Timeline

# the data fields worth a glance, in the order they read best; the rest is in --json
KEY_FIELDS = (
    "status",
    "status_reason",
    "reason",
    "rule",
    "policy_version",
    "outcome",
    "winner",
    "level",
    "authority_role",
    "conflict_id",
    "protected_until",
    "valid_until",
    "due_at",
    "attribution_percent",
    "partner_id",
    "owner",
    "decided_by",
)


def key_data(data: dict[str, Any]) -> list[tuple[str, str]]:
    out = [(k, str(data[k])) for k in KEY_FIELDS if data.get(k) not in (None, "", [])]
    customer = data.get("customer")
    if isinstance(customer, dict) and customer.get("name"):
        out.append(("customer", str(customer["name"])))
    return out


def _entry_label(e: Entry, subject_id: str) -> str:
    m, ev = e.event.metadata, e.event
    time = ev.occurred_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    kind, _, about = ev.stream_id.partition("-")
    # what the header or the event type already says is left out: the tree is read, not parsed
    skip = {"status"} if ev.event_type == f"registration.{e.data.get('status')}" else set()
    if kind == "conflict":
        skip.add("conflict_id")
    fields = " ".join(f"{k}=[bold]{escape(v)}[/]" for k, v in key_data(e.data) if k not in skip)
    stream = kind if about == subject_id else ev.stream_id
    return (
        f"[dim]{time}[/] [cyan]{escape(ev.event_type)}[/] by [magenta]{escape(m.actor or '-')}[/] {fields}"
        f" [dim]({escape(stream)} v{ev.stream_version})[/]"
    )


def _rule_trail(node: Tree, data: dict[str, Any]) -> None:
    trail = data.get("rule_trail") or []
    if not trail:
        return
    branch = node.add("[dim]rule trail[/]")
    for step in trail:
        if isinstance(step, dict):
            extra = " ".join(f"{k}={step[k]}" for k in ("detail", "winner") if step.get(k))
            branch.add(escape(f"{step.get('rule')}: {step.get('verdict')} {extra}".rstrip()))


def timeline_tree(t: Timeline) -> Tree:
    """Events grouped by the trace that caused them (each trace in the order it began), oldest first."""
    root = Tree(
        f"[bold]{t.kind.replace('_', ' ')} {escape(t.id)}[/] program [bold]{escape(t.program_id or '-')}[/]"
        f" [dim]· {len(t.entries)} events · {len(t.trace_ids)} traces[/]\n[dim]streams: {escape(', '.join(t.streams))}[/]"
    )
    branches: dict[str | None, Tree] = {}
    for e in t.entries:
        trace_id = e.trace_id
        branch = branches.get(trace_id)
        if branch is None:
            label = f"trace [yellow]{trace_id}[/]" if trace_id else "[dim]no trace recorded[/]"
            branch = branches[trace_id] = root.add(label)
        _rule_trail(branch.add(_entry_label(e, t.id)), e.data)
    return root


def event_line(payload: bytes) -> str:
    """One CloudEvent as one line: time, type, subject, key data (or why it could not be read)."""
    from contracts.envelope import decode_envelope, event_name_of

    try:
        ce = decode_envelope(payload)
        data = msgspec.json.decode(bytes(ce.data))
        name = event_name_of(ce.type)
    except Exception as exc:
        return f"(unreadable event: {type(exc).__name__}: {exc})"
    time = ce.time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    fields = " ".join(f"{k}={v}" for k, v in key_data(data if isinstance(data, dict) else {}))
    trace = ce.traceparent.split("-")[1] if ce.traceparent and ce.traceparent.count("-") == 3 else "-"
    return f"{time}  {name:<32} {ce.subject}  {fields}  trace={trace}".rstrip()
