"""Fixtures of the fault suite: one private PostgreSQL cluster and one private Redis per session, a scene per test.

The scene is a fresh database in that cluster with a patient, a doctor and their active
consultation, a private Redis prefix and a data directory (the dev SMS outbox is read from it).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.clock import FixedClock
from server.db.engine import make_engine, make_session_factory
from tests.factories import Factories
from tests.fakes import RecordingSender
from tests.faults.harness import PgCluster, RedisServer, new_database, require_fault_suite


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A throwaway PostgreSQL cluster on a free port (never the shared 5432)."""
    require_fault_suite()
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.cleanup()


def _private_dir(prefix: str) -> Path:
    """A directory of our own: pytest's basetemp is shared by every root pytest on this machine, and
    each session prunes the older ones, so another engineer's run could delete a running test's files."""
    return Path(tempfile.mkdtemp(prefix=prefix))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A private redis-server on a free port (never the shared 6379)."""
    require_fault_suite()
    root = _private_dir("telemed-faults-redis-")
    server = RedisServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Scene:
    """One test's database, prefix and people."""

    database_url: str
    redis_prefix: str
    data_dir: Path
    factories: Factories
    patient_id: int
    policy_number: str
    birth_date: str
    doctor_id: int
    doctor_username: str
    consultation_id: int


@pytest.fixture
async def scene(pg_cluster: PgCluster, redis_server: RedisServer) -> AsyncIterator[Scene]:
    """A fresh migrated database with a patient, a doctor and their active consultation."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()  # a test that failed while Redis was down
    root = _private_dir("telemed-faults-scene-")
    url = await new_database(pg_cluster)
    engine = make_engine(url)
    factories = Factories(make_session_factory(engine), FixedClock(datetime.now(UTC)), RecordingSender())
    try:
        patient = await factories.insured()
        doctor = await factories.staff("doctor")
        consultation = await factories.consultation(patient, doctor, status="active")
        yield Scene(
            database_url=url,
            redis_prefix=f"faults-{uuid.uuid4().hex[:10]}",
            data_dir=root / "data",
            factories=factories,
            patient_id=patient.id,
            policy_number=await factories.policy_number_of(patient),
            birth_date=patient.birth_date.isoformat(),
            doctor_id=doctor.id,
            doctor_username=doctor.username,
            consultation_id=consultation.id,
        )
    finally:
        await engine.dispose()
        shutil.rmtree(root, ignore_errors=True)
