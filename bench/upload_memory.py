"""Server memory under hostile image uploads (issue 11 item 11): peak RSS growth of the real server.

Starts the real server in its own process (SQLite), logs in four insured persons, each with an
active consultation, and sends four uploads at once of each kind:

- chat attachments: a 7,070 x 7,070 RGBA PNG (just under the 50-megapixel cap), ~200 KB compressed;
- pass photos: the largest pass photo the format's sides allow, a 5,999 x 6,000 RGBA PNG, then a
  4,499 x 6,000 JPEG;
- chat attachments again: a 3,999 x 4,000 RGBA PNG, the largest PNG still decoded (16 MP).

Between rounds the server's peak (``VmHWM`` in ``/proc/<pid>/status``) is reset through
``/proc/<pid>/clear_refs``; each round prints the statuses, the peak growth over the resident
size before the round and what stays held afterwards. Aim: peak growth under 300 MiB.

    python -m bench.upload_memory
"""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from PIL import Image

from server.clock import FixedClock
from server.db.engine import make_engine, make_session_factory
from server.db.migrate import upgrade
from tests.factories import Factories
from tests.fakes import RecordingSender, outbox_code
from tests.test_multiprocess import ServerProcess

UPLOADS = 4
MIB = 1024 * 1024


def _png(width: int, height: int) -> bytes:
    """A flat RGBA PNG: a few hundred KB on the wire, ``width * height * 4`` bytes decoded."""
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 120, 40, 255)).save(out, format="PNG", compress_level=9)
    return out.getvalue()


def _jpeg(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, format="JPEG", quality=50)
    return out.getvalue()


def _status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


async def _seed(url: str) -> list[tuple[str, str, str, int]]:
    """Four persons with an active consultation each: (insured number, birth date, phone, consultation id)."""
    engine = make_engine(url)
    factories = Factories(make_session_factory(engine), FixedClock(datetime.now(UTC)), RecordingSender())
    doctor = await factories.staff("doctor")
    seeded = []
    for _ in range(UPLOADS):
        person = await factories.insured()
        consultation = await factories.consultation(person, doctor)
        seeded.append((person.insured_number, person.birth_date.isoformat(), person.phone, consultation.id))
    await engine.dispose()
    return seeded


async def _login(http: aiohttp.ClientSession, server: ServerProcess, outbox: Path, number: str, born: str) -> str:
    sent = len(outbox.read_text().splitlines()) if outbox.exists() else 0
    async with http.post(
        server.url + "/api/auth/policy/start", json={"insured_number": number, "birth_date": born}
    ) as response:
        assert response.status == 200, await response.text()
        challenge = (await response.json())["challenge_id"]
    code = await outbox_code(outbox, after_lines=sent)
    async with http.post(
        server.url + "/api/auth/policy/verify", json={"challenge_id": challenge, "code": code}
    ) as response:
        assert response.status == 200, await response.text()
        return str((await response.json())["access_token"])


async def _upload(http: aiohttp.ClientSession, url: str, field: str, token: str, data: bytes, name: str) -> int:
    form = aiohttp.FormData()
    mime = "image/jpeg" if data[:2] == b"\xff\xd8" else "image/png"
    form.add_field(field, data, filename=name, content_type=mime)
    async with http.post(url, data=form, headers={"Authorization": f"Bearer {token}"}) as response:
        await response.read()
        return response.status


async def _round(
    http: aiohttp.ClientSession, server: ServerProcess, label: str, uploads: list[tuple[str, str, str, bytes]]
) -> int:
    pid = server.process.pid
    await asyncio.sleep(1.0)
    reset = _reset_peak(pid)
    before = _status(pid)
    statuses = await asyncio.gather(
        *(_upload(http, url, field, token, data, "x.png") for url, field, token, data in uploads)
    )
    await asyncio.sleep(0.5)
    after = _status(pid)
    peak_growth = after["VmHWM"] - before["VmRSS"] if reset else after["VmHWM"] - before["VmHWM"]
    print(
        f"{label:<44} statuses {sorted(statuses)}  RSS before {before['VmRSS'] / MIB:6.0f} MiB  "
        f"peak growth {peak_growth / MIB:6.0f} MiB  held after {(after['VmRSS'] - before['VmRSS']) / MIB:+5.0f} MiB"
        + ("" if reset else "  (peak not resettable: growth of VmHWM)")
    )
    return peak_growth


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        await asyncio.to_thread(upgrade, url)
        people = await _seed(url)
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        env = {
            **os.environ,
            "TELEMED_ENVIRONMENT": "test",
            "TELEMED_DATA_DIR": str(data_dir),
            "TELEMED_DATABASE_URL": url,
            "TELEMED_REDIS_URL": "",
            "TELEMED_JWT_SECRET": "bench-secret-" + "m" * 40,
            "TELEMED_LOG_LEVEL": "WARNING",
            "TELEMED_ASSIGNMENT_INTERVAL_SECONDS": "0",
            "TELEMED_ROSTER_CHECK_INTERVAL_SECONDS": "0",
            "TELEMED_HR_FREEZE_INTERVAL_SECONDS": "0",
            "TELEMED_AUDIT_CHECKPOINT_INTERVAL_SECONDS": "0",
        }
        chat_png = await asyncio.to_thread(_png, 7070, 7070)
        pass_png = await asyncio.to_thread(_png, 5999, 6000)
        pass_jpeg = await asyncio.to_thread(_jpeg, 4499, 6000)
        chat_png_16 = await asyncio.to_thread(_png, 3999, 4000)
        print(
            f"images: chat PNG 7070x7070 {len(chat_png) / 1024:.0f} KB, pass PNG 5999x6000 "
            f"{len(pass_png) / 1024:.0f} KB, pass JPEG 4499x6000 {len(pass_jpeg) / 1024:.0f} KB"
        )
        server = ServerProcess(env, data_dir / "server.log")
        worst = 0
        try:
            async with aiohttp.ClientSession() as http:
                await server.wait_ready(http, timeout=180)
                outbox = data_dir / "outbox.jsonl"
                tokens = [await _login(http, server, outbox, number, born) for number, born, _, _ in people]
                attachments = [
                    (f"{server.url}/api/consultations/{consultation}/attachments", "file", token, chat_png)
                    for token, (_, _, _, consultation) in zip(tokens, people, strict=True)
                ]
                largest_decoded = [
                    (f"{server.url}/api/consultations/{consultation}/attachments", "file", token, chat_png_16)
                    for token, (_, _, _, consultation) in zip(tokens, people, strict=True)
                ]
                photos = [(f"{server.url}/api/me/pass-photo", "photo", token, pass_png) for token in tokens]
                jpegs = [(f"{server.url}/api/me/pass-photo", "photo", token, pass_jpeg) for token in tokens]
                worst = max(
                    await _round(http, server, f"{UPLOADS} chat attachments, PNG 7070x7070", attachments),
                    await _round(http, server, f"{UPLOADS} pass photos, PNG 5999x6000", photos),
                    await _round(http, server, f"{UPLOADS} pass photos, JPEG 4499x6000", jpegs),
                    await _round(http, server, f"{UPLOADS} chat attachments, PNG 3999x4000", largest_decoded),
                )
        finally:
            server.stop()
        print(f"largest peak growth: {worst / MIB:.0f} MiB (aim < 300 MiB)")


if __name__ == "__main__":
    asyncio.run(main())
