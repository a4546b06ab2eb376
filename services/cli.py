"""The `dealreg` command: the local stack, one service, tokens, migrations and event schemas.

Configuration comes from the environment (DEALREG_*); see the README.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from services.cli_commands import CommandError, UsageError
from services.cli_ops import add_ops_commands
from services.tokens import ROLES

SERVICES = ("registration", "conflict")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line instead of the full usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dealreg", description="Event-sourced deal registration and conflict resolution.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser("up", help="run the whole product locally (foreground; Ctrl-C stops it)")
    up.add_argument("--demo", action="store_true", help="seed a demo program, partners and registrations")

    serve = commands.add_parser("serve", help="run one service (production), configured by DEALREG_* vars")
    serve.add_argument("service", choices=SERVICES)

    commands.add_parser("migrate", help="apply database migrations (DEALREG_DATABASE_URL or the local stack)")

    token = commands.add_parser("token", help="print a bearer token (the last line of stdout)")
    token.add_argument("--role", required=True, choices=ROLES)
    token.add_argument("--program", help="program id (all roles but admin)")
    token.add_argument("--partner", help="partner id (partner role)")
    token.add_argument("--level", type=int, help="escalation level, from 1 (authority role)")
    token.add_argument("--subject", help="the person or system acting (default: the role and its scope)")
    token.add_argument("--ttl", default="1h", help="lifetime, e.g. 90s, 15m, 1h, 7d (default 1h)")

    schemas = commands.add_parser("schemas", help="write the events' JSON Schemas to contracts/schemas")
    schemas.add_argument("--check", action="store_true", help="list stale files and exit 1; write nothing")
    add_ops_commands(commands)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            from services.cli_up import up

            return up(demo=args.demo)
        if args.command == "serve":
            from services.cli_serve import serve

            return serve(args.service)
        if hasattr(args, "handler"):
            return args.handler(args)
        from services import cli_commands

        return getattr(cli_commands, args.command)(args)
    except UsageError as exc:
        print(f"dealreg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"dealreg {args.command}: {exc}", file=sys.stderr)
        return 1


def main() -> NoReturn:
    """Console script entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
