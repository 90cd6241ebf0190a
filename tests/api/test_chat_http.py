"""Chat over HTTP: history, idempotent send, image attachments, participants only (checklist B4, C1, G2)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image, PngImagePlugin
from pytest_aiohttp import AiohttpClient
from sqlalchemy import func, select

from server.app import create_app
from server.clock import FixedClock
from server.config import Settings
from server.db.models import AuditEvent, ChatAttachment, ConsultationMessage
from server.domain import chat as chat_rules
from server.keys import settings_key
from server.services import images
from tests.factories import Factories, bearer
from tests.fakes import RecordingSender
from tests.images import (
    SRGB_ICC,
    XMP,
    assert_has_metadata,
    assert_no_metadata,
    dominant,
    phone_exif,
    phone_jpeg,
    two_halves,
)
from tests.realtime.conftest import ChatSetup, connect, make_chat_setup


@pytest.fixture
async def chat_setup(client: TestClient, factories: Factories) -> ChatSetup:
    """Patient and doctor of one active consultation, logged in over HTTP."""
    return await make_chat_setup(client, factories)


def _png(size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload(data: bytes, content_type: str = "image/png", filename: str = "rash.png") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=filename, content_type=content_type)
    return form


async def _count(factories: Factories, model: Any) -> int:
    async with factories.session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _attachments_url(consultation_id: int, attachment_id: int | None = None) -> str:
    base = f"/api/consultations/{consultation_id}/attachments"
    return base if attachment_id is None else f"{base}/{attachment_id}"


def _messages_url(consultation_id: int) -> str:
    return f"/api/consultations/{consultation_id}/messages"


async def test_send_over_http_is_idempotent_on_client_message_id_G2(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    url = _messages_url(chat_setup.consultation.id)
    headers = bearer(chat_setup.patient_tokens)
    first = await client.post(url, json={"client_message_id": "http-1", "text": "hello"}, headers=headers)
    assert first.status == 201
    body = await first.json()
    assert body["seq"] == 1 and body["duplicate"] is False and body["message"]["text"] == "hello"
    again = await client.post(url, json={"client_message_id": "http-1", "text": "hello"}, headers=headers)
    assert again.status == 200
    assert (await again.json())["seq"] == 1 and (await again.json())["duplicate"] is True
    assert await _count(factories, ConsultationMessage) == 1


async def test_http_messages_reach_the_socket_and_socket_messages_the_http_history(
    client: TestClient, chat_setup: ChatSetup
) -> None:
    cid = chat_setup.consultation.id
    doctor = await connect(client, chat_setup.doctor_tokens)
    subscription, _ = await doctor.subscribe(cid)
    response = await client.post(
        _messages_url(cid),
        json={"client_message_id": "h1", "text": "from http"},
        headers=bearer(chat_setup.patient_tokens),
    )
    assert response.status == 201
    assert (await doctor.event(subscription, "chat.message"))["text"] == "from http"
    await doctor.send_text(cid, "from the socket")
    await doctor.close()
    history = await client.get(_messages_url(cid), headers=bearer(chat_setup.patient_tokens))
    assert history.status == 200
    body = await history.json()
    assert [m["text"] for m in body["messages"]] == ["from http", "from the socket"]
    assert body["last_seq"] == 2 and body["has_more"] is False
    page = await client.get(_messages_url(cid) + "?after_seq=1&limit=1", headers=bearer(chat_setup.doctor_tokens))
    assert [m["seq"] for m in (await page.json())["messages"]] == [2]


async def test_history_query_is_validated(client: TestClient, chat_setup: ChatSetup) -> None:
    headers = bearer(chat_setup.patient_tokens)
    for query in ("?after_seq=-1", "?limit=0", "?limit=501", "?after_seq=abc", "?evil=1"):
        response = await client.get(_messages_url(chat_setup.consultation.id) + query, headers=headers)
        assert response.status == 422, query
        assert (await response.json())["error"]["code"] == "validation_error"


async def test_bad_message_bodies_are_refused_and_nothing_is_stored(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    url = _messages_url(chat_setup.consultation.id)
    headers = bearer(chat_setup.patient_tokens)
    cases = [
        ({"client_message_id": "a", "text": ""}, 400, "empty_message"),
        ({"client_message_id": "a", "text": "x" * 4001}, 400, "message_too_long"),
        ({"client_message_id": "bad id!", "text": "hi"}, 400, "invalid_client_message_id"),
        ({"client_message_id": "a"}, 400, "invalid_format"),
        ({"text": "hi"}, 422, "validation_error"),
        ({"client_message_id": "a", "text": "hi", "sender": "staff:1"}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        response = await client.post(url, json=body, headers=headers)
        assert response.status == status, body
        assert (await response.json())["error"]["code"] == code, body
    malformed = await client.post(url, data="{oops", headers={**headers, "Content-Type": "application/json"})
    assert malformed.status == 400 and (await malformed.json())["error"]["code"] == "malformed_json"
    assert await _count(factories, ConsultationMessage) == 0


async def test_non_participants_get_404_and_nothing_is_written_or_revealed_B4_C1(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    cid = chat_setup.consultation.id
    await client.post(
        _messages_url(cid),
        json={"client_message_id": "p1", "text": "secret"},
        headers=bearer(chat_setup.patient_tokens),
    )
    stranger = await factories.login_insured(client, await factories.insured())
    other_doctor = await factories.login_staff(client, await factories.staff("doctor"))
    for tokens in (stranger, other_doctor):
        for method, url, kwargs in (
            ("GET", _messages_url(cid), {}),
            ("POST", _messages_url(cid), {"json": {"client_message_id": "x1", "text": "hi"}}),
            ("POST", f"/api/consultations/{cid}/attachments", {"data": _upload(_png())}),
            ("GET", f"/api/consultations/{cid}/attachments/1", {}),
            ("GET", _messages_url(cid + 1000), {}),
        ):
            response = await client.request(method, url, headers=bearer(tokens), **kwargs)
            assert response.status == 404, (method, url)
            text = await response.text()
            assert (await response.json())["error"]["code"] == "not_found" and "secret" not in text
    assert await _count(factories, ConsultationMessage) == 1
    assert await _count(factories, ChatAttachment) == 0
    async with factories.session_factory() as session:
        denied = await session.scalar(select(func.count()).where(AuditEvent.result == "denied"))
    assert denied is not None and denied >= 8


async def test_roles_without_chat_get_403_admins_included(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    """Medical secrecy: admins, dispatchers and HR read no chat content."""
    for role in ("admin", "dispatcher", "hr"):
        tokens = await factories.login_staff(client, await factories.staff(role))
        response = await client.get(_messages_url(chat_setup.consultation.id), headers=bearer(tokens))
        assert response.status == 403 and (await response.json())["error"]["code"] == "wrong_role"
    assert (await client.get(_messages_url(chat_setup.consultation.id))).status == 401


async def test_image_attachment_upload_message_and_download(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    cid = chat_setup.consultation.id
    png = _png((64, 48))
    response = await client.post(
        f"/api/consultations/{cid}/attachments", data=_upload(png), headers=bearer(chat_setup.patient_tokens)
    )
    assert response.status == 201, await response.text()
    attachment = await response.json()
    assert attachment["mime"] == "image/png"
    assert (attachment["width"], attachment["height"]) == (64, 48)
    assert not _files(client.app[settings_key].uploads_dir)  # in the database, for every process
    doctor = await connect(client, chat_setup.doctor_tokens)
    subscription, _ = await doctor.subscribe(cid)
    patient = await connect(client, chat_setup.patient_tokens)
    sent = await patient.request(
        "chat.send",
        consultation_id=cid,
        client_message_id="photo-1",
        attachment_id=attachment["attachment_id"],
        text="my rash",
    )
    assert sent["success"], sent
    event = await doctor.event(subscription, "chat.message")
    assert event["kind"] == "attachment" and event["attachment_id"] == attachment["attachment_id"]
    assert event["text"] == "my rash"
    download = await client.get(
        f"/api/consultations/{cid}/attachments/{attachment['attachment_id']}", headers=bearer(chat_setup.doctor_tokens)
    )
    assert download.status == 200 and download.content_type == "image/png"
    served = await download.read()
    assert len(served) == attachment["size_bytes"] and hashlib.sha256(served).hexdigest() == attachment["sha256"]
    assert Image.open(io.BytesIO(served)).tobytes() == Image.open(io.BytesIO(png)).tobytes()  # same pixels
    assert "sandbox" in download.headers["Content-Security-Policy"]
    # The doctor cannot send a message pointing at the patient's upload, nor at another consultation's.
    reply = await doctor.request(
        "chat.send", consultation_id=cid, client_message_id="steal", attachment_id=attachment["attachment_id"]
    )
    assert reply["error"]["code"] == "unknown_attachment"
    missing = await patient.request("chat.send", consultation_id=cid, client_message_id="ghost", attachment_id=99999)
    assert missing["error"]["code"] == "unknown_attachment"
    await patient.close()
    await doctor.close()


async def test_attachment_type_is_sniffed_not_trusted(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    url = f"/api/consultations/{chat_setup.consultation.id}/attachments"
    headers = bearer(chat_setup.patient_tokens)
    cases = [
        (_upload(b"just some text, honestly", "image/png", "rash.png"), 400, "attachment_content_mismatch"),
        (_upload(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10, "image/png", "rash.png"), 400, "attachment_content_mismatch"),
        (_upload(_png(), "image/jpeg", "rash.jpg"), 400, "attachment_content_mismatch"),
        (_upload(b"hello", "text/plain", "notes.txt"), 400, "unsupported_attachment_type"),
        (_upload(b"<svg onload=alert(1)>", "image/svg+xml", "x.svg"), 400, "unsupported_attachment_type"),
        (_upload(b"", "image/png", "empty.png"), 400, "empty_attachment"),
    ]
    for form, status, code in cases:
        response = await client.post(url, data=form, headers=headers)
        assert response.status == status, code
        assert (await response.json())["error"]["code"] == code
    no_file = aiohttp.FormData()
    no_file.add_field("other", b"x", filename="x.png", content_type="image/png")
    response = await client.post(url, data=no_file, headers=headers)
    assert response.status == 400 and (await response.json())["error"]["code"] == "missing_file"
    response = await client.post(url, json={"file": "x"}, headers=headers)
    assert response.status == 400 and (await response.json())["error"]["code"] == "multipart_required"
    assert await _count(factories, ChatAttachment) == 0


async def test_attachment_over_5_mib_is_refused_with_413(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    big = _png() + b"\x00" * (5 * 1024 * 1024)
    response = await client.post(
        f"/api/consultations/{chat_setup.consultation.id}/attachments",
        data=_upload(big),
        headers=bearer(chat_setup.patient_tokens),
    )
    assert response.status == 413
    body = await response.json()
    assert body["error"]["code"] == "attachment_too_large" and body["error"]["details"]["limit"] == 5 * 1024 * 1024
    assert await _count(factories, ChatAttachment) == 0
    assert not _files(client.app[settings_key].uploads_dir)


async def test_uploading_to_a_closed_consultation_is_a_conflict(client: TestClient, factories: Factories) -> None:
    patient = await factories.insured()
    done = await factories.consultation(patient, await factories.staff("doctor"), status="completed")
    tokens = await factories.login_insured(client, patient)
    response = await client.post(
        f"/api/consultations/{done.id}/attachments", data=_upload(_png()), headers=bearer(tokens)
    )
    assert response.status == 409 and (await response.json())["error"]["code"] == "consultation_closed"


# ----------------------------------------------------------------------------- stored without metadata, in the database


async def _upload_as_patient(client: TestClient, setup: ChatSetup, data: bytes, content_type: str) -> dict[str, Any]:
    response = await client.post(
        _attachments_url(setup.consultation.id),
        data=_upload(data, content_type, "photo"),
        headers=bearer(setup.patient_tokens),
    )
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def test_phone_photo_is_served_without_exif_gps_and_upright(
    client: TestClient, chat_setup: ChatSetup, factories: Factories
) -> None:
    """The other participant never gets the uploader's position, device or time; the photo is not turned sideways."""
    photo = phone_jpeg((64, 48), orientation=6)  # stored sideways; EXIF says: turn 90 degrees clockwise
    assert_has_metadata(photo)
    attachment = await _upload_as_patient(client, chat_setup, photo, "image/jpeg")
    assert (attachment["mime"], attachment["width"], attachment["height"]) == ("image/jpeg", 48, 64)
    download = await client.get(
        _attachments_url(chat_setup.consultation.id, attachment["attachment_id"]),
        headers=bearer(chat_setup.doctor_tokens),
    )
    assert download.status == 200 and download.content_type == "image/jpeg"
    served = await download.read()
    image = assert_no_metadata(served)
    assert image.size == (48, 64)
    assert dominant(image, (24, 8)) == "red" and dominant(image, (24, 56)) == "blue"
    # What is recorded is what is stored and served, and nothing else is kept anywhere.
    assert attachment["size_bytes"] == len(served) and attachment["sha256"] == hashlib.sha256(served).hexdigest()
    async with factories.session_factory() as session:
        row = await session.get(ChatAttachment, attachment["attachment_id"])
    assert row is not None and row.content == served and row.path is None
    assert (row.size_bytes, row.sha256) == (len(served), attachment["sha256"])
    assert not _files(client.app[settings_key].uploads_dir)


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
async def test_png_and_webp_metadata_is_removed_too(client: TestClient, chat_setup: ChatSetup, fmt: str) -> None:
    buffer = io.BytesIO()
    metadata: dict[str, Any] = {"exif": phone_exif().tobytes(), "icc_profile": SRGB_ICC}
    if fmt == "PNG":
        metadata["pnginfo"] = PngImagePlugin.PngInfo()
        metadata["pnginfo"].add_itxt("XML:com.adobe.xmp", XMP.decode())
    else:
        metadata["xmp"] = XMP
    two_halves((40, 20)).save(buffer, format=fmt, **metadata)
    data = buffer.getvalue()
    assert b"PhoneCo" in data and b"xmpmeta" in data
    attachment = await _upload_as_patient(client, chat_setup, data, f"image/{fmt.lower()}")
    download = await client.get(
        _attachments_url(chat_setup.consultation.id, attachment["attachment_id"]),
        headers=bearer(chat_setup.doctor_tokens),
    )
    assert download.status == 200 and download.content_type == f"image/{fmt.lower()}"
    image = assert_no_metadata(await download.read())
    assert image.format == fmt and image.size == (40, 20)


