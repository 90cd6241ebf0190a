"""Settings from the environment: list settings as comma-separated text or JSON; no default secret in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from server.config import Settings


def test_allowed_origins_accept_comma_separated_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    assert Settings().allowed_origins == ["https://a.example", "https://b.example"]


def test_allowed_origins_accept_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_ALLOWED_ORIGINS", '["https://c.example"]')
    assert Settings().allowed_origins == ["https://c.example"]


def test_production_refuses_to_start_without_a_strong_jwt_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_ENVIRONMENT", "production")
    monkeypatch.delenv("TELEMED_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="TELEMED_JWT_SECRET"):
        Settings()
    monkeypatch.setenv("TELEMED_JWT_SECRET", "s" * 40)
    assert Settings().environment == "production"


def test_access_tokens_cannot_be_configured_longer_than_15_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_ACCESS_TOKEN_MINUTES", "60")
    with pytest.raises(ValidationError):
        Settings()
