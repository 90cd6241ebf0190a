"""Authentication use cases: policy login with a one-time code, staff login, refresh, logout.

Checklist A5-A9: codes are single use and bound to their challenge, the response for an
unknown policy is the same as for a known one, refresh tokens rotate with reuse detection,
and a revoked session stops its access tokens and WebSockets at once.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from server.channels import EVENT_SESSION_REVOKED, session_channel
from server.db.models import (
    AuthSession,
    InsuredPerson,
    LoginChallenge,
    LoginFailure,
    Policy,
    RefreshToken,
    StaffAccount,
)
from server.db.models import WebSocketTicket as WebSocketTicketRow
from server.db.repositories import accounts as repo
from server.domain import login_throttle as throttle
from server.domain.errors import Conflict, Forbidden, RateLimited, Unauthorized
from server.domain.insured_list import removed_by
from server.security import otp
from server.security.passwords import hash_password, needs_rehash, verify_password
from server.security.tokens import hash_token, new_opaque_token, open_successor, seal_successor
from server.services.context import ServiceContext
from server.services.identity import ROLE_INSURED, Principal

log = logging.getLogger(__name__)
auth_log = logging.getLogger("telemed.auth")
"""Authentication events (checklist D5): what happened, to which account id, from where; never a
username, policy number, code, password or token."""

WRONG_CREDENTIALS: Final = "these credentials are not valid"
WRONG_CODE: Final = "the code is not valid or has expired; request a new one"


@dataclass(frozen=True, slots=True)
class LoginStarted:
    """The answer to a policy-login start; identical whether or not the policy exists (A9)."""

    challenge_id: str
    expires_in: int
    delivery: str


@dataclass(frozen=True, slots=True)
class TokenPair:
    """What a successful login or refresh returns."""

    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime
    role: str
    session_id: str


async def start_policy_login(
    ctx: ServiceContext,
    *,
    birth_date: date,
    client_address: str,
    policy_number: str | None = None,
    insured_number: str | None = None,
    phone_last_digits: str | None = None,
) -> LoginStarted:
    """Start a login by the personal insured number (or the policy number) and birth date.

    A one-time code goes to the phone on file if exactly one active person with a valid policy
    matches. Several people on one corporate policy can share a birth date: then the policy
    number alone does not say who it is, and the caller is asked for the insured number on the
    card or the last four digits of the phone on file, never guessed (issue 11, item 6).

    Attempts are counted per person and per client address, with a per-policy ceiling that grows
    with the persons on the policy, so a flood against one policy slows the attacker, not the
    employees (A8).

    Raises:
        RateLimited: too many starts for this person, this policy or from this address.
        AmbiguousLogin: the policy number and birth date match several persons.
    """
    if (policy_number is None) == (insured_number is None):
        raise ValueError("give exactly one of policy_number and insured_number")
    now = ctx.clock.now()
    settings = ctx.settings
    hour_ago = now - timedelta(hours=1)
    challenge_id = secrets.token_urlsafe(24)
    code = otp.new_code()
    chosen: tuple[InsuredPerson, Policy] | None = None
    ambiguous = False
    async with ctx.uow() as uow:
        candidates = await repo.find_login_candidates(
            uow.session, birth_date=birth_date, policy_number=policy_number, insured_number=insured_number
        )
        if phone_last_digits is not None:
            candidates = [(p, pol) for p, pol in candidates if _phone_digits(p.phone).endswith(phone_last_digits)]
        if len(candidates) == 1:
            chosen = candidates[0]
        elif len(candidates) > 1:
            ambiguous = True
        policy_key = chosen[1].number if chosen is not None else (policy_number or f"IN:{insured_number}")
        person_key = (f"insured:{chosen[0].id}" if chosen is not None else f"{policy_key}:{birth_date.isoformat()}")[
            :80
        ]
        persons_on_policy = await repo.count_persons_on_policy(uow.session, policy_key)
        # Every person's own quota plus one more for mistyped dates: grows with the policy.
        policy_ceiling = max(
            settings.login_starts_per_policy_per_hour,
            settings.login_starts_per_person_per_hour * (persons_on_policy + 1),
        )
        counts = (
            await repo.count_challenges_since(uow.session, since=hour_ago, person_key=person_key),
            await repo.count_challenges_since(uow.session, since=hour_ago, policy_number=policy_key),
            await repo.count_challenges_since(uow.session, since=hour_ago, client_address=client_address),
        )
        limits = (settings.login_starts_per_person_per_hour, policy_ceiling, settings.login_starts_per_address_per_hour)
        if any(count >= limit for count, limit in zip(counts, limits, strict=True)):
            ctx.metrics.logins.labels("policy_start", "rate_limited").inc()
            auth_log.warning("auth.policy_start_rate_limited address=%s", client_address)
            raise RateLimited("too many login attempts; try again later")
        # Removed from the employer's list: no login from the removal date, even before the daily sweep ran.
        deliverable = (
            chosen is not None
            and chosen[1].starts_on <= now.date() <= chosen[1].ends_on
            and not removed_by(chosen[0].removed_on, now.date())
        )
        uow.session.add(
            LoginChallenge(
                id=challenge_id,
                policy_number=policy_key[:40],
                person_key=person_key,
                insured_person_id=chosen[0].id if (chosen is not None and deliverable) else None,
                # For an unknown person the code is never sent, so no one can ever match it.
                code_hash=otp.hash_code(challenge_id, code if deliverable else secrets.token_hex(16), _pepper(ctx)),
                client_address=client_address,
                guesses=0,
                created_at=now,
                expires_at=now + timedelta(seconds=settings.otp_ttl_seconds),
            )
        )
        await uow.commit()
    if ambiguous:
        ctx.metrics.logins.labels("policy_start", "ambiguous").inc()
        raise AmbiguousLogin(
            "several insured persons on this policy have this birth date: log in with the insured number "
            "on your card, or add the last 4 digits of the phone on file as phone_last_digits",
            code="phone_digits_required",
            details={"fields": ["insured_number", "phone_last_digits"]},
        )
    if chosen is not None and deliverable:
        await ctx.code_sender.send(
            chosen[0].phone, f"Telemed login code: {code}. Valid {settings.otp_ttl_seconds // 60} min.", now=now
        )
    ctx.metrics.logins.labels("policy_start", "ok").inc()
    return LoginStarted(challenge_id=challenge_id, expires_in=settings.otp_ttl_seconds, delivery="sms")


def _phone_digits(phone: str) -> str:
    return "".join(c for c in phone if c.isascii() and c.isdigit())


class AmbiguousLogin(Conflict):
    """The policy number and birth date name several persons; the caller must say which."""


def _pepper(ctx: ServiceContext) -> str:
    """The one-time-code HMAC key: its own secret, never the JWT key."""
    return ctx.settings.otp_pepper.get_secret_value()


async def verify_policy_login(ctx: ServiceContext, *, challenge_id: str, code: str, client_address: str) -> TokenPair:
    """Exchange a challenge and its code for tokens; every failure looks the same (A9).

    Raises:
        Unauthorized: wrong, expired, reused or over-guessed code, or unknown challenge.
        RateLimited: the account had too many failures in the last hour.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        challenge = await repo.get_challenge_for_update(uow.session, challenge_id)
        if challenge is None:
            ctx.metrics.logins.labels("policy_verify", "failed").inc()
            raise Unauthorized(WRONG_CODE, code="invalid_code")
        # Failures count per person (never per shared policy number: one must not lock out a company).
        account_key = challenge.person_key or f"policy:{challenge.policy_number}"
        failures = await repo.count_failures_since(uow.session, account_key, now - timedelta(hours=1))
        if failures >= ctx.settings.failed_logins_per_account_per_hour:
            raise RateLimited("too many failed attempts for this policy; try again later")
        usable = (
            challenge.consumed_at is None
            and challenge.expires_at > now
            and challenge.guesses < ctx.settings.otp_max_guesses
            and challenge.insured_person_id is not None
        )
        challenge.guesses += 1
        matches = otp.codes_equal(challenge.code_hash, otp.hash_code(challenge.id, code, _pepper(ctx)))
        if not (usable and matches):
            uow.session.add(LoginFailure(account_key=account_key, client_address=client_address, created_at=now))
            await uow.commit()
            ctx.metrics.logins.labels("policy_verify", "failed").inc()
            auth_log.info(
                "auth.login_failed kind=policy subject=%s address=%s",
                f"insured:{challenge.insured_person_id}" if challenge.insured_person_id else "unknown",
                client_address,
            )
            raise Unauthorized(WRONG_CODE, code="invalid_code")
        challenge.consumed_at = now
        assert challenge.insured_person_id is not None
        pair = await _open_session(ctx, uow.session, "insured", challenge.insured_person_id, ROLE_INSURED, now)
        await uow.commit()
    ctx.metrics.logins.labels("policy_verify", "ok").inc()
    auth_log.info(
        "auth.login_succeeded kind=policy subject=insured:%s address=%s", challenge.insured_person_id, client_address
    )
    return pair