async def test_attachment_stored_by_one_process_is_served_by_another(
    client: TestClient,
    chat_setup: ChatSetup,
    aiohttp_client: AiohttpClient,
    settings: Settings,
    clock: FixedClock,
    sender: RecordingSender,
    tmp_path: Path,
) -> None:
    """Two server processes share only the database (and the bus): each has its own data folder."""
    other_settings = settings.model_copy(update={"data_dir": tmp_path / "other-process"})
    assert other_settings.uploads_dir != client.app[settings_key].uploads_dir
    other = await aiohttp_client(create_app(other_settings, clock=clock, code_sender=sender))
    photo = phone_jpeg((64, 48), orientation=6)
    attachment = await _upload_as_patient(client, chat_setup, photo, "image/jpeg")
    url = _attachments_url(chat_setup.consultation.id, attachment["attachment_id"])
    here = await (await client.get(url, headers=bearer(chat_setup.patient_tokens))).read()
    there = await other.get(url, headers=bearer(chat_setup.doctor_tokens))
    assert there.status == 200, await there.text()
    assert await there.read() == here
    assert hashlib.sha256(here).hexdigest() == attachment["sha256"]
    # And the other way round: uploaded to the second process, served by the first.
    second = await _upload_as_patient(other, chat_setup, _png((16, 16)), "image/png")
    back = await client.get(
        _attachments_url(chat_setup.consultation.id, second["attachment_id"]), headers=bearer(chat_setup.doctor_tokens)
    )
    assert back.status == 200 and hashlib.sha256(await back.read()).hexdigest() == second["sha256"]
    assert not _files(client.app[settings_key].uploads_dir) and not _files(other_settings.uploads_dir)


