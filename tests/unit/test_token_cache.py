"""A verified token is remembered, but never past its expiry, and a forged one is never cached."""

from __future__ import annotations

import datetime as dt

import pytest

from services import tokens

pytestmark = pytest.mark.unit
KEY = "unit-test-key-0123456789abcdef0123"


def test_a_remembered_token_is_checked_again_once_it_expires(monkeypatch):
    now = dt.datetime.now(dt.UTC)
    token = tokens.mint(KEY, role="ops", program_id="acme", now=now, ttl=dt.timedelta(seconds=60))
    calls = []
    real_verify = tokens._verify
    monkeypatch.setattr(tokens, "_verify", lambda k, t: calls.append(t) or real_verify(k, t))
    assert tokens.verify(KEY, token).role == "ops"
    assert tokens.verify(KEY, token).program_id == "acme"
    assert len(calls) == 1  # the second came from memory
    monkeypatch.setattr(tokens.time, "time", lambda: now.timestamp() + 61)
    tokens.verify(KEY, token)
    assert len(calls) == 2  # past its expiry it is not served from memory


def test_a_token_signed_with_another_key_is_refused_even_after_a_good_one():
    now = dt.datetime.now(dt.UTC)
    token = tokens.mint(KEY, role="admin", now=now)
    assert tokens.verify(KEY, token).role == "admin"
    with pytest.raises(tokens.InvalidToken):
        tokens.verify("another-key-0123456789abcdef01234", token)
