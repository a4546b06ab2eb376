"""The short `dealreg` commands: token, migrate, schemas."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
from pathlib import Path

from services.settings import Settings, local_signing_key
from services.stackfile import read_stack


class UsageError(Exception):
    """Bad arguments: reported as one line, exit code 2."""


class CommandError(Exception):
    """The command could not do its work: reported as one line, exit code 1."""


def token(args: argparse.Namespace) -> int:
    """Print a bearer token; its last line of stdout is the token itself."""
    from services.tokens import mint, parse_ttl

    settings = Settings.from_env()
    if args.level is not None and args.level < 1:
        raise UsageError("--level counts escalation levels from 1")
    try:
        ttl = parse_ttl(args.ttl)
        if ttl <= dt.timedelta(0):
            raise ValueError("--ttl must be positive")
        key = settings.signing_key or local_signing_key(settings.home)
        minted = mint(
            key,
            role=args.role,
            now=dt.datetime.now(dt.UTC),
            program_id=args.program,
            partner_id=args.partner,
            level=args.level,
            subject=args.subject,
            ttl=ttl,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(minted)
    return 0


def migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations to DEALREG_DATABASE_URL, or to the local stack's database."""
    from services.eventlog.migrate import migrate as apply_migrations

    settings = Settings.from_env()
    dsn = settings.database_url
    if not dsn:
        stack = read_stack(settings.home)
        if stack is None:
            raise CommandError(f"set DEALREG_DATABASE_URL, or start the local stack (`dealreg up`) in {settings.home}")
        dsn = stack["database_url"]
    try:
        applied = asyncio.run(apply_migrations(dsn))
    except (OSError, TimeoutError) as exc:
        raise CommandError(f"cannot reach the database: {exc}") from exc
    for name in applied:
        print(f"applied {name}")
    if not applied:
        print("migrations up to date")
    return 0


def schemas(args: argparse.Namespace) -> int:
    """Write the events' JSON Schemas; with --check, list stale files and write nothing."""
    from contracts.schemas import SCHEMA_DIR, all_schemas, render, write_schemas

    expected = {SCHEMA_DIR / rel: render(schema) for rel, schema in all_schemas().items()}
    stale = sorted(path for path, text in expected.items() if not path.exists() or path.read_text() != text)
    orphans = sorted(set(SCHEMA_DIR.rglob("*.json")) - expected.keys())
    if args.check:
        for path in stale:
            print(f"stale: {_shown(path)}")
        for path in orphans:
            print(f"no longer generated: {_shown(path)}")
        if stale or orphans:
            print("run `dealreg schemas` (or `make schemas`) and commit the result")
            return 1
        print(f"{len(expected)} schemas up to date")
        return 0
    write_schemas()
    for path in orphans:  # an event type that was removed or renamed
        path.unlink()
    changes = f"{len(stale)} changed, {len(orphans)} removed"
    print(f"wrote {len(expected)} schemas to {_shown(SCHEMA_DIR)} ({changes})")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
