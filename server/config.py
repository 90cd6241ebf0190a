"""Settings from TELEMED_* environment variables, with embedded defaults for the one-command demo."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_ENVIRONMENTS = frozenset({"dev", "test"})


class Settings(BaseSettings):
    """Typed settings, loaded once by the CLI or a test and passed to ``create_app``.

    Unset values fall back to the embedded defaults (SQLite file in the data folder,
    in-process bus). Outside ``dev``/``test`` a JWT secret must be configured.
    """

    model_config = SettingsConfigDict(env_prefix="TELEMED_", extra="ignore")

    environment: Literal["dev", "test", "production"] = "dev"
    data_dir: Path = Path("./telemed-data")
    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = "telemed"
    jwt_secret: SecretStr = SecretStr("")
    jwt_issuer: str = "telemed"
    jwt_audience: str = "telemed-api"
    access_token_minutes: int = Field(default=15, ge=1, le=15)
    refresh_idle_minutes: int = Field(default=30, ge=1, le=30)
    refresh_absolute_hours: int = Field(default=12, ge=1, le=12)
    otp_ttl_seconds: int = Field(default=300, ge=30, le=600)
    otp_max_guesses: int = Field(default=5, ge=1, le=5)
    login_starts_per_policy_per_hour: int = 10
    login_starts_per_address_per_hour: int = 60
    failed_logins_per_account_per_hour: int = 100
    ws_ticket_seconds: int = Field(default=30, ge=5, le=60)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["http://127.0.0.1:8080", "http://localhost:8080"])
    trusted_proxies: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    log_json: bool = True
    sql_echo: bool = False
    # WebRTC (signaling/): host candidates pinned for tests (aioice otherwise offers the network
    # card's addresses), STUN/TURN URLs handed to clients, and the TURN REST shared secret.
    rtc_host_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rtc_stun_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rtc_turn_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rtc_turn_secret: SecretStr = SecretStr("")
    rtc_turn_ttl_seconds: int = Field(default=600, ge=60, le=86_400)
    rtc_echo_max_sessions: int = Field(default=20, ge=0, le=1000)
    # Client WebSocket and chat (server/realtime, server/services/chat.py).
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    ws_session_check_seconds: float = Field(default=60.0, gt=0, le=300)
    ws_max_connections_per_subject: int = Field(default=5, ge=1, le=100)
    ws_send_queue_frames: int = Field(default=2048, ge=16, le=100_000)
    ws_messages_per_minute: int = Field(default=100, ge=1, le=10_000_000)  # per socket (checklist B8)
    ws_message_burst: int = Field(default=40, ge=1, le=1_000_000)
    chat_batch_max: int = Field(default=500, ge=1, le=5000)
    chat_writer_lanes: int = Field(default=2, ge=1, le=8)
    # Telemedicine queue and roster (R11): background loops (0 disables them; tests drive them by hand).
    assignment_interval_seconds: float = Field(default=2.0, ge=0)
    offer_timeout_seconds: int = Field(default=60, ge=5, le=3600)
    offer_min_remaining_shift_minutes: int = Field(default=10, ge=0, le=240)
    handover_grace_minutes: int = Field(default=5, ge=0, le=240)
    consultation_avg_minutes: int = Field(default=15, ge=1, le=240)
    roster_check_interval_seconds: float = Field(default=300.0, ge=0)
    roster_check_weeks: int = Field(default=2, ge=1, le=8)
    max_continuous_duty_hours: int = Field(default=24, ge=1, le=72)  # back-to-back shifts count as one run
    # R11.6-R11.8: escalation of waiting requests, offer rounds, disconnect grace.
    escalation_max_lapses: int = Field(default=2, ge=1, le=20)
    escalation_max_wait_minutes: int = Field(default=10, ge=1, le=240)
    offer_round_pause_minutes: int = Field(default=3, ge=0, le=120)
    disconnect_grace_seconds: int = Field(default=120, ge=0, le=3600)

    @field_validator("allowed_origins", "rtc_host_addresses", "rtc_stun_urls", "rtc_turn_urls", mode="before")
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        secret = self.jwt_secret.get_secret_value()
        if self.environment not in DEV_ENVIRONMENTS and len(secret) < 32:
            raise ValueError("TELEMED_JWT_SECRET must be set (at least 32 characters) outside dev/test")
        return self

    @property
    def access_token_ttl(self) -> timedelta:
        """Lifetime of an access JWT (checklist A5: at most 15 minutes)."""
        return timedelta(minutes=self.access_token_minutes)

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file in the data folder."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite+aiosqlite:///{(self.data_dir / 'telemed.sqlite3').resolve()}"

    @property
    def outbox_path(self) -> Path:
        """Where the default one-time-code sender writes its messages (read by ``telemed outbox``)."""
        return self.data_dir / "outbox.jsonl"

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded files (pass photos, chat images) are kept."""
        return self.data_dir / "uploads"

    def with_dev_secret(self) -> Settings:
        """Return settings that have a JWT secret, generating and keeping one in the data folder.

        The demo must never run with a hard-coded secret, so it makes one on first start and
        reuses it, so tokens survive a restart.
        """
        if self.jwt_secret.get_secret_value():
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret_file = self.data_dir / "jwt-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(48))
            secret_file.chmod(0o600)
        return self.model_copy(update={"jwt_secret": SecretStr(secret_file.read_text().strip())})


def normalize_database_url(url: str) -> str:
    """Pick the async driver for a plain ``postgresql://`` or ``sqlite://`` URL."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