async def staff_login(ctx: ServiceContext, *, username: str, password: str, client_address: str) -> TokenPair:
    """Staff login by username and Argon2id password; upgrades an outdated hash.

    Raises:
        Unauthorized: unknown user, wrong password or disabled account (one message for all).
        RateLimited: too many failures from this address, or this address must still wait after
            failing for this account (a growing delay, never a hard lock of the account).
    """
    now = ctx.clock.now()
    account_key = f"staff:{username.lower()}"
    hour_ago = now - timedelta(hours=1)
    async with ctx.uow() as uow:
        from_address, _ = await repo.failure_stats_since(uow.session, hour_ago, client_address=client_address)
        if from_address >= ctx.settings.failed_logins_per_address_per_hour:
            auth_log.warning("auth.staff_login_rate_limited scope=address address=%s", client_address)
            raise RateLimited("too many failed logins from this address; try again later", retry_after_seconds=300)
        pair_count, pair_last = await repo.failure_stats_since(
            uow.session, hour_ago, account_key=account_key, client_address=client_address
        )
        overall, overall_last = await repo.failure_stats_since(uow.session, hour_ago, account_key=account_key)
        wait = throttle.required_wait(throttle.FailureHistory(pair_count, pair_last, overall, overall_last), now)
        if wait > timedelta(0):
            auth_log.info("auth.staff_login_delayed address=%s wait_s=%.0f", client_address, wait.total_seconds())
            raise RateLimited(
                "too many failed attempts; wait before trying again",
                retry_after_seconds=math.ceil(wait.total_seconds()),
            )
        account = await repo.get_staff_by_username(uow.session, username)
        ok = verify_password(account.password_hash if account else None, password)
        if account is None or not ok or not account.is_active:
            uow.session.add(LoginFailure(account_key=account_key, client_address=client_address, created_at=now))
            await uow.commit()
            ctx.metrics.logins.labels("staff", "failed").inc()
            auth_log.info(
                "auth.login_failed kind=staff subject=%s address=%s",
                f"staff:{account.id}" if account is not None else "unknown",
                client_address,
            )
            raise Unauthorized(WRONG_CREDENTIALS, code="invalid_credentials")
        if needs_rehash(account.password_hash):
            account.password_hash = hash_password(password)
        pair = await _open_session(ctx, uow.session, "staff", account.id, account.role, now)
        await uow.commit()
    ctx.metrics.logins.labels("staff", "ok").inc()
    auth_log.info("auth.login_succeeded kind=staff subject=staff:%s address=%s", account.id, client_address)
    return pair


