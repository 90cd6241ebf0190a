"""Staff accounts (checklist A6): one-time set-password codes, and disable/reset/role/sessions effective at once."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.db.models import AuditEvent, RecordChange
from server.domain.errors import Conflict, InvalidInput, Unauthorized
from server.services.context import ServiceContext
from server.services.records import staff
from tests.factories import Factories, bearer
from tests.services.records.support import ADMIN

NEW_PASSWORD = "a-brand-new-long-password"


async def _login(client: TestClient[Any, Any], username: str, password: str) -> tuple[int, dict[str, Any]]:
    response = await client.post("/api/auth/login", json={"username": username, "password": password})
    return response.status, await response.json()


async def test_a_new_doctor_sets_their_own_password_with_a_single_use_code(
    ctx: ServiceContext, client: TestClient[Any, Any]
) -> None:
    created = await staff.create_account(
        ctx,
        ADMIN,
        username="dr.ivanova",
        role="doctor",
        full_name="Иванова Анна",
        specialties=["cardiology"],
        timezone="Asia/Yekaterinburg",
    )
    assert created.account.must_change_password and created.account.timezone == "Asia/Yekaterinburg"
    assert created.set_password.link.endswith(created.set_password.code)
    with pytest.raises(InvalidInput):
        await staff.set_password_with_code(ctx, code=created.set_password.code, password="short")
    await staff.set_password_with_code(ctx, code=created.set_password.code, password=NEW_PASSWORD)
    with pytest.raises(Unauthorized):
        await staff.set_password_with_code(ctx, code=created.set_password.code, password=NEW_PASSWORD + "x")
    status, _ = await _login(client, "dr.ivanova", NEW_PASSWORD)
    assert status == 200


async def test_account_rules_and_duplicates(ctx: ServiceContext, factories: Factories) -> None:
    with pytest.raises(InvalidInput) as no_holder:
        await staff.create_account(ctx, ADMIN, username="hr.one", role="hr", full_name="HR")
    assert no_holder.value.details["problems"][0]["field"] == "hr_policyholder_id"
    with pytest.raises(InvalidInput):
        await staff.create_account(ctx, ADMIN, username="dr.x", role="doctor", full_name="X", specialties=[])
    with pytest.raises(InvalidInput):
        await staff.create_account(
            ctx,
            ADMIN,
            username="dr.y",
            role="doctor",
            full_name="Y",
            specialties=["general_practice"],
            timezone="Mars/Olympus",
        )
    holder = await factories.policyholder()
    await staff.create_account(ctx, ADMIN, username="hr.one", role="hr", full_name="HR", hr_policyholder_id=holder.id)
    with pytest.raises(Conflict):
        await staff.create_account(ctx, ADMIN, username="hr.one", role="dispatcher", full_name="Other")


async def test_disable_reset_role_change_and_end_sessions_stop_tokens_at_once_and_are_audited(
    ctx: ServiceContext,
    client: TestClient[Any, Any],
    factories: Factories,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    dispatcher = await factories.staff("dispatcher")
    for action in ("end_sessions", "change_role", "reset_password", "disable"):
        tokens = await factories.login_staff(client, dispatcher) if action != "disable" else None
        if action == "disable":
            # after the reset, log in with the new password set from the code
            status, tokens = await _login(client, dispatcher.username, NEW_PASSWORD)
            assert status == 200
        assert (await client.get("/api/me", headers=bearer(tokens))).status == 200
        if action == "end_sessions":
            await staff.end_sessions(ctx, ADMIN, dispatcher.id)
        elif action == "change_role":
            await staff.change_role(ctx, ADMIN, dispatcher.id, role="admin")
        elif action == "reset_password":
            reset = await staff.reset_password(ctx, ADMIN, dispatcher.id)
        else:
            await staff.disable_account(ctx, ADMIN, dispatcher.id)
        assert (await client.get("/api/me", headers=bearer(tokens))).status == 401, action
        if action == "change_role":
            await staff.change_role(ctx, ADMIN, dispatcher.id, role="dispatcher")
        if action == "reset_password":
            from tests.factories import STAFF_PASSWORD

            assert (await _login(client, dispatcher.username, STAFF_PASSWORD))[0] == 401
            await staff.set_password_with_code(ctx, code=reset.set_password.code, password=NEW_PASSWORD)
    assert (await _login(client, dispatcher.username, NEW_PASSWORD))[0] == 401  # disabled
    async with session_factory() as session:
        actions = (
            await session.scalars(
                select(RecordChange.action)
                .where(RecordChange.entity_id == dispatcher.id, RecordChange.entity_type == "staff_account")
                .order_by(RecordChange.id)
            )
        ).all()
        audited = set((await session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("staff.%")))).all())
    assert actions == ["end_sessions", "change_role", "change_role", "reset_password", "password_set", "disable"]
    assert {"staff.end_sessions", "staff.change_role", "staff.reset_password", "staff.disable"} <= audited
