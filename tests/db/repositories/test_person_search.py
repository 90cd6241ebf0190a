"""The dispatcher's person search by phone and by birth date reads an index, not the whole table (issue 16, item 6).

On PostgreSQL the plan of the real query (``coverage_repo.find_persons``) is checked with EXPLAIN over a
few thousand persons; on SQLite ``EXPLAIN QUERY PLAN`` must name the index too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Select, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.db.models import InsuredPerson, Policy
from server.db.repositories import coverage as coverage_repo
from server.domain.insured_number import new_insured_numbers
from tests.factories import Factories

PERSONS = 3000


async def _fill(factories: Factories, session_factory: async_sessionmaker[AsyncSession]) -> InsuredPerson:
    first = await factories.insured()
    now = datetime.now(UTC)
    numbers = new_insured_numbers(PERSONS)
    rows = [
        {
            "policy_id": first.policy_id,
            "insured_number": numbers[i],
            "full_name": f"Person {i:05d}",
            "birth_date": date(1950, 1, 1) + timedelta(days=i * 7),
            "phone": f"+7916{i:07d}",
            "city": "Москва",
            "service_type": "dispatcher",
            "is_active": True,
            "created_at": now,
        }
        for i in range(PERSONS)
    ]
    async with session_factory() as session:
        await session.execute(insert(InsuredPerson), rows)
        await session.commit()
    return first


def _search(**criteria: object) -> Select[int]:
    """The statement ``find_persons`` runs (same filters and order) for EXPLAIN."""
    stmt = select(InsuredPerson.id).join(Policy, Policy.id == InsuredPerson.policy_id)
    if "phone" in criteria:
        stmt = stmt.where(InsuredPerson.phone == criteria["phone"])
    if "birth_date" in criteria:
        stmt = stmt.where(InsuredPerson.birth_date == criteria["birth_date"])
    return stmt.order_by(InsuredPerson.full_name, InsuredPerson.id).limit(20)


async def _plan(engine: AsyncEngine, stmt: Select[int]) -> str:
    async with engine.connect() as connection:
        postgres = connection.dialect.name == "postgresql"
        sql = str(stmt.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        if postgres:
            await connection.execute(text("ANALYZE insured_persons"))
            rows = await connection.execute(text("EXPLAIN " + sql))
        else:
            await connection.execute(text("ANALYZE"))
            rows = await connection.execute(text("EXPLAIN QUERY PLAN " + sql))
        return "\n".join(" ".join(str(v) for v in row) for row in rows)


async def test_search_by_phone_and_by_birth_date_uses_their_indexes(
    factories: Factories, session_factory: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await _fill(factories, session_factory)
    by_phone = await _plan(engine, _search(phone="+79160001234"))
    assert "ix_insured_persons_phone" in by_phone, by_phone
    by_birth = await _plan(engine, _search(birth_date=date(1950, 1, 1) + timedelta(days=700)))
    assert "ix_insured_persons_birth_name" in by_birth, by_birth

    async with session_factory() as session:
        found = await coverage_repo.find_persons(session, phone="+79160001234")
        assert [p.full_name for p, _ in found] == ["Person 01234"]
        found = await coverage_repo.find_persons(session, birth_date=date(1950, 1, 1) + timedelta(days=700))
        assert [p.full_name for p, _ in found] == ["Person 00100"]
