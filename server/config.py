"""Settings from TELEMED_* environment variables, with embedded defaults for the one-command demo."""

from __future__ import annotations

import ipaddress
import json
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote, urlencode, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_ENVIRONMENTS = frozenset({"dev", "test"})
MIN_SECRET_CHARS = 32
# Secret settings that may instead be read from a file (``TELEMED_<NAME>_FILE``, e.g. a compose secret).
SECRET_FILE_FIELDS = (
    "jwt_secret",
    "otp_pepper",
    "database_password",
    "redis_password",
    "metrics_token",
    "sms_token",
    "rtc_turn_secret",
)


class Settings(BaseSettings):
    """Typed settings, loaded once by the CLI or a test and passed to ``create_app``.

    Unset values fall back to the embedded defaults (SQLite file in the data folder,
    in-process bus). In production the public URL, the JWT secret, a separate one-time-code
    pepper and a real code sender must be configured (see the README's production section).
    """

    model_config = SettingsConfigDict(env_prefix="TELEMED_", extra="ignore")

    environment: Literal["dev", "test", "production"] = "dev"
    data_dir: Path = Path("./telemed-data")
    # The one public base URL (scheme, host, port) browsers use: the WebSocket Origin allowlist and links.
    public_url: str = ""
    database_url: str = ""
    # Or the database from parts, so a password with @ : / needs no escaping by hand.
    database_host: str = ""
    database_port: int = 5432
    database_name: str = "telemed"
    database_user: str = "telemed"
    database_password: SecretStr = SecretStr("")
    database_password_file: Path | None = None
    database_sslmode: Literal["", "disable", "allow", "prefer", "require", "verify-ca", "verify-full"] = ""
    database_sslrootcert: Path | None = None
    redis_url: str = ""
    redis_username: str = ""
    redis_password: SecretStr = SecretStr("")
    redis_password_file: Path | None = None
    redis_ca_file: Path | None = None  # CA of a rediss:// server (checked, hostname included)
    redis_prefix: str = "telemed"
    # The Redis bus against a silent link (server/bus.py): the longest one call may take, the
    # heartbeat every process publishes, and how long a subscription may hear nothing.
    bus_timeout_seconds: float = Field(default=1.0, gt=0, le=30)
    bus_heartbeat_seconds: float = Field(default=1.0, gt=0, le=30)
    bus_silence_seconds: float = Field(default=5.0, gt=0, le=120)
    # /readyz answers within this, whatever hangs behind it.
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    jwt_secret: SecretStr = SecretStr("")
    jwt_secret_file: Path | None = None
    # Key of the one-time-code HMAC, separate from the JWT key (a leak of one does not give the other).
    otp_pepper: SecretStr = SecretStr("")
    otp_pepper_file: Path | None = None
    # Who delivers one-time codes: the file outbox (dev) or an HTTP SMS gateway.
    code_sender: Literal["outbox", "http"] = "outbox"
    allow_outbox_in_production: bool = False
    sms_url: str = ""
    sms_token: SecretStr = SecretStr("")
    sms_token_file: Path | None = None
    sms_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    sms_attempts: int = Field(default=4, ge=1, le=10)
    jwt_issuer: str = "telemed"
    jwt_audience: str = "telemed-api"
    access_token_minutes: int = Field(default=15, ge=1, le=15)
    refresh_idle_minutes: int = Field(default=30, ge=1, le=30)
    refresh_absolute_hours: int = Field(default=12, ge=1, le=12)
    # Several tabs refresh the same token at once: within this window they get the same successor (A5).
    refresh_grace_seconds: float = Field(default=5.0, ge=0, le=30)
    otp_ttl_seconds: int = Field(default=300, ge=30, le=600)
    otp_max_guesses: int = Field(default=5, ge=1, le=5)
    # Policy login (A8): per person, per address, and a per-policy ceiling of at least
    # login_starts_per_policy_per_hour, else the per-person limit x (persons on the policy + 1).
    login_starts_per_person_per_hour: int = Field(default=10, ge=1)
    login_starts_per_policy_per_hour: int = Field(default=10, ge=1)
    login_starts_per_address_per_hour: int = 60
    failed_logins_per_account_per_hour: int = 100  # policy codes (per person); staff get a growing delay instead
    failed_logins_per_address_per_hour: int = Field(default=30, ge=1)  # staff login failures from one address
    ws_ticket_seconds: int = Field(default=30, ge=5, le=60)
    # Extra exact origins besides the public URL's (e.g. a second domain).
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Networks of the proxies in front (balancer, TLS terminator); empty = X-Forwarded-For ignored.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8080
    # /metrics (and the detailed readiness) on their own listener; in production loopback by default.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_token: SecretStr = SecretStr("")
    metrics_token_file: Path | None = None
    # `telemed migrate` / `serve` wait this long for the database to accept connections.
    database_wait_seconds: float = Field(default=60.0, ge=0, le=3600)
    log_level: str = "INFO"
    log_json: bool = True
    sql_echo: bool = False
    # WebRTC (signaling/): host candidates pinned for tests (aioice otherwise offers the network
    # card's addresses), STUN/TURN URLs handed to clients, and the TURN REST shared secret.
    rtc_host_addresses: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rtc_stun_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rtc_turn_urls: Annotated[list[str], NoDecode] = Field(default_factory=list)
    rtc_turn_secret: SecretStr = SecretStr("")
    rtc_turn_secret_file: Path | None = None
    rtc_turn_ttl_seconds: int = Field(default=600, ge=60, le=86_400)
    rtc_echo_max_sessions: int = Field(default=20, ge=0, le=1000)
    # Client WebSocket and chat (server/realtime, server/services/chat.py).
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    ws_session_check_seconds: float = Field(default=60.0, gt=0, le=300)
    # A socket with no frame from its user for this long is closed (A10); 0 = the session's idle
    # limit (refresh_idle_minutes). Tests set a few seconds.
    ws_idle_seconds: float = Field(default=0, ge=0, le=1800)
    ws_max_connections_per_subject: int = Field(default=5, ge=1, le=100)
    # A socket's seat lapses this long after its process stops renewing it (a crash); renewed every third.
    ws_seat_ttl_seconds: float = Field(default=90.0, ge=1, le=3600)
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
    # Corporate HR (R12.5): the smallest group a figure may describe; raised, never lowered (checklist F1).
    hr_min_cell: int = Field(default=11, ge=11, le=1000)
    # How often each process checks for a newly closed month to freeze for every client (0: never).
    hr_freeze_interval_seconds: float = Field(default=3600.0, ge=0)
    # The insurer's average prices, for the cost of services used shown against the premium paid.
    hr_consultation_price: Decimal = Field(default=Decimal("1500.00"), ge=0)
    hr_visit_price: Decimal = Field(default=Decimal("3500.00"), ge=0)
    audit_checkpoint_interval_seconds: float = Field(default=60.0, ge=0)  # pin the audit head (D2); 0: off
    # How often each process applies removals from employers' lists whose date has come (issue 16); 0: never.
    coverage_end_interval_seconds: float = Field(default=600.0, ge=0)

    @field_validator(
        "allowed_origins", "rtc_host_addresses", "rtc_stun_urls", "rtc_turn_urls", "trusted_proxies", mode="before"
    )
    @classmethod
    def _split_csv(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Each entry is an address or a network; the old ``true`` (trust anyone) is refused."""
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"TELEMED_TRUSTED_PROXIES lists networks of the proxies in front, e.g. 10.0.0.0/8; got {entry!r}"
                ) from None
        return [str(ipaddress.ip_network(entry, strict=False)) for entry in value]

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("TELEMED_PUBLIC_URL is a base URL such as https://telemed.example (no path)")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _read_secret_files_and_refuse_weak_production(self) -> Settings:
        for name in SECRET_FILE_FIELDS:
            path: Path | None = getattr(self, f"{name}_file")
            if path is None:
                continue
            if getattr(self, name).get_secret_value():
                raise ValueError(f"set TELEMED_{name.upper()} or TELEMED_{name.upper()}_FILE, not both")
            try:
                content = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"TELEMED_{name.upper()}_FILE: cannot read {path}: {exc.strerror}") from None
            setattr(self, name, SecretStr(content))
        if self.code_sender == "http" and not self.sms_url:
            raise ValueError("TELEMED_CODE_SENDER=http needs TELEMED_SMS_URL")
        if self.environment not in DEV_ENVIRONMENTS:
            self._refuse_weak_production()
        return self

    def _refuse_weak_production(self) -> None:
        """Production starts only with real secrets, a public HTTPS URL and a real code sender."""
        secret = self.jwt_secret.get_secret_value()
        if len(secret) < MIN_SECRET_CHARS:
            raise ValueError("TELEMED_JWT_SECRET must be set (at least 32 characters) outside dev/test")
        pepper = self.otp_pepper.get_secret_value()
        if len(pepper) < MIN_SECRET_CHARS or pepper == secret:
            raise ValueError("TELEMED_OTP_PEPPER must be set (32+ characters, not the JWT secret) in production")
        if not self.public_url.startswith("https://"):
            raise ValueError("TELEMED_PUBLIC_URL must be the https:// address browsers use, in production")
        if self.code_sender == "outbox" and not self.allow_outbox_in_production:
            raise ValueError(
                "production would write one-time codes to a file: set TELEMED_CODE_SENDER=http with an SMS "
                "gateway, or TELEMED_ALLOW_OUTBOX_IN_PRODUCTION=true deliberately"
            )

    @property
    def access_token_ttl(self) -> timedelta:
        """Lifetime of an access JWT (checklist A5: at most 15 minutes)."""
        return timedelta(minutes=self.access_token_minutes)

    @property
    def public_origin(self) -> str:
        """``scheme://host[:port]`` of the public URL, as a browser sends it in ``Origin``."""
        if not self.public_url:
            return ""
        parts = urlsplit(self.public_url)
        return f"{parts.scheme}://{parts.netloc}".lower()

    @property
    def websocket_origins(self) -> frozenset[str]:
        """The exact Origin allowlist (B2): the same on every process behind one balancer.

        Production: the public URL's origin plus ``allowed_origins``. Dev and test also accept
        this process's own ``http://127.0.0.1:PORT`` and ``http://localhost:PORT``, so the demo
        works in a browser with no configuration.
        """
        origins = set(self.allowed_origins)
        if self.public_origin:
            origins.add(self.public_origin)
        if self.environment in DEV_ENVIRONMENTS and self.port:
            origins.update({f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}"})
        return frozenset(origins)

    @property
    def metrics_listener(self) -> tuple[str, int] | None:
        """Where the operations listener (``/metrics``, detailed ``/readyz``) binds, if separate.

        ``TELEMED_METRICS_PORT`` picks it (0 = any free port). Production without a port and
        without ``TELEMED_METRICS_TOKEN`` still keeps metrics off the public listener: 127.0.0.1:9100.
        """
        if self.metrics_port is not None:
            return self.metrics_host, self.metrics_port
        if self.environment == "production" and not self.metrics_token.get_secret_value():
            return self.metrics_host, 9100
        return None

    @property
    def metrics_on_public_listener(self) -> bool:
        """Whether the main listener serves ``/metrics`` (dev/test, or with a bearer token)."""
        return self.metrics_listener is None

    @property
    def effective_database_url(self) -> str:
        """The configured database: a URL, or one built from parts, or the embedded SQLite file.

        Built from parts, user and password are percent-escaped, and ``sslmode``/``sslrootcert``
        go in the query, where ``server.db.engine.make_engine`` turns them into a TLS context.
        """
        if self.database_url:
            url = normalize_database_url(self.database_url)
        elif self.database_host:
            password = self.database_password.get_secret_value()
            credentials = quote(self.database_user, safe="")
            if password:
                credentials += ":" + quote(password, safe="")
            url = (
                f"postgresql+asyncpg://{credentials}@{self.database_host}:{self.database_port}/"
                f"{quote(self.database_name, safe='')}"
            )
        else:
            return f"sqlite+aiosqlite:///{(self.data_dir / 'telemed.sqlite3').resolve()}"
        query: dict[str, str] = {}
        if self.database_sslmode:
            query["sslmode"] = self.database_sslmode
        if self.database_sslrootcert is not None:
            query["sslrootcert"] = str(self.database_sslrootcert)
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        return url

    @property
    def effective_redis_url(self) -> str:
        """``redis_url`` with the ACL user, password and CA file put in (escaped); empty = in-process bus."""
        if not self.redis_url:
            return ""
        parts = urlsplit(self.redis_url)
        netloc = parts.netloc
        password = self.redis_password.get_secret_value()
        if password or self.redis_username:
            host = netloc.rsplit("@", 1)[-1]
            netloc = quote(self.redis_username, safe="") + (":" + quote(password, safe="") if password else "")
            netloc += "@" + host
        query = parts.query
        if self.redis_ca_file is not None:
            extra = urlencode({"ssl_ca_certs": str(self.redis_ca_file), "ssl_cert_reqs": "required"})
            query = f"{query}&{extra}" if query else extra
        url = f"{parts.scheme}://{netloc}{parts.path}"
        return f"{url}?{query}" if query else url

    @property
    def outbox_path(self) -> Path:
        """Where the default one-time-code sender writes its messages (read by ``telemed outbox``)."""
        return self.data_dir / "outbox.jsonl"

    @property
    def uploads_dir(self) -> Path:
        """Where uploaded files (pass photos, chat images) are kept."""
        return self.data_dir / "uploads"

    def with_dev_secret(self) -> Settings:
        """Return settings that have a JWT secret and a code pepper, generating them in the data folder.

        The demo must never run with a hard-coded secret, so it makes each on first start and
        reuses it, so tokens and pending codes survive a restart.
        """
        updates: dict[str, SecretStr] = {}
        for name, file_name in (("jwt_secret", "jwt-secret"), ("otp_pepper", "otp-pepper")):
            if getattr(self, name).get_secret_value():
                continue
            self.data_dir.mkdir(parents=True, exist_ok=True)
            secret_file = self.data_dir / file_name
            if not secret_file.exists():
                secret_file.write_text(secrets.token_urlsafe(48))
                secret_file.chmod(0o600)
            updates[name] = SecretStr(secret_file.read_text().strip())
        return self.model_copy(update=updates) if updates else self


def normalize_database_url(url: str) -> str:
    """Pick the async driver for a plain ``postgresql://`` or ``sqlite://`` URL."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url
