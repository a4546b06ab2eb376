"""Identifiers in time order: registrations', deals' and events' ids (UUID version 7, RFC 9562).

These ids are keys of b-tree indexes that grow with every submission: streams, registrations,
claims, events, the consumers' processed marks. Random ids (version 4) land anywhere in such an
index, so once it outgrows the CPU's caches each insert reads and dirties a cold page of its own
(in the benchmark's pipeline phases, every append statement took 50-100% longer on the tables a
few hundred thousand registrations leave than on small ones). Ids in time order land at the right
edge, where the pages are hot. They keep 74 random bits; the time they carry is the moment the
registration or event was made, which its partner sees anyway.

An id derived from another (a decision's events from the fact that caused them, so that a replay
makes the same ones) keeps its cause's time: `derived_id`.
"""

from __future__ import annotations

import hashlib
import uuid

from uuid_utils.compat import uuid7

_TIME_BITS = 48
_LOW = (1 << (128 - _TIME_BITS)) - 1
_VERSION = 0xF << 76
_VARIANT = 0x3 << 62
_BITS = ((1 << 128) - 1) & ~_VERSION & ~_VARIANT  # all but the version and variant
_RFC_VARIANT = 0x2 << 62


def new_id() -> uuid.UUID:
    """A new id, after the ids this process made before it."""
    return uuid7()


def derived_id(namespace: uuid.UUID, cause_id: str, name: str) -> uuid.UUID:
    """The id named `name` in `namespace` (as `uuid.uuid5`), made from a cause whose id is `cause_id`:
    the same for the same arguments, always. A cause id in time order (version 7, or 8 made here)
    lends it its 48 bits of time, so the id sorts by its cause's time (version 8); any other cause
    gives the plain `uuid5`."""
    # `uuid.uuid5`'s hash, its version and variant set once on the final value (half the time of
    # `uuid5`, whose UUID would be made only to be taken apart)
    hashed = int.from_bytes(hashlib.sha1(namespace.bytes + name.encode()).digest()[:16], "big") & _BITS
    try:
        cause = uuid.UUID(cause_id)
    except ValueError:
        cause = None
    if cause is None or cause.version not in (7, 8):
        return uuid.UUID(int=hashed | (0x5 << 76) | _RFC_VARIANT)
    return uuid.UUID(int=(cause.int & ~_LOW & _BITS) | (hashed & _LOW) | (0x8 << 76) | _RFC_VARIANT)
