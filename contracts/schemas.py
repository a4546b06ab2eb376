"""JSON Schemas for every event type, written to `contracts/schemas/` by `dealreg schemas`.

The files are checked in so that consumers in other languages can generate their types; a test
fails when they are stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from contracts.envelope import EVENTS_BY_SERVICE, CloudEvent, cloudevent_type

SCHEMA_DIR = Path(__file__).parent / "schemas"


def schema_for(service: str, event_name: str, cls: type[msgspec.Struct]) -> dict[str, Any]:
    """The CloudEvent envelope schema with `data` replaced by the event's own schema."""
    (data_schema,), components = msgspec.json.schema_components([cls], ref_template="#/$defs/{name}")
    _, envelope_components = msgspec.json.schema_components([CloudEvent], ref_template="#/$defs/{name}")
    envelope_def = dict(envelope_components["CloudEvent"])
    del envelope_def["title"]  # the schema's title is the event type, set below
    properties = dict(envelope_def["properties"])
    properties["specversion"] = {"const": "1.0"}
    properties["type"] = {"const": cloudevent_type(event_name)}
    properties["source"] = {"type": "string", "pattern": f"^/dealreg/{service}/[a-z0-9][a-z0-9_-]{{0,63}}$"}
    properties["data"] = data_schema
    envelope_def["properties"] = properties
    # always on the wire (see CloudEvent), though they have defaults
    envelope_def["required"] = ["specversion", *envelope_def["required"], "datacontenttype"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://dealreg.io/schemas/{service}/{event_name}.v1.json",
        "title": cloudevent_type(event_name),
        **envelope_def,
        "$defs": components,
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    """File name -> schema for every event type of both services."""
    out = {}
    for service, events in EVENTS_BY_SERVICE.items():
        for name, cls in events.items():
            out[f"{service}/{name}.v1.json"] = schema_for(service, name, cls)
    return out


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    written = []
    for rel, schema in all_schemas().items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema))
        written.append(path)
    return written
