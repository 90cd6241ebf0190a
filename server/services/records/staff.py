"""Staff accounts the admin manages (checklist A6): create, disable, reset password, change role, end sessions.

No password is ever chosen by the admin or printed: a new or reset account gets a one-time set-password
code (only its SHA-256 is stored) with which the person sets their own. Every change that affects access
revokes the account's sessions in the database (every process checks that on each request) and tells
every process over the bus to close the account's sockets at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.channels import EVENT_SESSION_REVOKED, session_channel
from server.db.models import PasswordSetToken, Policyholder, StaffAccount
from server.db.repositories import accounts as accounts_repo
from server.domain.errors import Conflict, InvalidInput, NotFound, Unauthorized
from server.domain.staff import check_account, check_new_password
from server.security.passwords import hash_password
from server.security.tokens import hash_token, new_opaque_token
from server.services.context import ServiceContext
from server.services.records.changes import Actor, audit_txn, diff_json, record_txn

SET_PASSWORD_HOURS: Final = 72
SET_PASSWORD_PATH: Final = "/set-password"  # noqa: S105 (a page, not a password)
DEFAULT_TIMEZONE: Final = "Europe/Moscow"


@dataclass(frozen=True, slots=True)
class StaffView:
    """A staff account as the admin sees it (never a password hash)."""

    id: int
    username: str
    role: str
    full_name: str
    specialties: list[str]
    timezone: str | None
    hr_policyholder_id: int | None
    is_active: bool
    must_change_password: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SetPasswordCode:
    """The one-time code (and link) with which the person sets their password; shown once."""

    code: str
    link: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class StaffWithCode:
    """A created or reset account and its one-time code."""

    account: StaffView
    set_password: SetPasswordCode


def _view(account: StaffAccount) -> StaffView:
    return StaffView(
        id=account.id,
        username=account.username,
        role=account.role,
        full_name=account.full_name,
        specialties=list(account.specialties or []),
        timezone=account.timezone,
        hr_policyholder_id=account.hr_policyholder_id,
        is_active=account.is_active,
        must_change_password=account.must_change_password,
        created_at=account.created_at,
    )


def _refuse(problems: list[tuple[str, str]]) -> None:
    if problems:
        raise InvalidInput(
            "the account is not valid: " + "; ".join(f"{f}: {p}" for f, p in problems),
            code="invalid_account",
            details={"problems": [{"field": f, "problem": p} for f, p in problems]},
        )


async def _check_links(session: AsyncSession, timezone: str | None, hr_policyholder_id: int | None) -> None:
    problems: list[tuple[str, str]] = []
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(("timezone", f"{timezone!r} is not an IANA time zone"))
    if hr_policyholder_id is not None:
        holder = await session.get(Policyholder, hr_policyholder_id)
        if holder is None:
            problems.append(("hr_policyholder_id", "no such policyholder"))
        elif holder.kind != "corporate":
            problems.append(("hr_policyholder_id", "HR users belong to a corporate policyholder"))
    _refuse(problems)


def _unusable_hash() -> str:
    """A hash of a secret nobody knows: the account cannot log in until a password is set."""
    return hash_password(secrets.token_urlsafe(32))


async def _issue_code_txn(
    ctx: ServiceContext, session: AsyncSession, account_id: int, now: datetime
) -> SetPasswordCode:
    await session.execute(
        update(PasswordSetToken)
        .where(PasswordSetToken.staff_account_id == account_id, PasswordSetToken.used_at.is_(None))
        .values(used_at=now)
    )
    code = new_opaque_token()
    expires_at = now + timedelta(hours=SET_PASSWORD_HOURS)
    session.add(
        PasswordSetToken(
            token_hash=hash_token(code), staff_account_id=account_id, created_at=now, expires_at=expires_at
        )
    )
    # The code travels in the fragment, which browsers never send to the server or put in access logs.
    return SetPasswordCode(code=code, link=f"{SET_PASSWORD_PATH}#code={code}", expires_at=expires_at)


async def create_account(
    ctx: ServiceContext,
    actor: Actor,
    *,
    username: str,
    role: str,
    full_name: str,
    specialties: list[str] | None = None,
    timezone: str | None = None,
    hr_policyholder_id: int | None = None,
    max_active_consultations: int = 3,
) -> StaffWithCode:
    """A doctor (specialties, time zone), dispatcher, HR user (one policyholder) or admin, with a one-time code."""
    specialties = sorted(set(specialties or []))
    _refuse(check_account(username=username, role=role, specialties=specialties, hr_policyholder_id=hr_policyholder_id))
    if not full_name.strip():
        _refuse([("full_name", "required")])
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        await _check_links(session, timezone, hr_policyholder_id)
        account = StaffAccount(
            username=username,
            password_hash=_unusable_hash(),
            role=role,
            full_name=full_name.strip(),
            specialties=specialties,
            hr_policyholder_id=hr_policyholder_id,
            max_active_consultations=max_active_consultations,
            is_active=True,
            created_at=now,
            must_change_password=True,
            timezone=timezone or (DEFAULT_TIMEZONE if role == "doctor" else None),
        )
        session.add(account)
        try:
            await session.flush()
        except IntegrityError as exc:
            raise Conflict(f"the username {username} is taken", code="username_taken") from exc
        code = await _issue_code_txn(ctx, session, account.id, now)
        await record_txn(
            session,
            actor,
            now,
            entity_type="staff_account",
            entity_id=account.id,
            action="created",
            changes={
                "username": [None, username],
                "role": [None, role],
                "specialties": [None, specialties],
                "timezone": [None, account.timezone],
                "hr_policyholder_id": [None, hr_policyholder_id],
            },
        )
        await audit_txn(
            session, actor, now, action="staff.create", resource_type="staff_account", resource_id=account.id
        )
        await uow.commit()
    return StaffWithCode(_view(account), code)


async def list_accounts(ctx: ServiceContext, role: str | None = None) -> list[StaffView]:
    """Staff accounts by username."""
    async with ctx.uow() as uow:
        stmt = select(StaffAccount).order_by(StaffAccount.username)
        if role:
            stmt = stmt.where(StaffAccount.role == role)
        return [_view(a) for a in (await uow.session.scalars(stmt)).all()]


async def _change(
    ctx: ServiceContext,
    actor: Actor,
    account_id: int,
    action: str,
    *,
    end_sessions: bool,
    new_code: bool = False,
    values: dict[str, object] | None = None,
) -> tuple[StaffView, SetPasswordCode | None]:
    """Apply field changes, optionally end every session and issue a new code; audited; sockets told after commit."""
    now = ctx.clock.now()
    code: SetPasswordCode | None = None
    async with ctx.uow() as uow:
        session = uow.session
        account = await session.get(StaffAccount, account_id, with_for_update=True)
        if account is None:
            raise NotFound("no such staff account")
        changes: dict[str, tuple[object, object]] = {}
        for name, value in (values or {}).items():
            if getattr(account, name) != value:
                changes[name] = (getattr(account, name), value)
                setattr(account, name, value)
        recorded = diff_json({k: v for k, v in changes.items() if k != "password_hash"})
        if "password_hash" in changes:
            recorded["password"] = ["(set)", "(reset)"]
        revoked: list[str] = []
        if end_sessions:
            account.tokens_valid_after = now
            revoked = await accounts_repo.revoke_subject_sessions(session, "staff", account.id, now, action)
            recorded["sessions_ended"] = [None, len(revoked)]
        if new_code:
            code = await _issue_code_txn(ctx, session, account.id, now)
        await record_txn(
            session, actor, now, entity_type="staff_account", entity_id=account.id, action=action, changes=recorded
        )
        await audit_txn(
            session, actor, now, action=f"staff.{action}", resource_type="staff_account", resource_id=account.id
        )
        await uow.commit()
    for session_id in revoked:
        await ctx.bus.publish(session_channel(session_id), {"type": EVENT_SESSION_REVOKED, "reason": action})
    return _view(account), code


async def disable_account(ctx: ServiceContext, actor: Actor, account_id: int) -> StaffView:
    """Disable at once: every session ends and every socket closes, on every process."""
    if actor.key == f"staff:{account_id}":
        raise InvalidInput("you cannot disable your own account", code="own_account")
    view, _ = await _change(ctx, actor, account_id, "disable", end_sessions=True, values={"is_active": False})
    return view


async def enable_account(ctx: ServiceContext, actor: Actor, account_id: int) -> StaffView:
    """Allow logins again (old sessions stay ended)."""
    view, _ = await _change(ctx, actor, account_id, "enable", end_sessions=False, values={"is_active": True})
    return view


async def reset_password(ctx: ServiceContext, actor: Actor, account_id: int) -> StaffWithCode:
    """The old password stops working, sessions end, and a one-time code lets the person set a new one."""
    view, code = await _change(
        ctx,
        actor,
        account_id,
        "reset_password",
        end_sessions=True,
        new_code=True,
        values={"password_hash": _unusable_hash(), "must_change_password": True},
    )
    assert code is not None
    return StaffWithCode(view, code)


async def change_role(
    ctx: ServiceContext,
    actor: Actor,
    account_id: int,
    *,
    role: str,
    specialties: list[str] | None = None,
    hr_policyholder_id: int | None = None,
) -> StaffView:
    """A new role takes effect at once: tokens issued for the old one stop and sockets close."""
    specialties = sorted(set(specialties or []))
    _refuse(check_account(username=None, role=role, specialties=specialties, hr_policyholder_id=hr_policyholder_id))
    if actor.key == f"staff:{account_id}":
        raise InvalidInput("you cannot change your own role", code="own_account")
    async with ctx.uow() as uow:
        await _check_links(uow.session, None, hr_policyholder_id)
    view, _ = await _change(
        ctx,
        actor,
        account_id,
        "change_role",
        end_sessions=True,
        values={"role": role, "specialties": specialties, "hr_policyholder_id": hr_policyholder_id},
    )
    return view


async def update_profile(
    ctx: ServiceContext,
    actor: Actor,
    account_id: int,
    *,
    full_name: str | None = None,
    timezone: str | None = None,
    specialties: list[str] | None = None,
) -> StaffView:
    """Name, time zone and (for a doctor) specialties; access is unchanged, so sessions stay."""
    values: dict[str, object] = {}
    async with ctx.uow() as uow:
        account = await uow.session.get(StaffAccount, account_id)
        if account is None:
            raise NotFound("no such staff account")
        if specialties is not None:
            _refuse(
                check_account(
                    username=None,
                    role=account.role,
                    specialties=sorted(set(specialties)),
                    hr_policyholder_id=account.hr_policyholder_id,
                )
            )
            values["specialties"] = sorted(set(specialties))
        await _check_links(uow.session, timezone, None)
    if full_name is not None and full_name.strip():
        values["full_name"] = full_name.strip()
    if timezone is not None:
        values["timezone"] = timezone
    view, _ = await _change(ctx, actor, account_id, "update", end_sessions=False, values=values)
    return view


async def end_sessions(ctx: ServiceContext, actor: Actor, account_id: int) -> StaffView:
    """Log the account out everywhere (stolen device, shared screen)."""
    view, _ = await _change(ctx, actor, account_id, "end_sessions", end_sessions=True)
    return view


async def set_password_with_code(ctx: ServiceContext, *, code: str, password: str) -> StaffView:
    """The person sets their own password with their one-time code (single use, 72 hours).

    Raises:
        Unauthorized: unknown, used or expired code (one message for all).
        InvalidInput: the password is too short, too long or contains the username.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session = uow.session
        token = await session.get(PasswordSetToken, hash_token(code), with_for_update=True)
        if token is None or token.used_at is not None or token.expires_at <= now:
            raise Unauthorized("the code is not valid or has expired; ask an admin for a new one", code="invalid_code")
        account = await session.get(StaffAccount, token.staff_account_id, with_for_update=True)
        if account is None or not account.is_active:
            raise Unauthorized("the code is not valid or has expired; ask an admin for a new one", code="invalid_code")
        problems = check_new_password(password, account.username)
        if problems:
            raise InvalidInput(
                "the password is not acceptable: " + "; ".join(p for _, p in problems),
                code="weak_password",
                details={"problems": [{"field": f, "problem": p} for f, p in problems]},
            )
        token.used_at = now
        account.password_hash = hash_password(password)
        account.must_change_password = False
        own = Actor(key=f"staff:{account.id}", role=account.role)
        await record_txn(
            session,
            own,
            now,
            entity_type="staff_account",
            entity_id=account.id,
            action="password_set",
            changes={"password": [None, "(set by the user)"]},
        )
        await audit_txn(
            session, own, now, action="staff.password_set", resource_type="staff_account", resource_id=account.id
        )
        await uow.commit()
    return _view(account)


async def get_account(ctx: ServiceContext, account_id: int) -> StaffView:
    """One account."""
    async with ctx.uow() as uow:
        account = await uow.session.get(StaffAccount, account_id)
        if account is None:
            raise NotFound("no such staff account")
        return _view(account)
