"""Encryption and authentication inside the stack (checklist I1): the app to PostgreSQL and Redis.

The test starts its own PostgreSQL cluster (``initdb``, TLS on, plain TCP refused by
``pg_hba.conf``) and its own Redis through the repository's ``deploy/redis-start.sh`` (TLS only,
default user off, one ACL user limited to the app's prefix), with certificates from
``deploy/make_certs.py``, all on free loopback ports. ``telemed migrate`` is started before the
database is up and must wait for it; then ``telemed serve`` runs in production mode with
``sslmode=verify-full`` and ``rediss://`` and reports both reachable.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as redis_asyncio
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError
from sqlalchemy import text

from server.config import Settings
from server.db.engine import make_engine
from server.realtime.seats import RedisSeats
from tests.backends import POSTGRES_URL, REQUIRE_REAL, require_real_services
from tests.deploy.make_certs_import import make_certs
from tests.deploy.stack import DEPLOY, REPO, FakeSmsGateway, TelemedProcess, free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]

REDIS_PASSWORD = uuid.uuid4().hex
PREFIX = "telemed"


def _pg_binary(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    return found[-1]


def _needs(binary: str) -> None:
    if not binary or not Path(binary).exists():
        if REQUIRE_REAL:
            pytest.fail(f"{binary or 'a PostgreSQL/Redis binary'} is required in this run")
        pytest.skip("needs PostgreSQL server binaries and redis-server")


@dataclass
class Servers:
    certs: Path
    pg_port: int
    pg_data: Path
    redis_port: int
    workdir: Path


def _as_postgres() -> dict[str, object]:
    """initdb and postgres refuse to run as root: run them as the ``postgres`` user then."""
    return {"user": "postgres"} if os.geteuid() == 0 else {}


@pytest.fixture
def servers() -> Iterator[Servers]:
    """Certificates, an initialised (not yet started) PostgreSQL cluster and a running TLS Redis.

    Part of CI's real run (like the other multi-server tests), not of the quick embedded one.
    """
    if not POSTGRES_URL:
        require_real_services("the real-services run (PostgreSQL server binaries, redis-server)")
    initdb, redis_server = _pg_binary("initdb"), shutil.which("redis-server") or ""
    _needs(initdb)
    _needs(redis_server)
    workdir = Path(tempfile.mkdtemp(prefix="telemed-internal-tls-"))
    workdir.chmod(0o755)
    redis_process = None
    try:
        certs = workdir / "certs"
        make_certs(certs, ["localhost"], ["127.0.0.1"])
        for path in certs.iterdir():
            path.chmod(0o644 if path.suffix == ".pem" else 0o600)
        pg_data = workdir / "pg"
        pg_data.mkdir()
        for name in ("server.pem", "server.key"):
            shutil.copy(certs / name, pg_data.parent / f"pg-{name}")
        if os.geteuid() == 0:
            shutil.chown(pg_data, "postgres", "postgres")
            for name in ("server.pem", "server.key"):
                shutil.chown(pg_data.parent / f"pg-{name}", "postgres", "postgres")
        subprocess.run(
            [initdb, "-D", str(pg_data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            **_as_postgres(),  # type: ignore[arg-type]
        )
        pg_port = free_port()
        with (pg_data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {pg_port}\nunix_socket_directories = '{pg_data}'\n"
                f"ssl = on\nssl_cert_file = '{workdir}/pg-server.pem'\nssl_key_file = '{workdir}/pg-server.key'\n"
                "ssl_min_protocol_version = 'TLSv1.2'\nfsync = off\n"
            )
        # TLS or nothing over TCP (hostnossl is refused).
        (pg_data / "pg_hba.conf").write_text(
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
        )
        (workdir / "redis-password").write_text(REDIS_PASSWORD + "\n")
        redis_port = free_port()
        env = {
            **os.environ,
            "REDIS_PASSWORD_FILE": str(workdir / "redis-password"),
            "REDIS_TLS_DIR": str(certs),
            "REDIS_TLS_PORT": str(redis_port),
            "REDIS_ACL_FILE": str(workdir / "users.acl"),
            "REDIS_PREFIX": PREFIX,
            "REDIS_BIND": "127.0.0.1",
        }
        with (workdir / "redis.log").open("wb") as log:
            redis_process = subprocess.Popen(
                ["/bin/sh", str(DEPLOY / "redis-start.sh"), "--dir", str(workdir)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        yield Servers(certs, pg_port, pg_data, redis_port, workdir)
    finally:
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)
        pg_ctl = _pg_binary("pg_ctl")
        if (workdir / "pg" / "postmaster.pid").exists():
            subprocess.run(
                [pg_ctl, "-D", str(workdir / "pg"), "-m", "immediate", "stop"],
                capture_output=True,
                check=False,
                **_as_postgres(),  # type: ignore[arg-type]
            )
        shutil.rmtree(workdir, ignore_errors=True)


def start_postgres(servers: Servers) -> None:
    log = servers.pg_data / "server.log"  # inside the cluster's folder: the postgres user may write there
    started = subprocess.run(
        [_pg_binary("pg_ctl"), "-D", str(servers.pg_data), "-l", str(log), "-w", "start"],
        check=False,
        capture_output=True,
        **_as_postgres(),  # type: ignore[arg-type]
    )
    assert started.returncode == 0, (started.stderr, log.read_text() if log.exists() else "")


def app_environment(servers: Servers, gateway: FakeSmsGateway) -> dict[str, str]:
    """Production settings with TLS to both backends, as compose sets them."""
    secrets = servers.workdir / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "jwt").write_text(uuid.uuid4().hex * 2)
    (secrets / "pepper").write_text(uuid.uuid4().hex * 2)
    env = {key: value for key, value in os.environ.items() if not key.startswith("TELEMED_")}
    env.update(
        {
            "TELEMED_ENVIRONMENT": "production",
            "TELEMED_PUBLIC_URL": "https://telemed.example",
            "TELEMED_DATABASE_HOST": "localhost",
            "TELEMED_DATABASE_PORT": str(servers.pg_port),
            "TELEMED_DATABASE_NAME": "postgres",
            "TELEMED_DATABASE_USER": "postgres",
            "TELEMED_DATABASE_SSLMODE": "verify-full",
            "TELEMED_DATABASE_SSLROOTCERT": str(servers.certs / "ca.pem"),
            "TELEMED_DATABASE_WAIT_SECONDS": "60",
            "TELEMED_REDIS_URL": f"rediss://localhost:{servers.redis_port}/0",
            "TELEMED_REDIS_USERNAME": "telemed",
            "TELEMED_REDIS_PASSWORD_FILE": str(servers.workdir / "redis-password"),
            "TELEMED_REDIS_CA_FILE": str(servers.certs / "ca.pem"),
            "TELEMED_REDIS_PREFIX": PREFIX,
            "TELEMED_JWT_SECRET_FILE": str(secrets / "jwt"),
            "TELEMED_OTP_PEPPER_FILE": str(secrets / "pepper"),
            "TELEMED_CODE_SENDER": "http",
            "TELEMED_SMS_URL": gateway.url,
            "TELEMED_HOST": "127.0.0.1",
            "TELEMED_METRICS_HOST": "127.0.0.1",
            "TELEMED_DATA_DIR": str(servers.workdir / "data"),
            "TELEMED_LOG_JSON": "true",
        }
    )
    return env


@pytest.fixture
async def gateway() -> AsyncIterator[FakeSmsGateway]:
    fake = FakeSmsGateway(token="")
    await fake.start()
    yield fake
    await fake.stop()


async def test_app_reaches_postgres_and_redis_only_over_verified_tls_I1(
    servers: Servers, gateway: FakeSmsGateway
) -> None:
    await wait_for_port(servers.redis_port)
    env = app_environment(servers, gateway)
    # The migration job starts first, as in compose when the database is still initialising.
    migrate_log = servers.workdir / "migrate.log"
    with migrate_log.open("wb") as log:
        migrate = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "migrate"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    async with asyncio.timeout(60):
        while b"database not reachable yet" not in migrate_log.read_bytes():
            assert migrate.poll() is None, migrate_log.read_text()
            await asyncio.sleep(0.1)
    assert migrate.poll() is None, "telemed migrate gave up instead of waiting for the database"
    start_postgres(servers)
    returncode = await asyncio.to_thread(migrate.wait, 120)
    assert returncode == 0, migrate_log.read_text()[-3000:]
    assert "database migrated" in migrate_log.read_text()

    # The URL the app builds from those settings, used here to look from the server's side.
    database_url = Settings(
        database_host="localhost",
        database_port=servers.pg_port,
        database_name="postgres",
        database_user="postgres",
        database_sslmode="verify-full",
        database_sslrootcert=servers.certs / "ca.pem",
    ).effective_database_url
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            encrypted = await connection.scalar(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            version = await connection.scalar(text("SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
            migrated = await connection.scalar(text("SELECT count(*) FROM alembic_version"))
        assert encrypted is True and version in ("TLSv1.2", "TLSv1.3")
        assert migrated == 1
    finally:
        await engine.dispose()
    plain = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{servers.pg_port}/postgres?sslmode=disable")
    try:
        with pytest.raises(Exception, match=r"pg_hba|rejects|no encryption"):
            async with plain.connect() as connection:
                await connection.execute(text("SELECT 1"))
    finally:
        await plain.dispose()

    app = TelemedProcess(env, servers.workdir / "app.log", "app")
    try:
        await app.wait_ready()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{app.metrics_port}/readyz") as response,
        ):
            body = await response.json()
        assert body["checks"] == {"database": "ok", "bus": "ok"}
        assert (body["database_backend"], body["bus_backend"]) == ("postgresql", "redis")
    finally:
        app.stop()


async def test_redis_acl_user_is_limited_to_the_app_prefix_I1(servers: Servers) -> None:
    await wait_for_port(servers.redis_port)
    ca = str(servers.certs / "ca.pem")
    client = redis_asyncio.Redis(
        host="localhost",
        port=servers.redis_port,
        username="telemed",
        password=REDIS_PASSWORD,
        ssl=True,
        ssl_ca_certs=ca,
        decode_responses=True,
    )
    try:
        await client.set(f"{PREFIX}:probe", "1")
        assert await client.get(f"{PREFIX}:probe") == "1"
        await client.publish(f"{PREFIX}:channel", "hint")
        with pytest.raises(NoPermissionError):
            await client.set("someone-else:probe", "1")
        with pytest.raises(NoPermissionError):
            await client.publish("someone-else:channel", "x")
        # The socket-seat Lua scripts (B8) run under the ACL: a refused script would make take()
        # fall back to "granted", so the second seat at limit 1 being refused proves they ran.
        seats = RedisSeats(client, PREFIX)
        assert await seats.take("insured:1", "seat-a", 1) is True
        assert await seats.take("insured:1", "seat-b", 1) is False
        assert await client.zcard(f"{PREFIX}:ws-seats:insured:1") == 1
        for dangerous in (("FLUSHALL",), ("CONFIG", "GET", "*"), ("KEYS", "*")):
            with pytest.raises(NoPermissionError):
                await client.execute_command(*dangerous)
    finally:
        await client.aclose()
    # The default user is off, wrong passwords fail, and there is no plaintext port.
    for username, password in ((None, None), ("telemed", "wrong")):
        anonymous = redis_asyncio.Redis(
            host="localhost", port=servers.redis_port, username=username, password=password, ssl=True, ssl_ca_certs=ca
        )
        try:
            with pytest.raises((AuthenticationError, NoPermissionError, RedisError)):
                await anonymous.set(f"{PREFIX}:probe", "2")
        finally:
            await anonymous.aclose()
    plaintext = redis_asyncio.Redis(host="127.0.0.1", port=servers.redis_port, socket_timeout=3)
    try:
        with pytest.raises(RedisError):
            await plaintext.ping()
    finally:
        await plaintext.aclose()
