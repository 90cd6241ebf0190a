"""Chat over HTTP: history, sending (the same semantics as the socket), image attachments."""

from __future__ import annotations

from typing import Final

from aiohttp import BodyPartReader, hdrs, web
from pydantic import Field

from server.api.endpoints import ApiModel, current_principal, endpoint, path_int, to_jsonable
from server.domain import chat as rules
from server.domain.errors import DomainError, InvalidInput
from server.keys import chat_writer_key, context_key
from server.services import chat
from server.services.identity import ROLE_DOCTOR, ROLE_INSURED

routes = web.RouteTableDef()

CHAT_ROLES: Final = (ROLE_INSURED, ROLE_DOCTOR)
UPLOAD_FIELD: Final = "file"
READ_CHUNK: Final = 64 * 1024


class PayloadTooLarge(DomainError):
    """The upload is over the attachment limit (refused while reading, before it is all in memory)."""

    code = rules.ERR_ATTACHMENT_TOO_LARGE
    status = 413


class HistoryQuery(ApiModel):
    """Resume cursor and page size."""

    after_seq: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=chat.HISTORY_PAGE_MAX)


class MessageCreate(ApiModel):
    """A message to send: text, or an uploaded attachment (with an optional caption)."""

    client_message_id: str = Field(max_length=200)
    text: str | None = Field(default=None, max_length=20_000)
    attachment_id: int | None = Field(default=None, ge=1)


@endpoint(
    routes,
    "GET",
    "/api/consultations/{consultation_id}/messages",
    summary="Chat history after a sequence number (participants only)",
    tags=["chat"],
    roles=CHAT_ROLES,
    query=HistoryQuery,
    response=chat.HistoryPage,
    errors=[404],
)
async def get_messages(request: web.Request, query: HistoryQuery) -> chat.HistoryPage:
    """Everything after ``after_seq``, in order; the same stream the socket replays."""
    consultation_id = path_int(request, "consultation_id")
    page = await chat.history(
        request.app[context_key],
        current_principal(request),
        consultation_id,
        after_seq=query.after_seq,
        limit=query.limit,
    )
    return chat.HistoryPage.of(consultation_id, page)


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/messages",
    summary="Send a chat message; idempotent on client_message_id (201 new, 200 already stored)",
    tags=["chat"],
    roles=CHAT_ROLES,
    body=MessageCreate,
    response=chat.MessagePosted,
    status=201,
    errors=[404, 409, 503],
)
async def post_message(request: web.Request, body: MessageCreate) -> web.Response:
    """Stored (and committed) before the response, exactly like ``chat.send`` on the socket."""
    consultation_id = path_int(request, "consultation_id")
    draft = chat.make_draft(consultation_id, body.client_message_id, body.text, body.attachment_id)
    ctx = request.app[context_key]
    posted = await chat.post_message(ctx, request.app[chat_writer_key], current_principal(request), draft)
    response = chat.MessagePosted.of(consultation_id, posted)
    return web.json_response(to_jsonable(response), status=200 if posted.duplicate else 201)


@endpoint(
    routes,
    "POST",
    "/api/consultations/{consultation_id}/attachments",
    summary="Upload an image (JPEG, PNG or WebP, at most 5 MiB) as multipart field 'file'",
    tags=["chat"],
    roles=CHAT_ROLES,
    response=chat.AttachmentInfo,
    status=201,
    errors=[400, 404, 409, 413, 503],
)
async def upload_attachment(request: web.Request) -> chat.AttachmentInfo:
    """The real type is sniffed from the content; the name and the declared type are not trusted."""
    consultation_id = path_int(request, "consultation_id")
    ctx = request.app[context_key]
    principal = current_principal(request)
    await chat.authorize_upload(ctx, principal, consultation_id)  # before accepting megabytes from anyone
    limit = rules.MAX_ATTACHMENT_BYTES
    if request.content_length is not None and request.content_length > limit + READ_CHUNK:
        raise _too_large()
    if not request.content_type.startswith("multipart/"):
        raise InvalidInput(f"send the image as multipart/form-data field '{UPLOAD_FIELD}'", code="multipart_required")
    reader = await request.multipart()
    data: bytes | None = None
    declared = ""
    while (part := await reader.next()) is not None:
        if getattr(part, "name", None) != UPLOAD_FIELD or not isinstance(part, BodyPartReader):
            continue
        declared = part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
        buffer = bytearray()
        while chunk := await part.read_chunk(READ_CHUNK):
            buffer.extend(chunk)
            if len(buffer) > limit:
                raise _too_large()
        data = bytes(buffer)
        break
    if data is None:
        raise InvalidInput(f"no multipart field '{UPLOAD_FIELD}' in the upload", code="missing_file")
    return await chat.save_attachment(ctx, principal, consultation_id, data, declared)


def _too_large() -> PayloadTooLarge:
    limit = rules.MAX_ATTACHMENT_BYTES
    return PayloadTooLarge(f"an attachment may be at most {limit // (1024 * 1024)} MiB", details={"limit": limit})


@endpoint(
    routes,
    "GET",
    "/api/consultations/{consultation_id}/attachments/{attachment_id}",
    summary="Download an attachment (participants only)",
    tags=["chat"],
    roles=CHAT_ROLES,
    errors=[404],
)
async def get_attachment(request: web.Request) -> web.Response:
    """The image bytes with their sniffed type; sandboxed so it can never run as a page."""
    consultation_id = path_int(request, "consultation_id")
    attachment_id = path_int(request, "attachment_id")
    row, data = await chat.load_attachment(
        request.app[context_key], current_principal(request), consultation_id, attachment_id
    )
    extension = row.mime.split("/", 1)[1]
    return web.Response(
        body=data,
        content_type=row.mime,
        headers={
            "Content-Disposition": f'inline; filename="attachment-{row.id}.{extension}"',
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
