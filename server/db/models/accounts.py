"""Staff accounts and authentication state: one-time codes, sessions, refresh tokens, WS tickets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigId, UTCDateTime

ROLES = ("insured", "doctor", "dispatcher", "hr", "admin")


class StaffAccount(Base):
    """A doctor, dispatcher, HR manager (bound to one corporate policyholder) or admin."""

    __tablename__ = "staff_accounts"
    __table_args__ = (
        CheckConstraint("role IN ('doctor', 'dispatcher', 'hr', 'admin')", name="role"),
        CheckConstraint("role <> 'hr' OR hr_policyholder_id IS NOT NULL", name="hr_has_policyholder"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    full_name: Mapped[str] = mapped_column(String(300))
    specialties: Mapped[list[str]] = mapped_column(JSON, default=list)
    hr_policyholder_id: Mapped[int | None] = mapped_column(ForeignKey("policyholders.id"))
    max_active_consultations: Mapped[int] = mapped_column(Integer, default=3)
    time_zone: Mapped[str | None] = mapped_column(String(64))  # IANA zone for "my shifts"; None: Europe/Moscow
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    tokens_valid_after: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set by an admin's password reset: the old password no longer works, a new one must be set.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)
    timezone: Mapped[str | None] = mapped_column(String(64))


class LoginChallenge(Base):
    """One policy-login attempt: the hashed one-time code, bound to this attempt (checklist A8).

    A challenge is also made for an unknown policy (``insured_person_id`` NULL) so that the
    answer does not reveal whether the policy exists (A9).
    """

    __tablename__ = "login_challenges"
    __table_args__ = (
        Index("ix_login_challenges_policy_created", "policy_number", "created_at"),
        Index("ix_login_challenges_address_created", "client_address", "created_at"),
        Index("ix_login_challenges_person_created", "person_key", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    policy_number: Mapped[str] = mapped_column(String(40))
    # Who the attempt names (policy or insured number + birth date): the per-person limit (A8).
    person_key: Mapped[str | None] = mapped_column(String(80))
    insured_person_id: Mapped[int | None] = mapped_column(ForeignKey("insured_persons.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(128))
    client_address: Mapped[str] = mapped_column(String(64))
    guesses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginFailure(Base):
    """A failed login (wrong password or code), counted per account per hour (checklist A8)."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_account_created", "account_key", "created_at"),
        Index("ix_login_failures_address_created", "client_address", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_key: Mapped[str] = mapped_column(String(100))
    client_address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuthSession(Base):
    """A login session: the family of refresh tokens and the ``sid`` claim of its access tokens.

    Revoking it (logout, refresh-token reuse, account disabled) stops every token of the
    family and closes the session's WebSockets (checklist A5, A6, B5).
    """

    __tablename__ = "auth_sessions"
    __table_args__ = (
        CheckConstraint("subject_type IN ('insured', 'staff')", name="subject_type"),
        Index("ix_auth_sessions_subject", "subject_type", "subject_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int] = mapped_column(BigId)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(String(40))


class RefreshToken(Base):
    """A refresh token, stored only as its SHA-256; single use, rotated on every refresh."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The successor, sealed with this token (security.tokens.seal_successor): a concurrent refresh
    # within the grace window gets the same one instead of revoking the session (several tabs).
    successor_sealed: Mapped[str | None] = mapped_column(String(128))


class WebSocketTicket(Base):
    """A short-lived, single-use ticket that opens the client WebSocket (checklist B3)."""

    __tablename__ = "websocket_tickets"

    ticket_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("auth_sessions.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
