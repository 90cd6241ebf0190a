"""Settings from the environment: lists, secrets from files, production refusals, URLs built from parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from server.config import Settings

PRODUCTION = {
    "TELEMED_ENVIRONMENT": "production",
    "TELEMED_JWT_SECRET": "j" * 40,
    "TELEMED_OTP_PEPPER": "p" * 40,
    "TELEMED_PUBLIC_URL": "https://telemed.example",
    "TELEMED_CODE_SENDER": "http",
    "TELEMED_SMS_URL": "http://sms-gateway.internal/send",
}


def _env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_allowed_origins_accept_comma_separated_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_ALLOWED_ORIGINS", "https://a.example, https://b.example")
    assert Settings().allowed_origins == ["https://a.example", "https://b.example"]


def test_allowed_origins_accept_a_json_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_ALLOWED_ORIGINS", '["https://c.example"]')
    assert Settings().allowed_origins == ["https://c.example"]


def test_a_complete_production_configuration_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, PRODUCTION)
    assert Settings().environment == "production"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TELEMED_JWT_SECRET", "", "TELEMED_JWT_SECRET"),
        ("TELEMED_JWT_SECRET", "short", "TELEMED_JWT_SECRET"),
        ("TELEMED_OTP_PEPPER", "", "TELEMED_OTP_PEPPER"),
        ("TELEMED_OTP_PEPPER", "j" * 40, "TELEMED_OTP_PEPPER"),  # the JWT key doubling as the pepper
        ("TELEMED_PUBLIC_URL", "", "TELEMED_PUBLIC_URL"),
        ("TELEMED_PUBLIC_URL", "http://telemed.example", "TELEMED_PUBLIC_URL"),  # B1: HTTPS only
        ("TELEMED_CODE_SENDER", "outbox", "one-time codes to a file"),
    ],
)
def test_production_refuses_weak_or_missing_settings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    _env(monkeypatch, {**PRODUCTION, name: value})
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_production_takes_the_file_outbox_only_when_explicitly_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, {**PRODUCTION, "TELEMED_CODE_SENDER": "outbox", "TELEMED_ALLOW_OUTBOX_IN_PRODUCTION": "true"})
    assert Settings().code_sender == "outbox"


def test_secrets_are_read_from_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Compose secrets: TELEMED_<NAME>_FILE, trailing newline stripped; setting both is refused."""
    _env(monkeypatch, PRODUCTION)
    for name, content in [("jwt", "f" * 40), ("pepper", "g" * 40), ("db", "p@ss:w/rd%"), ("metrics", "m" * 20)]:
        (tmp_path / name).write_text(content + "\n")
    monkeypatch.delenv("TELEMED_JWT_SECRET")
    monkeypatch.delenv("TELEMED_OTP_PEPPER")
    monkeypatch.setenv("TELEMED_JWT_SECRET_FILE", str(tmp_path / "jwt"))
    monkeypatch.setenv("TELEMED_OTP_PEPPER_FILE", str(tmp_path / "pepper"))
    monkeypatch.setenv("TELEMED_DATABASE_PASSWORD_FILE", str(tmp_path / "db"))
    monkeypatch.setenv("TELEMED_METRICS_TOKEN_FILE", str(tmp_path / "metrics"))
    settings = Settings()
    assert settings.jwt_secret.get_secret_value() == "f" * 40
    assert settings.otp_pepper.get_secret_value() == "g" * 40
    assert settings.database_password.get_secret_value() == "p@ss:w/rd%"
    assert settings.metrics_token.get_secret_value() == "m" * 20
    monkeypatch.setenv("TELEMED_JWT_SECRET", "x" * 40)
    with pytest.raises(ValidationError, match="not both"):
        Settings()


def test_a_missing_secret_file_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TELEMED_JWT_SECRET_FILE", str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match="TELEMED_JWT_SECRET_FILE"):
        Settings()


def test_database_url_from_parts_escapes_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    """A password with @ : / % survives: the URL is built, not pasted (compose used to paste it)."""
    _env(
        monkeypatch,
        {
            "TELEMED_DATABASE_HOST": "postgres",
            "TELEMED_DATABASE_PASSWORD": "p@ss:w/rd%?",
            "TELEMED_DATABASE_SSLMODE": "verify-full",
            "TELEMED_DATABASE_SSLROOTCERT": "/certs/ca.pem",
        },
    )
    url = make_url(Settings().effective_database_url)
    assert url.drivername == "postgresql+asyncpg"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "telemed",
        "p@ss:w/rd%?",
        "postgres",
        5432,
        "telemed",
    )
    assert dict(url.query) == {"sslmode": "verify-full", "sslrootcert": "/certs/ca.pem"}


def test_redis_url_gets_the_acl_user_password_and_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(
        monkeypatch,
        {
            "TELEMED_REDIS_URL": "rediss://redis:6380/0",
            "TELEMED_REDIS_USERNAME": "telemed",
            "TELEMED_REDIS_PASSWORD": "a@b:c/d",
            "TELEMED_REDIS_CA_FILE": "/certs/ca.pem",
        },
    )
    assert Settings().effective_redis_url == (
        "rediss://telemed:a%40b%3Ac%2Fd@redis:6380/0?ssl_ca_certs=%2Fcerts%2Fca.pem&ssl_cert_reqs=required"
    )


def test_origin_allowlist_is_the_public_url_in_production_whatever_the_port_B2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes on different ports behind one balancer accept exactly the same origins."""
    _env(monkeypatch, {**PRODUCTION, "TELEMED_PUBLIC_URL": "https://Telemed.example:8443/"})
    first = Settings(port=8081).websocket_origins
    second = Settings(port=8082).websocket_origins
    assert first == second == frozenset({"https://telemed.example:8443"})


def test_dev_adds_its_own_port_for_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_PUBLIC_URL", "http://192.0.2.10:8080")
    origins = Settings(port=9000).websocket_origins
    assert origins == {"http://192.0.2.10:8080", "http://127.0.0.1:9000", "http://localhost:9000"}


def test_trusted_proxies_are_networks_and_the_old_true_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_TRUSTED_PROXIES", "172.18.0.0/16, 10.1.2.3, fd00::/8")
    assert Settings().trusted_proxies == ["172.18.0.0/16", "10.1.2.3/32", "fd00::/8"]
    monkeypatch.setenv("TELEMED_TRUSTED_PROXIES", "true")
    with pytest.raises(ValidationError, match="networks"):
        Settings()


def test_public_url_must_be_a_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_PUBLIC_URL", "https://telemed.example/app")
    with pytest.raises(ValidationError, match="base URL"):
        Settings()


def test_access_tokens_cannot_be_configured_longer_than_15_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEMED_ACCESS_TOKEN_MINUTES", "60")
    with pytest.raises(ValidationError):
        Settings()
