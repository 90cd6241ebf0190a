"""Dispatcher person search: by birth date and phone too, one page at a time, in a stable order."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp.test_utils import TestClient

from tests.factories import Factories, bearer


async def test_search_pages_through_every_match_and_finds_by_birth_date_and_phone(
    client: TestClient[Any, Any], factories: Factories
) -> None:
    dispatcher = bearer(await factories.login_staff(client, await factories.staff("dispatcher")))
    policy = await factories.policy()
    persons = [
        await factories.insured(
            policy=policy,
            full_name=f"Anna Petrova {i:02d}",
            phone=f"+7916000{i:04d}",
            birth_date=date(1990, 1, 1 + i % 3),
        )
        for i in range(25)
    ]
    seen: list[int] = []
    for offset in (0, 10, 20):
        page = await client.get(f"/api/dispatch/persons?name=petrova&limit=10&offset={offset}", headers=dispatcher)
        assert page.status == 200
        seen += [p["id"] for p in await page.json()]
    assert seen == [p.id for p in persons]  # 25 matches, no gap, no repeat (today's search stopped at 20)

    by_birth = await (
        await client.get("/api/dispatch/persons?birth_date=1990-01-02&limit=100", headers=dispatcher)
    ).json()
    assert {p["id"] for p in by_birth} == {p.id for i, p in enumerate(persons) if i % 3 == 1}
    by_phone = await (await client.get("/api/dispatch/persons?phone=8%20(916)%20000-00-07", headers=dispatcher)).json()
    assert [p["id"] for p in by_phone] == [persons[7].id]  # typed as heard, compared in E.164
    bad_phone = await client.get("/api/dispatch/persons?phone=12345", headers=dispatcher)
    assert bad_phone.status == 400
    too_big = await client.get("/api/dispatch/persons?name=petrova&limit=1000", headers=dispatcher)
    assert too_big.status == 422