async def test_attachment_from_before_the_database_storage_is_still_served_and_cleaned(
    client: TestClient, chat_setup: ChatSetup, factories: Factories, clock: FixedClock
) -> None:
    """Rows written before migration 0003 name a file on the disk of the process that took the upload."""
    uploads = client.app[settings_key].uploads_dir
    cid = chat_setup.consultation.id
    photo = phone_jpeg((64, 48), orientation=6)
    legacy = uploads / "chat" / str(cid) / "0123456789abcdef.jpg"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(photo)
    rows = [
        ChatAttachment(
            consultation_id=cid,
            uploader_key=f"insured:{chat_setup.patient.id}",
            mime="image/jpeg",
            size_bytes=len(photo),
            sha256=hashlib.sha256(photo).hexdigest(),
            path=path,
            created_at=clock.now(),
        )
        for path in (legacy.relative_to(uploads).as_posix(), f"chat/{cid}/gone.jpg")
    ]
    await factories.add(*rows)
    kept, gone = rows
    download = await client.get(_attachments_url(cid, kept.id), headers=bearer(chat_setup.doctor_tokens))
    assert download.status == 200 and download.content_type == "image/jpeg"
    assert assert_no_metadata(await download.read()).size == (48, 64)  # cleaned on the way out
    missing = await client.get(_attachments_url(cid, gone.id), headers=bearer(chat_setup.doctor_tokens))
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"


async def test_image_that_grows_over_the_limit_when_re_encoded_is_refused_with_413(
    client: TestClient, chat_setup: ChatSetup, factories: Factories, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stored bytes obey the limit too: a PNG squeezed harder than Pillow squeezes it would grow."""
    buffer = io.BytesIO()
    Image.linear_gradient("L").resize((512, 512)).convert("RGB").save(buffer, format="PNG", optimize=True)
    data = buffer.getvalue()
    grown = len(images.reencode(data, max_pixels=10**6).data)
    assert grown > len(data)
    monkeypatch.setattr(chat_rules, "MAX_ATTACHMENT_BYTES", (len(data) + grown) // 2)
    response = await client.post(
        _attachments_url(chat_setup.consultation.id),
        data=_upload(data),
        headers=bearer(chat_setup.patient_tokens),
    )
    assert response.status == 413
    body = await response.json()
    assert body["error"]["code"] == "attachment_too_large" and body["error"]["details"]["size"] == grown
    assert await _count(factories, ChatAttachment) == 0
