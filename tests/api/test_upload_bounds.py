"""Bounded memory under image uploads (issue 11 item 11): reduced-size decode, pixel caps per purpose,
a few decodes at a time with 503 + Retry-After beyond that."""

from __future__ import annotations

import asyncio
import io

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image

from server.domain import passes as passes_rules
from server.services import chat, images, passes
from tests.factories import Factories, bearer
from tests.realtime.conftest import ChatSetup, make_chat_setup


def _upload(data: bytes, content_type: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename="x", content_type=content_type)
    return form


def _encoded(size: tuple[int, int], fmt: str, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (10, 120, 200, 255)[: len(mode)]).save(buffer, format=fmt)
    return buffer.getvalue()


def test_a_large_jpeg_is_decoded_at_reduced_size_and_stored_at_most_max_side_long() -> None:
    data = _encoded((4800, 3200), "JPEG")
    clean = images.reencode(data, max_pixels=50_000_000, max_side=1000)
    assert max(clean.width, clean.height) == 1000
    with Image.open(io.BytesIO(data)) as probe:
        probe.draft(probe.mode, (1000, 1000))
        assert probe.size == (2400, 1600)  # libjpeg scaled the decode itself (1/2), before any resize


def test_a_png_too_large_to_decode_at_full_size_is_refused_before_decoding() -> None:
    """The 194 KB 7070x7070 RGBA PNG from the issue would take 200 MiB decoded."""
    data = _encoded((7070, 7070), "PNG", "RGBA")
    assert len(data) < 400_000
    with pytest.raises(images.UnreadableImage, match="more than 16000000 pixels"):
        images.reencode(data, max_pixels=chat.MAX_ATTACHMENT_PIXELS, max_full_decode_pixels=16_000_000)


async def test_uploads_beyond_the_decode_slots_get_503_with_retry_after(
    client: TestClient, factories: Factories, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup: ChatSetup = await make_chat_setup(client, factories)
    monkeypatch.setattr(images, "DECODE_WAIT_SECONDS", 0.2)
    slots = images.decode_slots()
    for _ in range(images.DECODE_CONCURRENCY):  # every decoder busy
        await slots.acquire()
    url = f"/api/consultations/{setup.consultation.id}/attachments"
    try:
        busy = await client.post(
            url, data=_upload(_encoded((64, 48), "PNG"), "image/png"), headers=bearer(setup.patient_tokens)
        )
        assert busy.status == 503
        assert busy.headers["Retry-After"] == "2"
        assert (await busy.json())["error"]["code"] == "images_busy"
    finally:
        for _ in range(images.DECODE_CONCURRENCY):
            slots.release()
    uploads = await asyncio.gather(
        *(
            client.post(url, data=_upload(_encoded((64, 48), "PNG"), "image/png"), headers=bearer(setup.patient_tokens))
            for _ in range(4)
        )
    )
    assert [r.status for r in uploads] == [201] * 4  # four at once wait for the two slots, none refused


async def test_a_phone_sized_jpeg_still_works_as_a_chat_attachment(client: TestClient, factories: Factories) -> None:
    setup = await make_chat_setup(client, factories)
    response = await client.post(
        f"/api/consultations/{setup.consultation.id}/attachments",
        data=_upload(_encoded((6000, 4000), "JPEG"), "image/jpeg"),
        headers=bearer(setup.patient_tokens),
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    assert (body["width"], body["height"]) == (4096, 2731)


def _photo_form(data: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("photo", io.BytesIO(data), filename="me.png", content_type="application/octet-stream")
    return form


async def test_a_large_pass_photo_png_is_refused_before_decoding_R6_4(client: TestClient, factories: Factories) -> None:
    """Four 5999x6000 RGBA PNGs (150 KB each, 144 MiB each decoded) took the server up 2 GiB at once."""
    person = await factories.insured()
    tokens = await factories.login_insured(client, person)
    data = _encoded((5999, 6000), "PNG", "RGBA")
    assert len(data) < passes_rules.PASS_PHOTO_RULES.max_bytes
    response = await client.post("/api/me/pass-photo", data=_photo_form(data), headers=bearer(tokens))
    assert response.status == 422, await response.text()
    body = await response.json()
    assert body["error"]["code"] == "invalid_photo"
    assert "megapixels" in body["error"]["message"]


async def test_a_large_pass_photo_jpeg_is_decoded_at_reduced_size_and_stored_smaller(
    client: TestClient, factories: Factories
) -> None:
    person = await factories.insured()
    tokens = await factories.login_insured(client, person)
    data = _encoded((4500, 6000), "JPEG")
    response = await client.post("/api/me/pass-photo", data=_photo_form(data), headers=bearer(tokens))
    assert response.status == 201, await response.text()
    body = await response.json()
    assert (body["width"], body["height"]) == (1800, passes.STORED_PHOTO_SIDE)


async def test_pass_photos_share_the_decode_slots_and_get_503_when_they_stay_busy(
    client: TestClient, factories: Factories, monkeypatch: pytest.MonkeyPatch
) -> None:
    person = await factories.insured()
    tokens = await factories.login_insured(client, person)
    monkeypatch.setattr(images, "DECODE_WAIT_SECONDS", 0.2)
    slots = images.decode_slots()
    for _ in range(images.DECODE_CONCURRENCY):
        await slots.acquire()
    try:
        busy = await client.post(
            "/api/me/pass-photo", data=_photo_form(_encoded((300, 400), "JPEG")), headers=bearer(tokens)
        )
    finally:
        for _ in range(images.DECODE_CONCURRENCY):
            slots.release()
    assert busy.status == 503 and busy.headers.get("Retry-After")


def test_a_portrait_jpeg_is_decoded_at_reduced_size_too() -> None:
    """A square draft box left a 4500x6000 JPEG at full size: Pillow scales by the smaller ratio."""
    data = _encoded((4500, 6000), "JPEG")
    decoded: list[tuple[int, int]] = []
    original = Image.Image.load

    def spy(self: Image.Image) -> object:
        result = original(self)
        decoded.append(self.size)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Image.Image, "load", spy)
        clean = images.reencode(data, max_pixels=50_000_000, max_side=2400)
    assert (clean.width, clean.height) == (1800, 2400)
    assert max(w * h for w, h in decoded) <= 2250 * 3000  # never the 27 MP of the full picture


async def test_large_pngs_are_decoded_one_at_a_time_small_ones_go_past(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two 16-megapixel PNGs decoded at once took the server 342 MiB up; they now queue for one slot."""
    monkeypatch.setattr(images, "DECODE_WAIT_SECONDS", 0.2)
    large = _encoded((2100, 2000), "PNG", "RGBA")
    small = _encoded((640, 480), "PNG", "RGBA")
    slot = images.large_decode_slot()
    await slot.acquire()  # another large PNG is being decoded
    try:
        with pytest.raises(images.ImagesBusy):
            await images.reencode_bounded(large, max_pixels=50_000_000)
        assert (await images.reencode_bounded(small, max_pixels=50_000_000)).width == 640
    finally:
        slot.release()
    assert images.decode_slots()._value == images.DECODE_CONCURRENCY  # nothing left taken
    assert (await images.reencode_bounded(large, max_pixels=50_000_000)).width == 2100
