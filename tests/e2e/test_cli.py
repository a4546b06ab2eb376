"""The short `dealreg` commands, run as a user runs them: the installed console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.tokens import Principal, verify

pytestmark = pytest.mark.e2e

DEALREG = Path(sys.executable).parent / "dealreg"
KEY = "cli-test-signing-key-0123456789abcdef"


def dealreg(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("DEALREG_")}
    return subprocess.run([str(DEALREG), *args], capture_output=True, text=True, env={**full_env, **env}, timeout=60)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--role", "admin"], Principal(role="admin", subject="admin")),
        (
            ["--role", "partner", "--program", "acme", "--partner", "northwind"],
            Principal(role="partner", subject="partner:acme:northwind", program_id="acme", partner_id="northwind"),
        ),
        (
            ["--role", "authority", "--program", "acme", "--level", "2", "--subject", "dana@vendor.example"],
            Principal(role="authority", subject="dana@vendor.example", program_id="acme", level=2),
        ),
        (["--role", "ops", "--program", "acme"], Principal(role="ops", subject="ops:acme", program_id="acme")),
        (
            ["--role", "integration", "--program", "acme", "--ttl", "7d", "--subject", "crm"],
            Principal(role="integration", subject="crm", program_id="acme"),
        ),
    ],
)
def test_token_for_each_role(args: list[str], expected: Principal):
    result = dealreg("token", *args, DEALREG_SIGNING_KEY=KEY)
    assert result.returncode == 0, result.stderr
    assert verify(KEY, result.stdout.strip().splitlines()[-1]) == expected


def test_token_without_a_key_uses_the_one_kept_in_the_home(tmp_path: Path):
    result = dealreg("token", "--role", "admin", DEALREG_HOME=str(tmp_path))
    assert result.returncode == 0, result.stderr
    key = (tmp_path / "signing.key").read_text().strip()
    assert verify(key, result.stdout.strip().splitlines()[-1]).role == "admin"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "emperor"], "invalid choice: 'emperor'"),
        (["--role", "partner", "--program", "acme"], "needs --partner"),
        (["--role", "authority", "--program", "acme"], "needs --level"),
        (["--role", "admin", "--ttl", "soon"], "bad duration"),
        (["--role", "authority", "--program", "acme", "--level", "0"], "--level"),
    ],
)
def test_bad_token_arguments_exit_2_with_one_line(args: list[str], message: str):
    result = dealreg("token", *args, DEALREG_SIGNING_KEY=KEY)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_schemas_check_passes_on_the_checked_in_files():
    result = dealreg("schemas", "--check")
    assert result.returncode == 0, result.stdout
    assert "up to date" in result.stdout


def test_serve_without_configuration_says_what_is_missing():
    result = dealreg("serve", "registration")
    assert result.returncode != 0
    assert "DEALREG_DATABASE_URL" in result.stderr


def test_migrate_without_a_database_or_a_stack_fails_clearly(tmp_path: Path):
    result = dealreg("migrate", DEALREG_HOME=str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"dealreg migrate: set DEALREG_DATABASE_URL, or start the local stack (`dealreg up`) in {tmp_path}"
    ]
