"""The chat batch store on the test backend (PostgreSQL's one statement or the portable transaction).

Both paths must keep exactly what the participation rule allows (checklist C5), recognise resends,
number new messages after each consultation's ``last_seq`` and advance it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FixedClock
from server.db.models import ChatAttachment, Consultation, InsuredPerson, StaffAccount
from server.db.repositories.chat import BatchDatabase, BatchItem
from tests.factories import Factories


@pytest.fixture
async def store(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[BatchDatabase]:
    database = BatchDatabase(session_factory)
    yield database
    await database.close()


def _patient_says(c: Consultation, cmid: str, body: str = "hello", attachment_id: int | None = None) -> BatchItem:
    kind = "attachment" if attachment_id is not None else "text"
    pid = c.insured_person_id
    return (c.id, f"insured:{pid}", "insured", "insured", pid, cmid, kind, body, attachment_id)


def _doctor_says(c: Consultation, doctor: StaffAccount, cmid: str) -> BatchItem:
    return (c.id, f"staff:{doctor.id}", "doctor", "staff", doctor.id, cmid, "text", "hi", None)


async def _last_seq(session_factory: async_sessionmaker[AsyncSession], consultation_id: int) -> int:
    async with session_factory() as session:
        stmt = select(Consultation.last_seq).where(Consultation.id == consultation_id)
        return int((await session.execute(stmt)).scalar_one())


async def _pair(factories: Factories, status: str = "active") -> tuple[Consultation, InsuredPerson, StaffAccount]:
    patient = await factories.insured()
    doctor = await factories.staff("doctor")
    return await factories.consultation(patient, doctor, status=status), patient, doctor


async def test_new_messages_are_numbered_per_consultation_in_order(
    store: BatchDatabase, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    first, _, doctor = await _pair(factories)
    second, _, _ = await _pair(factories)
    result = await store.write_batch(
        [_patient_says(first, "a"), _patient_says(second, "a"), _doctor_says(first, doctor, "b")], clock.now()
    )
    seqs = {key: seq for key, (_, seq) in result.inserted.items()}
    assert seqs == {
        (first.id, f"insured:{first.insured_person_id}", "a"): 1,
        (second.id, f"insured:{second.insured_person_id}", "a"): 1,
        (first.id, f"staff:{doctor.id}", "b"): 2,
    }
    assert await _last_seq(session_factory, first.id) == 2
    assert await _last_seq(session_factory, second.id) == 1
    assert set(result.accesses) == {first.id, second.id}


async def test_a_resend_is_not_stored_twice_in_one_batch_or_across_batches(
    store: BatchDatabase, factories: Factories, clock: FixedClock, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    consultation, _, _ = await _pair(factories)
    once = await store.write_batch([_patient_says(consultation, "m1"), _patient_says(consultation, "m1")], clock.now())
    assert len(once.inserted) == 1 and once.sent == []
    again = await store.write_batch([_patient_says(consultation, "m1")], clock.now())
    assert again.inserted == {}
    assert [(row.client_message_id, row.seq) for row in again.sent] == [("m1", 1)]
    assert await _last_seq(session_factory, consultation.id) == 1


async def test_only_what_the_participation_rule_allows_is_stored_c5(
    store: BatchDatabase, factories: Factories, clock: FixedClock
) -> None:
    """A stranger, the doctor before the consultation is active, anyone after it ended: nothing stored."""
    waiting, _, waiting_doctor = await _pair(factories, status="offered")
    ended, _, _ = await _pair(factories, status="completed")
    stranger = await factories.insured()
    stranger_item: BatchItem = (
        waiting.id,
        f"insured:{stranger.id}",
        "insured",
        "insured",
        stranger.id,
        "s",
        "text",
        "x",
        None,
    )
    result = await store.write_batch(
        [
            stranger_item,
            _doctor_says(waiting, waiting_doctor, "d"),
            _patient_says(ended, "late"),
            _patient_says(waiting, "ok"),  # the patient may add details while waiting
        ],
        clock.now(),
    )
    assert list(result.inserted) == [(waiting.id, f"insured:{waiting.insured_person_id}", "ok")]


async def test_an_attachment_must_be_the_senders_own_in_this_consultation(
    store: BatchDatabase, factories: Factories, clock: FixedClock
) -> None:
    consultation, patient, _ = await _pair(factories)
    other, _, _ = await _pair(factories)
    own = ChatAttachment(
        consultation_id=consultation.id,
        uploader_key=f"insured:{patient.id}",
        mime="image/png",
        size_bytes=3,
        sha256="0" * 64,
        content=b"png",
        created_at=clock.now(),
    )
    elsewhere = ChatAttachment(
        consultation_id=other.id,
        uploader_key=f"insured:{other.insured_person_id}",
        mime="image/png",
        size_bytes=3,
        sha256="1" * 64,
        content=b"png",
        created_at=clock.now(),
    )
    await factories.add(own, elsewhere)
    result = await store.write_batch(
        [
            _patient_says(consultation, "mine", attachment_id=own.id),
            _patient_says(consultation, "theirs", attachment_id=elsewhere.id),
        ],
        clock.now(),
    )
    assert [key[2] for key in result.inserted] == ["mine"]
