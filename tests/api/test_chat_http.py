"""Chat over HTTP: history, idempotent send, image attachments, participants only (checklist B4, C1, G2)."""

from __future__ import annotations

import io
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from PIL import Image
from sqlalchemy import func, select

from server.db.models import AuditEvent, ChatAttachment, ConsultationMessage
from server.keys import settings_key
from tests.factories import Factories, bearer
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
    assert attachment["mime"] == "image/png" and attachment["size_bytes"] == len(png)
    assert (attachment["width"], attachment["height"]) == (64, 48)
    stored = client.app[settings_key].uploads_dir
    assert len([p for p in stored.rglob("*") if p.is_file()]) == 1
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
    assert await download.read() == png
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
    assert not [p for p in client.app[settings_key].uploads_dir.rglob("*") if p.is_file()]


async def test_uploading_to_a_closed_consultation_is_a_conflict(client: TestClient, factories: Factories) -> None:
    patient = await factories.insured()
    done = await factories.consultation(patient, await factories.staff("doctor"), status="completed")
    tokens = await factories.login_insured(client, patient)
    response = await client.post(
        f"/api/consultations/{done.id}/attachments", data=_upload(_png()), headers=bearer(tokens)
    )
    assert response.status == 409 and (await response.json())["error"]["code"] == "consultation_closed"