async def _open_session(
    ctx: ServiceContext, session: AsyncSession, subject_type: str, subject_id: int, role: str, now: datetime
) -> TokenPair:
    session_id = secrets.token_urlsafe(18)
    expires_at = now + timedelta(hours=ctx.settings.refresh_absolute_hours)
    session.add(
        AuthSession(
            id=session_id,
            subject_type=subject_type,
            subject_id=subject_id,
            role=role,
            created_at=now,
            last_used_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return await _issue_pair(ctx, session, session_id, subject_type, subject_id, role, expires_at, now)


async def _issue_pair(
    ctx: ServiceContext,
    session: AsyncSession,
    session_id: str,
    subject_type: str,
    subject_id: int,
    role: str,
    session_expires_at: datetime,
    now: datetime,
    *,
    refresh: str | None = None,
    store_refresh: bool = True,
) -> TokenPair:
    refresh = refresh or new_opaque_token()
    if store_refresh:
        session.add(RefreshToken(session_id=session_id, token_hash=hash_token(refresh), created_at=now))
    access, access_expires = ctx.tokens.issue_access(
        subject_type=subject_type, subject_id=subject_id, role=role, session_id=session_id, now=now
    )
    return TokenPair(
        access_token=access,
        access_expires_at=access_expires,
        refresh_token=refresh,
        refresh_expires_at=min(session_expires_at, now + timedelta(minutes=ctx.settings.refresh_idle_minutes)),
        role=role,
        session_id=session_id,
    )


async def refresh(ctx: ServiceContext, *, refresh_token: str) -> TokenPair:
    """Rotate a refresh token; reuse of a spent one revokes the whole family (A5).

    A refresh of a token spent less than ``refresh_grace_seconds`` ago (two tabs refreshing at
    once) gets the same successor and a fresh access token instead; later reuse still revokes.

    Raises:
        Unauthorized: unknown, spent, idle-expired or absolutely expired refresh token.
    """
    now = ctx.clock.now()
    token_hash = hash_token(refresh_token)
    successor = new_opaque_token()
    revoked_family: str | None = None
    async with ctx.uow() as uow:
        session_id = await repo.spend_refresh_token(
            uow.session, token_hash, now, successor_sealed=seal_successor(refresh_token, successor)
        )
        existing: str | None = None
        if session_id is None:
            spent = await repo.get_refresh_token(uow.session, token_hash)
            grace = timedelta(seconds=ctx.settings.refresh_grace_seconds)
            if (
                spent is not None
                and spent.used_at is not None
                and spent.successor_sealed is not None
                and now - spent.used_at <= grace
            ):
                session_id, existing = spent.session_id, open_successor(refresh_token, spent.successor_sealed)
            else:
                reused_session = spent.session_id if spent is not None else None
                if reused_session is not None and await repo.revoke_session(
                    uow.session, reused_session, now, "refresh_token_reuse"
                ):
                    revoked_family = reused_session
                    log.warning("refresh token reuse detected; session %s revoked", reused_session)
                    auth_log.warning("auth.refresh_reuse session_revoked=%s", reused_session)
                await uow.commit()
                if revoked_family is not None:
                    await _announce_revocation(ctx, revoked_family, "refresh_token_reuse")
                raise Unauthorized("the session has ended; please log in again", code="invalid_refresh_token")
        auth_session = await uow.session.get(AuthSession, session_id)
        assert auth_session is not None
        idle_limit = timedelta(minutes=ctx.settings.refresh_idle_minutes)
        if (
            auth_session.revoked_at is not None
            or auth_session.expires_at <= now
            or (existing is None and now - auth_session.last_used_at > idle_limit)
            or not await _subject_active(uow.session, auth_session.subject_type, auth_session.subject_id, auth_session)
        ):
            await uow.commit()
            raise Unauthorized("the session has ended; please log in again", code="invalid_refresh_token")
        auth_session.last_used_at = now
        pair = await _issue_pair(
            ctx,
            uow.session,
            auth_session.id,
            auth_session.subject_type,
            auth_session.subject_id,
            auth_session.role,
            auth_session.expires_at,
            now,
            refresh=existing or successor,
            store_refresh=existing is None,
        )
        await uow.commit()
    return pair


async def logout(ctx: ServiceContext, principal: Principal) -> None:
    """End the caller's session: its refresh tokens, access tokens and sockets stop working."""
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        await repo.revoke_session(uow.session, principal.session_id, now, "logout")
        await uow.commit()
    auth_log.info("auth.logout subject=%s", principal.key)
    await _announce_revocation(ctx, principal.session_id, "logout")


async def _announce_revocation(ctx: ServiceContext, session_id: str, reason: str) -> None:
    await ctx.bus.publish(session_channel(session_id), {"type": EVENT_SESSION_REVOKED, "reason": reason})


async def _subject_active(session: AsyncSession, subject_type: str, subject_id: int, auth_session: AuthSession) -> bool:
    subject: StaffAccount | InsuredPerson | None
    if subject_type == "staff":
        subject = await session.get(StaffAccount, subject_id)
        if subject is not None and subject.role != auth_session.role:
            return False
    else:
        subject = await session.get(InsuredPerson, subject_id)
    if subject is None or not subject.is_active:
        return False
    return subject.tokens_valid_after is None or subject.tokens_valid_after <= auth_session.created_at


async def authenticate(ctx: ServiceContext, token: str) -> Principal:
    """Verify an access token and that its session is still live (A6: logout is immediate).

    Raises:
        Unauthorized: bad signature or claims, expired, or the session was revoked.
    """
    now = ctx.clock.now()
    claims = ctx.tokens.verify_access(token, now=now)
    async with ctx.uow() as uow:
        auth_session = await uow.session.get(AuthSession, claims.session_id)
        if (
            auth_session is None
            or auth_session.revoked_at is not None
            or auth_session.expires_at <= now
            or auth_session.subject_type != claims.subject_type
            or auth_session.subject_id != claims.subject_id
            or auth_session.role != claims.role
            or not await _subject_active(uow.session, claims.subject_type, claims.subject_id, auth_session)
        ):
            raise Unauthorized("invalid or expired token", code="invalid_token")
    return Principal(
        subject_type=claims.subject_type,
        subject_id=claims.subject_id,
        role=claims.role,
        session_id=claims.session_id,
        token_expires_at=claims.expires_at,
    )


async def issue_websocket_ticket(ctx: ServiceContext, principal: Principal) -> tuple[str, datetime]:
    """A single-use ticket (at most 60 s) that opens the WebSocket without a token in the URL (B3)."""
    now = ctx.clock.now()
    ticket = new_opaque_token()
    expires_at = now + timedelta(seconds=ctx.settings.ws_ticket_seconds)
    async with ctx.uow() as uow:
        uow.session.add(
            WebSocketTicketRow(
                ticket_hash=hash_token(ticket), session_id=principal.session_id, created_at=now, expires_at=expires_at
            )
        )
        auth_session = await uow.session.get(AuthSession, principal.session_id)
        if auth_session is not None:
            auth_session.last_used_at = now
        await uow.commit()
    return ticket, expires_at


async def redeem_websocket_ticket(ctx: ServiceContext, ticket: str) -> Principal:
    """Spend a ticket and return the live session's principal.

    Raises:
        Unauthorized: unknown, used or expired ticket, or the session is no longer live.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        session_id = await repo.spend_websocket_ticket(uow.session, hash_token(ticket), now)
        await uow.commit()
        if session_id is None:
            raise Unauthorized("the connection ticket is not valid", code="invalid_ticket")
        principal = await session_principal(ctx, session_id)
    if principal is None:
        raise Unauthorized("the connection ticket is not valid", code="invalid_ticket")
    return principal


async def session_principal(ctx: ServiceContext, session_id: str) -> Principal | None:
    """The principal of a live session, or None when revoked, expired or the subject is disabled.

    Sockets call this periodically so that a missed revocation message cannot keep them open.
    """
    now = ctx.clock.now()
    async with ctx.uow() as uow:
        auth_session = await uow.session.get(AuthSession, session_id)
        if (
            auth_session is None
            or auth_session.revoked_at is not None
            or auth_session.expires_at <= now
            or not await _subject_active(uow.session, auth_session.subject_type, auth_session.subject_id, auth_session)
        ):
            return None
        return Principal(
            subject_type=auth_session.subject_type,
            subject_id=auth_session.subject_id,
            role=auth_session.role,
            session_id=auth_session.id,
            token_expires_at=auth_session.expires_at,
        )


async def require_insured(principal: Principal) -> int:
    """The insured person id of the caller, or 403."""
    if principal.subject_type != "insured":
        raise Forbidden("only insured persons may do this", code="wrong_role")
    return principal.subject_id
