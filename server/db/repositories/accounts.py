"""Queries for logins, sessions, refresh tokens, WebSocket tickets and staff accounts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import (
    AuthSession,
    InsuredPerson,
    LoginChallenge,
    LoginFailure,
    Policy,
    RefreshToken,
    StaffAccount,
    WebSocketTicket,
)


async def find_login_candidates(
    session: AsyncSession,
    *,
    birth_date: date,
    policy_number: str | None = None,
    insured_number: str | None = None,
    limit: int = 20,
) -> list[tuple[InsuredPerson, Policy]]:
    """Active insured persons with this birth date and policy number (or personal insured number).

    A corporate policy can hold several people born on the same day, so this returns all of them
    (up to ``limit``) and the caller decides; it never picks one by id.
    """
    stmt = (
        select(InsuredPerson, Policy)
        .join(Policy, Policy.id == InsuredPerson.policy_id)
        .where(InsuredPerson.birth_date == birth_date, InsuredPerson.is_active.is_(True))
        .order_by(InsuredPerson.id)
        .limit(limit)
    )
    if insured_number is not None:
        stmt = stmt.where(InsuredPerson.insured_number == insured_number)
    else:
        stmt = stmt.where(Policy.number == policy_number)
    return [(row[0], row[1]) for row in (await session.execute(stmt)).all()]


async def count_persons_on_policy(session: AsyncSession, policy_number: str) -> int:
    """Active persons on a policy: the per-policy login ceiling grows with them."""
    stmt = (
        select(func.count())
        .select_from(InsuredPerson)
        .join(Policy, Policy.id == InsuredPerson.policy_id)
        .where(Policy.number == policy_number, InsuredPerson.is_active.is_(True))
    )
    return int((await session.execute(stmt)).scalar_one())


async def count_challenges_since(
    session: AsyncSession,
    *,
    since: datetime,
    policy_number: str | None = None,
    client_address: str | None = None,
    person_key: str | None = None,
) -> int:
    """How many login challenges were started since ``since`` for a policy, a person or from an address."""
    stmt = select(func.count()).select_from(LoginChallenge).where(LoginChallenge.created_at >= since)
    if person_key is not None:
        stmt = stmt.where(LoginChallenge.person_key == person_key)
    if policy_number is not None:
        stmt = stmt.where(LoginChallenge.policy_number == policy_number)
    if client_address is not None:
        stmt = stmt.where(LoginChallenge.client_address == client_address)
    return int((await session.execute(stmt)).scalar_one())


async def count_failures_since(session: AsyncSession, account_key: str, since: datetime) -> int:
    """Failed logins for one account since ``since``."""
    stmt = (
        select(func.count())
        .select_from(LoginFailure)
        .where(LoginFailure.account_key == account_key, LoginFailure.created_at >= since)
    )
    return int((await session.execute(stmt)).scalar_one())


async def failure_stats_since(
    session: AsyncSession, since: datetime, *, account_key: str | None = None, client_address: str | None = None
) -> tuple[int, datetime | None]:
    """Count and latest time of failed logins since ``since`` for an account, an address or both."""
    stmt = select(func.count(), func.max(LoginFailure.created_at)).where(LoginFailure.created_at >= since)
    if account_key is not None:
        stmt = stmt.where(LoginFailure.account_key == account_key)
    if client_address is not None:
        stmt = stmt.where(LoginFailure.client_address == client_address)
    count, latest = (await session.execute(stmt)).one()
    if isinstance(latest, str):  # SQLite returns max() of a timestamp column as text
        latest = datetime.fromisoformat(latest)
    if latest is not None and latest.tzinfo is None:
        latest = latest.replace(tzinfo=UTC)
    return int(count), latest


async def get_challenge_for_update(session: AsyncSession, challenge_id: str) -> LoginChallenge | None:
    """Lock a challenge row so concurrent guesses are counted one by one."""
    stmt = select(LoginChallenge).where(LoginChallenge.id == challenge_id).with_for_update()
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_staff_by_username(session: AsyncSession, username: str) -> StaffAccount | None:
    """A staff account by its (case-insensitive) username."""
    stmt = select(StaffAccount).where(func.lower(StaffAccount.username) == username.lower())
    return (await session.execute(stmt)).scalar_one_or_none()


async def spend_refresh_token(
    session: AsyncSession, token_hash: str, now: datetime, successor_sealed: str | None = None
) -> str | None:
    """Atomically mark a refresh token used; returns its session id, or None if spent or unknown.

    ``UPDATE ... WHERE used_at IS NULL RETURNING`` makes rotation a compare-and-swap, so two
    parallel refreshes of the same token cannot both make a successor (checklist A5); the one
    that wins leaves its successor sealed in the same statement for the grace window.
    """
    stmt = (
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=now, successor_sealed=successor_sealed)
        .returning(RefreshToken.session_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_refresh_token(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    """A (possibly spent) refresh token row by its hash."""
    stmt = select(RefreshToken).where(RefreshToken.token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def session_of_refresh_token(session: AsyncSession, token_hash: str) -> str | None:
    """The session a (possibly spent) refresh token belongs to."""
    stmt = select(RefreshToken.session_id).where(RefreshToken.token_hash == token_hash)
    return (await session.execute(stmt)).scalar_one_or_none()


async def revoke_session(session: AsyncSession, session_id: str, now: datetime, reason: str) -> bool:
    """Revoke one session (the whole refresh-token family); False if it was already revoked."""
    stmt = (
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(AuthSession.id)
    )
    return (await session.execute(stmt)).scalar_one_or_none() is not None


async def revoke_subject_sessions(
    session: AsyncSession, subject_type: str, subject_id: int, now: datetime, reason: str
) -> list[str]:
    """Revoke every live session of a subject (account disabled, role changed)."""
    stmt = (
        update(AuthSession)
        .where(
            AuthSession.subject_type == subject_type,
            AuthSession.subject_id == subject_id,
            AuthSession.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_reason=reason)
        .returning(AuthSession.id)
    )
    return list((await session.execute(stmt)).scalars())


async def spend_websocket_ticket(session: AsyncSession, ticket_hash: str, now: datetime) -> str | None:
    """Atomically use a WebSocket ticket; its session id if it was valid and unused."""
    stmt = (
        update(WebSocketTicket)
        .where(
            WebSocketTicket.ticket_hash == ticket_hash,
            WebSocketTicket.used_at.is_(None),
            WebSocketTicket.expires_at > now,
        )
        .values(used_at=now)
        .returning(WebSocketTicket.session_id)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def get_staff(session: AsyncSession, staff_id: int) -> StaffAccount | None:
    """A staff account by id (active or not)."""
    return await session.get(StaffAccount, staff_id)
