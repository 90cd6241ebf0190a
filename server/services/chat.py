"""Consultation chat: messages stored in durable batches before they are acknowledged, history, read marks, images.

Who may do what (medical secrecy; checklist B4, C1, C5):

- the consultation's patient (``insured:<insured_person_id>``) and its assigned doctor
  (``staff:<doctor_id>``, role ``doctor``) may read the chat in any status;
- the patient may write while the consultation is ``queued``, ``offered`` or ``active`` (to add
  details while waiting); the doctor only while it is ``active``; nobody writes once it is
  ``completed`` or ``cancelled`` (``consultation_closed``);
- nobody else reads or writes, admins included: a non-participant is told the consultation does
  not exist (``not_found``) and the denial is audited.

Writes go through one :class:`ChatWriter` per process: it collects whatever is pending and
writes the batch in one transaction (row lock per consultation, sequence numbers allocated in
commit order, resent ``client_message_id`` recognised), then acknowledges each message, hands the
new messages to local sockets and leaves a wake-up hint for its hint publisher, which tells the bus
off the write path.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import WithJsonSchema
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from server.channels import (
    EVENT_CHAT_COMMITTED,
    EVENT_CHAT_MESSAGE,
    EVENT_CHAT_READ,
    chat_commits_channel,
    consultation_channel,
)
from server.db.models import ChatAttachment
from server.db.repositories import chat as repo
from server.domain import chat as rules
from server.domain.errors import DomainError, InvalidInput, NotFound, Unavailable
from server.domain.participation import ConsultationAccess, participant_of, write_refusal
from server.services import audit, images
from server.services.context import ServiceContext
from server.services.identity import Principal

log = logging.getLogger(__name__)

HISTORY_PAGE_MAX: Final = 500
BATCH_RETRIES: Final = 3
MAX_ATTACHMENT_PIXELS: Final = 50_000_000  # a phone photo is 12-50 MP; more is a decompression bomb
MAX_ATTACHMENT_SIDE: Final = 4096  # stored and shown at most this long: a JPEG is decoded at reduced size
MAX_ATTACHMENT_FULL_DECODE_PIXELS: Final = 16_000_000  # PNG/WebP decode at full size: 64 MiB as RGBA

KIND_TEXT: Final = rules.MessageKind.TEXT.value
KIND_ATTACHMENT: Final = rules.MessageKind.ATTACHMENT.value
_dumps_str = json.JSONEncoder(ensure_ascii=False).encode

ERR_UNKNOWN_ATTACHMENT: Final = "unknown_attachment"


# ---------------------------------------------------------------------------------------------
# Values


class ChatMessage:
    """One stored message; its JSON event form is built once and shared by every socket."""

    __slots__ = (
        "_iso",
        "_json",
        "attachment_id",
        "body",
        "client_message_id",
        "consultation_id",
        "created_at",
        "id",
        "kind",
        "origin",
        "sender_key",
        "sender_role",
        "seq",
    )

    def __init__(
        self,
        *,
        id: int,
        consultation_id: int,
        seq: int,
        sender_key: str,
        sender_role: str,
        client_message_id: str,
        kind: str,
        body: str,
        attachment_id: int | None,
        created_at: datetime,
    ) -> None:
        self.id = id
        self.consultation_id = consultation_id
        self.seq = seq
        self.sender_key = sender_key
        self.sender_role = sender_role
        self.client_message_id = client_message_id
        self.kind = kind
        self.body = body
        self.attachment_id = attachment_id
        self.created_at = created_at
        self.origin: object = None  # the socket it was sent on (in memory only; not stored)
        self._iso: str | None = None
        self._json: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> ChatMessage:
        """Build from a repository row."""
        return cls(
            id=row.id,
            consultation_id=row.consultation_id,
            seq=row.seq,
            sender_key=row.sender_key,
            sender_role=row.sender_role,
            client_message_id=row.client_message_id,
            kind=row.kind,
            body=row.body,
            attachment_id=row.attachment_id,
            created_at=row.created_at,
        )

    def as_event(self) -> dict[str, Any]:
        """The ``chat.message`` event clients receive (and the HTTP history item)."""
        return {
            "type": EVENT_CHAT_MESSAGE,
            "consultation_id": self.consultation_id,
            "seq": self.seq,
            "id": self.id,
            "sender": self.sender_key,
            "sender_role": self.sender_role,
            "client_message_id": self.client_message_id,
            "kind": self.kind,
            "text": self.body,
            "attachment_id": self.attachment_id,
            "created_at": self.created_at_iso,
        }

    @property
    def created_at_iso(self) -> str:
        """``created_at`` in ISO 8601 (computed once)."""
        if self._iso is None:
            self._iso = self.created_at.isoformat()
        return self._iso

    @property
    def json(self) -> str:
        """The event as compact JSON, serialised once and shared by every socket.

        Only the text needs escaping: keys, roles and client message ids are validated to safe
        characters, the rest are numbers and an ISO timestamp (the same as ``as_event``).
        """
        if self._json is None:
            attachment = "null" if self.attachment_id is None else str(self.attachment_id)
            self._json = (
                f'{{"type":"{EVENT_CHAT_MESSAGE}","consultation_id":{self.consultation_id},"seq":{self.seq},'
                f'"id":{self.id},"sender":"{self.sender_key}","sender_role":"{self.sender_role}",'
                f'"client_message_id":"{self.client_message_id}","kind":"{self.kind}",'
                f'"text":{_dumps_str(self.body)},"attachment_id":{attachment},"created_at":"{self.created_at_iso}"}}'
            )
        return self._json


@dataclass(frozen=True, slots=True)
class MessageDraft:
    """A validated message as a client sent it."""

    consultation_id: int
    client_message_id: str
    text: str
    attachment_id: int | None

    @property
    def kind(self) -> str:
        """``attachment`` when it carries an image, else ``text``."""
        return KIND_ATTACHMENT if self.attachment_id is not None else KIND_TEXT


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """The outcome of a send: the stored message, and whether it had been stored before."""

    message: ChatMessage
    duplicate: bool


@dataclass(frozen=True, slots=True)
class History:
    """A page of history."""

    messages: list[ChatMessage]
    last_seq: int
    has_more: bool


def _message_schema() -> dict[str, Any]:
    """The schema of a message as the HTTP routes give it (the socket's ``chat.message`` event)."""
    text, integer = {"type": "string"}, {"type": "integer"}
    return {
        "title": "ChatMessage",
        "description": "A chat message as stored.",
        "type": "object",
        "properties": {
            "type": {"type": "string", "default": EVENT_CHAT_MESSAGE},
            "consultation_id": integer,
            "seq": integer,
            "id": integer,
            "sender": text,
            "sender_role": text,
            "client_message_id": text,
            "kind": text,
            "text": text,
            "attachment_id": {"anyOf": [integer, {"type": "null"}]},
            "created_at": {"type": "string", "format": "date-time"},
        },
        "required": [
            "consultation_id",
            "seq",
            "id",
            "sender",
            "sender_role",
            "client_message_id",
            "kind",
            "text",
            "attachment_id",
            "created_at",
        ],
        "additionalProperties": False,
    }


# A message in an HTTP answer: ``as_event()`` with ``created_at`` as a time (serialised like every view's).
MessageJson = Annotated[dict[str, Any], WithJsonSchema(_message_schema())]


def message_json(message: ChatMessage) -> dict[str, Any]:
    """The message as the HTTP routes give it."""
    return {**message.as_event(), "created_at": message.created_at}


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of messages after ``after_seq``; ask again from the last ``seq`` while ``has_more``."""

    consultation_id: int
    messages: list[MessageJson]
    last_seq: int
    has_more: bool

    @classmethod
    def of(cls, consultation_id: int, page: History) -> HistoryPage:
        """The HTTP page of a history read."""
        return cls(consultation_id, [message_json(m) for m in page.messages], page.last_seq, page.has_more)


@dataclass(frozen=True, slots=True)
class MessagePosted:
    """The stored message; ``duplicate`` is true when this ``client_message_id`` was sent before."""

    consultation_id: int
    seq: int
    id: int
    client_message_id: str
    created_at: datetime
    duplicate: bool
    message: MessageJson

    @classmethod
    def of(cls, consultation_id: int, posted: PostedMessage) -> MessagePosted:
        """The HTTP answer to a send."""
        message = posted.message
        return cls(
            consultation_id,
            message.seq,
            message.id,
            message.client_message_id,
            message.created_at,
            posted.duplicate,
            message_json(message),
        )


@dataclass(frozen=True, slots=True)
class Transcript:
    """What a subscriber learns when it opens a consultation's chat."""

    access: ConsultationAccess
    read_marks: dict[str, int]


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """An uploaded image as stored (re-encoded without metadata), to be referenced by a message's
    ``attachment_id``."""

    attachment_id: int
    consultation_id: int
    mime: str
    size_bytes: int
    sha256: str
    width: int
    height: int


def _checked_text(text: str) -> str:
    """``rules.validate_text``, with a shortcut for the common case it would return unchanged.

    A printable string (no control, format or surrogate characters, hence no line breaks to
    normalise) without surrounding whitespace, within the length limit, passes every check of
    the rule as it is; anything else goes through the rule itself.
    """
    if (
        0 < len(text) <= rules.MAX_TEXT_CHARS
        and text.isprintable()
        and not text[0].isspace()
        and not text[-1].isspace()
    ):
        return text
    return rules.validate_text(text)


def make_draft(consultation_id: int, client_message_id: object, text: object, attachment_id: object) -> MessageDraft:
    """Validate what a client sent (socket or HTTP) into a draft.

    Raises:
        InvalidInput: ``invalid_format`` for a wrong type; the chat rules' own codes
            (``invalid_client_message_id``, ``empty_message``, ``message_too_long``,
            ``control_characters``) for wrong content.
    """
    if type(client_message_id) is not str:
        raise InvalidInput("client_message_id must be a string", code="invalid_format")
    cmid = rules.validate_client_message_id(client_message_id)
    if attachment_id is not None and (type(attachment_id) is not int or attachment_id <= 0):
        raise InvalidInput("attachment_id must be a positive integer", code="invalid_format")
    if text is not None and type(text) is not str:
        raise InvalidInput("text must be a string", code="invalid_format")
    if attachment_id is None:
        if text is None:
            raise InvalidInput("a message needs text or an attachment_id", code="invalid_format")
        body = _checked_text(text)
    else:
        body = _checked_text(text) if text else ""  # an optional caption
    return MessageDraft(consultation_id, cmid, body, attachment_id)


class MessageRejected(DomainError):
    """The database refused this one message (a constraint or data error): not stored, not retryable as is.

    Its neighbours in the batch are stored; only this message fails (checklist G1, I2).
    """

    code = "message_rejected"
    status = 422


# ---------------------------------------------------------------------------------------------
# The batched writer


Completion = Callable[["PostedMessage | DomainError"], None]


class _Pending:
    __slots__ = ("_done", "draft", "origin", "principal")

    def __init__(self, principal: Principal, draft: MessageDraft, done: Completion, origin: object) -> None:
        self.principal = principal
        self.draft = draft
        self._done: Completion | None = done
        self.origin = origin

    def finish(self, outcome: PostedMessage | DomainError) -> None:
        """Report the outcome once (a later call is ignored)."""
        done, self._done = self._done, None
        if done is not None:
            try:
                done(outcome)
            except Exception:
                log.exception("chat completion failed")


CommitListener = Callable[[list[ChatMessage]], None]


class ChatWriter:
    """Collects messages from every socket and request of this process and stores them in batches.

    One transaction per batch (one commit, one fsync) is what makes persisted chat fast: the
    batch grows by itself while the previous one is being written. Nothing is acknowledged
    before its batch has committed; a failed batch fails each of its messages (never a success
    for an unsaved message, checklist G1, I2). After a commit, completions run first (so a
    sender's acknowledgement is queued before anything else about the batch), then the commit
    listeners (local delivery), then the wake-up hint for the other processes (its own task
    publishes it, so a slow bus never holds a lane).
    """

    def __init__(self, ctx: ServiceContext, *, batch_max: int = 500, lanes: int = 2) -> None:
        self._ctx = ctx
        self._batch_max = batch_max
        self._lane_count = lanes
        self._pending: collections.deque[_Pending] = collections.deque()
        self._busy: set[int] = set()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._databases: list[repo.BatchDatabase] = []
        self._listeners: list[CommitListener] = []
        self._hints: dict[int, int] = {}
        self._hint_wakeup = asyncio.Event()
        self._hint_task: asyncio.Task[None] | None = None
        self.batches = 0

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call ``listener(new_messages)`` after each commit (local sockets get them without a query)."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start the lanes: each writes one batch at a time on its own connection."""
        if self._tasks:
            return
        self._stopping = False
        for lane in range(self._lane_count):
            database = repo.BatchDatabase(self._ctx.session_factory)
            self._databases.append(database)
            self._tasks.append(asyncio.create_task(self._run(database), name=f"chat-writer-{lane}"))
        self._hint_task = asyncio.create_task(self._publish_hints(), name="chat-writer-hints")

    async def stop(self) -> None:
        """Stop; messages still waiting fail with ``unavailable`` (the client resends them)."""
        tasks, self._tasks = self._tasks, []
        # A library may swallow a cancellation mid-call (seen with redis-py's publish), so the
        # lanes also stop on this flag instead of waiting for the next message forever.
        self._stopping = True
        self._wakeup.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hint_task, self._hint_task = self._hint_task, None
        if hint_task is not None:
            hint_task.cancel()
            await asyncio.gather(hint_task, return_exceptions=True)
        for database in self._databases:
            await database.close()
        self._databases.clear()
        pending, self._pending = list(self._pending), collections.deque()
        _fail(pending, Unavailable("the server is shutting down; send the message again"))

    def enqueue(self, principal: Principal, draft: MessageDraft, done: Completion, origin: object = None) -> None:
        """Queue a message; ``done(outcome)`` is called once it is durably stored or refused.

        ``origin`` (e.g. the socket it came from) is kept on the stored message in memory only,
        so that socket is not sent its own message back (its acknowledgement carries the seq).
        """
        if not self._tasks:
            done(Unavailable("the chat writer is not running"))
            return
        self._pending.append(_Pending(principal, draft, done, origin))
        self._wakeup.set()

    def submit(self, principal: Principal, draft: MessageDraft) -> asyncio.Future[PostedMessage]:
        """Queue a message; the future resolves once it is durably stored (or fails)."""
        future: asyncio.Future[PostedMessage] = asyncio.get_running_loop().create_future()

        def done(outcome: PostedMessage | DomainError) -> None:
            if future.done():
                return
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

        self.enqueue(principal, draft, done)
        return future

    def _take(self) -> list[_Pending]:
        """The next batch: pending messages of consultations no other lane is writing right now.

        A consultation is written by one lane at a time, so its messages keep the order they
        were sent in; lanes write different consultations in parallel.
        """
        batch: list[_Pending] = []
        skipped: list[_Pending] = []
        mine: set[int] = set()
        busy = self._busy
        pending = self._pending
        while pending and len(batch) < self._batch_max:
            item = pending.popleft()
            cid = item.draft.consultation_id
            if cid in busy and cid not in mine:
                skipped.append(item)
                continue
            batch.append(item)
            if cid not in mine:
                mine.add(cid)
                busy.add(cid)
        if skipped:
            pending.extendleft(reversed(skipped))
        return batch

    async def _run(self, database: repo.BatchDatabase) -> None:
        while not self._stopping:
            batch = self._take()
            if not batch:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            try:
                await self._write(database, batch)
            except asyncio.CancelledError:
                _fail(batch, Unavailable("the server is shutting down; send the message again"))
                raise
            except Exception:  # the lane must survive anything; each message is failed in _write
                log.exception("chat writer batch failed")
                _fail(batch, Unavailable("the message could not be saved; send it again"))
            finally:
                for item in batch:
                    self._busy.discard(item.draft.consultation_id)
                if self._pending:
                    self._wakeup.set()

    async def _write(self, database: repo.BatchDatabase, batch: list[_Pending]) -> None:
        """Store a batch; a batch the database refuses is split so one bad message fails alone.

        A refusal of the data itself (a constraint or a data error, SQLSTATE classes 22 and 23)
        is that message's own ``message_rejected``: resending it unchanged cannot help. Anything
        else that is not the database being down is ``unavailable`` (send it again). Either way
        the failed transaction wrote nothing (one statement on PostgreSQL, rolled back elsewhere).
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                outcomes, new_messages = await self._write_txn(database, batch)
                break
            except (Unavailable, OperationalError, ConnectionError, OSError) as exc:
                if attempt < BATCH_RETRIES and _is_transient(exc):
                    continue
                log.warning("chat batch of %d not stored: database unavailable (%s)", len(batch), type(exc).__name__)
                _fail(batch, Unavailable("the message could not be saved right now; send it again"))
                return
            except (repo.BatchConflict, IntegrityError, DBAPIError) as exc:
                # A concurrent writer raced us (deadlock, unique key): the retry sees its rows.
                if attempt < BATCH_RETRIES:
                    continue
                if len(batch) > 1:
                    for item in batch:  # isolate the one bad message instead of failing its neighbours
                        await self._write(database, [item])
                    return
                log.warning("chat message not stored: %s", type(exc).__name__)
                _fail(batch, _failure_of(exc))
                return
            except Exception as exc:
                if len(batch) > 1:
                    for item in batch:
                        await self._write(database, [item])
                    return
                if _is_refusal(exc):
                    log.warning("chat message refused by the database: %s", type(exc).__name__)
                else:
                    log.exception("chat message not stored")
                _fail(batch, _failure_of(exc))
                return
        self.batches += 1
        for item, outcome in zip(batch, outcomes, strict=True):
            item.finish(outcome)
        if not new_messages:
            return
        self._ctx.metrics.chat_messages.inc(len(new_messages))
        for listener in self._listeners:
            try:
                listener(new_messages)
            except Exception:
                log.exception("chat commit listener failed")
        hints = self._hints
        for message in new_messages:
            if message.seq > hints.get(message.consultation_id, 0):
                hints[message.consultation_id] = message.seq
        self._hint_wakeup.set()

    async def _publish_hints(self) -> None:
        """Publish the commit hints off the write path, folding whatever piled up into one message.

        A lane never waits for the bus: a slow or silent Redis link delays the hint, not the next
        batch (seen: about 5 s per batch). A hint that cannot be published is not retried here;
        the bus tells every process to catch up from the database once its link works again.
        """
        while not self._stopping:
            if not self._hints:
                self._hint_wakeup.clear()
                await self._hint_wakeup.wait()
                continue
            hints, self._hints = self._hints, {}
            try:
                await self._ctx.bus.publish(
                    chat_commits_channel(), {"type": EVENT_CHAT_COMMITTED, "seqs": [[c, s] for c, s in hints.items()]}
                )
            except Exception as exc:
                # Stored and acknowledged already; other processes catch up when the bus resyncs.
                log.warning("could not publish chat commit hint: %s", type(exc).__name__)

    async def _write_txn(
        self, database: repo.BatchDatabase, batch: Sequence[_Pending]
    ) -> tuple[list[PostedMessage | DomainError], list[ChatMessage]]:
        """Store the batch (the repository picks the backend's way) and rebuild each outcome from what it did."""
        now = self._ctx.clock.now()
        now_iso = now.isoformat()
        items = [
            (
                item.draft.consultation_id,
                item.principal.key,
                item.principal.role,
                item.principal.subject_type,
                item.principal.subject_id,
                item.draft.client_message_id,
                item.draft.kind,
                item.draft.text,
                item.draft.attachment_id,
            )
            for item in batch
        ]
        result = await database.write_batch(items, now)
        stored = {
            (row.consultation_id, row.sender_key, row.client_message_id): ChatMessage.from_row(row)
            for row in result.sent
        }
        outcomes: list[PostedMessage | DomainError] = []
        new_messages: list[ChatMessage] = []
        fresh: dict[tuple[int, str, str], ChatMessage] = {}
        for item, values in zip(batch, items, strict=True):
            key = (values[0], values[1], values[5])
            earlier = fresh.get(key) or stored.get(key)
            refusal = write_refusal(result.accesses.get(values[0]), item.principal)
            if earlier is not None and not isinstance(refusal, NotFound):
                outcomes.append(PostedMessage(earlier, duplicate=True))
                continue
            written = result.inserted.get(key)
            if written is None:
                if refusal is None:  # the only other reason the statement skips a message
                    refusal = NotFound("no such attachment in this consultation", code=ERR_UNKNOWN_ATTACHMENT)
                outcomes.append(refusal)
                continue
            if refusal is not None:  # the SQL and Python rules disagree: never silently
                log.error("chat batch stored a message the rules refuse (%s)", refusal.code)
            message = ChatMessage(
                id=written[0],
                consultation_id=values[0],
                seq=written[1],
                sender_key=values[1],
                sender_role=values[2],
                client_message_id=values[5],
                kind=values[6],
                body=values[7],
                attachment_id=values[8],
                created_at=now,
            )
            message.origin = item.origin
            message._iso = now_iso
            fresh[key] = message
            new_messages.append(message)
            outcomes.append(PostedMessage(message, duplicate=False))
        new_messages.sort(key=lambda m: (m.consultation_id, m.seq))
        return outcomes, new_messages


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _is_refusal(exc: BaseException) -> bool:
    """Whether the database refused the data itself: an integrity or data error (SQLSTATE 23xxx, 22xxx).

    SQLAlchemy wraps SQLite's and the pool's errors (``IntegrityError``, ``DataError``); the
    PostgreSQL lane raises asyncpg's own, which carry their SQLSTATE. A lost race
    (``BatchConflict``: unique key, deadlock) is not a refusal: the retry sees the other's rows.
    """
    if isinstance(exc, repo.BatchConflict):
        return False
    if isinstance(exc, IntegrityError | DataError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate[:2] in {"22", "23"}


def _failure_of(exc: BaseException) -> DomainError:
    if _is_refusal(exc):
        return MessageRejected("the database refused this message; it was not stored (unchanged, it fails again)")
    return Unavailable("the message could not be saved; send it again")


def _fail(batch: Sequence[_Pending], error: DomainError) -> None:
    for item in batch:
        item.finish(error)


# ---------------------------------------------------------------------------------------------
# Use cases


async def post_message(
    ctx: ServiceContext, writer: ChatWriter, principal: Principal, draft: MessageDraft
) -> PostedMessage:
    """Store a message (or recognise a resend) and return it once committed.

    Raises:
        NotFound: not a participant (audited), or the attachment is not this sender's in this consultation.
        Conflict: ``consultation_closed`` / ``consultation_not_active``.
        Unavailable: the database could not store it; nothing was saved, the client resends.
    """
    try:
        return await writer.submit(principal, draft)
    except NotFound as exc:
        if exc.code == "not_found":
            await record_denial(ctx, principal, draft.consultation_id, action="chat.send")
        raise


async def authorize_reader(
    ctx: ServiceContext, principal: Principal, consultation_id: int, *, action: str
) -> ConsultationAccess:
    """The consultation if the caller takes part in it; a denial is audited.

    Raises:
        NotFound: it does not exist or the caller is not its patient or doctor.
    """
    async with ctx.uow() as uow:
        access = await repo.get_access(uow.session, consultation_id)
    if participant_of(access, principal) is None or access is None:
        await record_denial(ctx, principal, consultation_id, action=action)
        raise NotFound("no such consultation")
    return access


async def record_denial(ctx: ServiceContext, principal: Principal, consultation_id: int, *, action: str) -> None:
    """Audit a refused access to a consultation's chat (checklist B4, D5)."""
    log.info("chat access denied: %s %s consultation %s", principal.key, action, consultation_id)
    try:
        await audit.record(
            ctx,
            principal,
            action=action,
            resource_type="consultation_chat",
            resource_id=consultation_id,
            patient_id=None,
            result=audit.RESULT_DENIED,
        )
    except Unavailable:
        log.warning("could not audit a chat denial: database unavailable")


async def open_transcript(ctx: ServiceContext, principal: Principal, consultation_id: int) -> Transcript:
    """Authorize a subscriber, audit the read, and return the state a client starts from.

    Raises:
        NotFound: not a participant.
    """
    async with ctx.uow() as uow:
        access = await repo.get_access(uow.session, consultation_id)
        if participant_of(access, principal) is None or access is None:
            allowed = False
        else:
            allowed = True
            marks = await repo.read_marks(uow.session, consultation_id)
            await audit.record_txn(
                ctx,
                uow.session,
                principal,
                action="chat.subscribe",
                resource_type="consultation_chat",
                resource_id=consultation_id,
                patient_id=access.insured_person_id,
            )
            await uow.commit()
    if not allowed or access is None:
        await record_denial(ctx, principal, consultation_id, action="chat.subscribe")
        raise NotFound("no such consultation")
    return Transcript(access=access, read_marks=marks)


async def read_messages(ctx: ServiceContext, consultation_id: int, after_seq: int, limit: int) -> list[ChatMessage]:
    """Messages after a sequence, for a subscriber already authorized (replay and catch-up)."""
    async with ctx.uow() as uow:
        rows = await repo.messages_after(uow.session, consultation_id, after_seq, limit)
    return [ChatMessage.from_row(row) for row in rows]


async def read_messages_many(ctx: ServiceContext, cursors: dict[int, int], limit_each: int) -> list[ChatMessage]:
    """Catch several consultations up at once (one query on PostgreSQL)."""
    async with ctx.uow() as uow:
        rows = await repo.messages_after_many(uow.session, cursors, limit_each)
    return [ChatMessage.from_row(row) for row in rows]


async def consultation_access(ctx: ServiceContext, consultation_id: int) -> ConsultationAccess | None:
    """Current participants and status (re-checked when a consultation changes)."""
    async with ctx.uow() as uow:
        return await repo.get_access(uow.session, consultation_id)


async def history(
    ctx: ServiceContext, principal: Principal, consultation_id: int, *, after_seq: int, limit: int
) -> History:
    """A page of the chat after ``after_seq`` for a participant; the read is audited.

    Raises:
        NotFound: not a participant.
        InvalidInput: negative ``after_seq`` or ``limit`` outside 1..500.
    """
    if after_seq < 0 or not 1 <= limit <= HISTORY_PAGE_MAX:
        raise InvalidInput(f"after_seq must be >= 0 and limit 1..{HISTORY_PAGE_MAX}", code="invalid_format")
    async with ctx.uow() as uow:
        access = await repo.get_access(uow.session, consultation_id)
        allowed = participant_of(access, principal) is not None and access is not None
        if allowed and access is not None:
            rows = await repo.messages_after(uow.session, consultation_id, after_seq, limit + 1)
            await audit.record_txn(
                ctx,
                uow.session,
                principal,
                action="chat.history",
                resource_type="consultation_chat",
                resource_id=consultation_id,
                patient_id=access.insured_person_id,
            )
            await uow.commit()
    if not allowed or access is None:
        await record_denial(ctx, principal, consultation_id, action="chat.history")
        raise NotFound("no such consultation")
    messages = [ChatMessage.from_row(row) for row in rows[:limit]]
    return History(messages=messages, last_seq=access.last_seq, has_more=len(rows) > limit)


async def mark_read(ctx: ServiceContext, principal: Principal, consultation_id: int, seq: int) -> int:
    """Record that the caller has read up to ``seq`` and tell the other participant (read receipt).

    Returns:
        The caller's read mark now stored (never moves backwards).

    Raises:
        NotFound: not a participant.
        InvalidInput: ``seq`` beyond the last message.
    """
    async with ctx.uow() as uow:
        access = await repo.get_access(uow.session, consultation_id)
        if participant_of(access, principal) is None or access is None:
            allowed = False
        else:
            allowed = True
            if not 0 <= seq <= access.last_seq:
                raise InvalidInput("seq is beyond the last message", code="invalid_format")
            stored = await repo.advance_read_mark_txn(uow.session, consultation_id, principal.key, seq, ctx.clock.now())
            await uow.commit()
    if not allowed:
        await record_denial(ctx, principal, consultation_id, action="chat.read")
        raise NotFound("no such consultation")
    await ctx.bus.publish(
        consultation_channel(consultation_id),
        {"type": EVENT_CHAT_READ, "consultation_id": consultation_id, "reader": principal.key, "seq": stored},
    )
    return stored


# ---------------------------------------------------------------------------------------------
# Attachments


class AttachmentTooLarge(DomainError):
    """The image re-encoded without metadata is over the attachment limit (413, like an upload that is)."""

    code = rules.ERR_ATTACHMENT_TOO_LARGE
    status = 413


class DecodersBusy(Unavailable):
    """Every image decoder of this process is busy: come back shortly (503 with Retry-After)."""

    code = "images_busy"
    retry_after_seconds = 2


async def _clean_image(data: bytes) -> images.CleanImage:
    """Verify the upload with Pillow (its real format, never the name or declared type), then re-encode it
    without metadata (EXIF/GPS, XMP, ICC, comments), upright and in the same format, at most
    MAX_ATTACHMENT_SIDE long, a few decodes at a time (bounded memory)."""
    try:
        return await images.reencode_bounded(
            data,
            max_pixels=MAX_ATTACHMENT_PIXELS,
            max_side=MAX_ATTACHMENT_SIDE,
            max_full_decode_pixels=MAX_ATTACHMENT_FULL_DECODE_PIXELS,
        )
    except images.ImagesBusy as exc:
        raise DecodersBusy("the server is busy decoding images; send it again in a moment") from exc
    except images.UnreadableImage as exc:
        raise _not_an_image() from exc


def _not_an_image() -> InvalidInput:
    return InvalidInput(
        "the file is not a readable JPEG, PNG or WebP image", code=rules.ERR_ATTACHMENT_CONTENT_MISMATCH
    )


async def authorize_upload(ctx: ServiceContext, principal: Principal, consultation_id: int) -> ConsultationAccess:
    """The consultation if the caller may attach a file to its chat now; a denial is audited.

    Raises:
        NotFound: not a participant. Conflict: the chat is closed (or not yet open) for the caller.
    """
    async with ctx.uow() as uow:
        access = await repo.get_access(uow.session, consultation_id)
    refusal = write_refusal(access, principal)
    if refusal is not None:
        if isinstance(refusal, NotFound):
            await record_denial(ctx, principal, consultation_id, action="chat.attachment_upload")
        raise refusal
    assert access is not None
    return access


async def save_attachment(
    ctx: ServiceContext, principal: Principal, consultation_id: int, data: bytes, declared_type: str
) -> AttachmentInfo:
    """Store an image a participant uploads (a photo of a rash) for a later ``attachment`` message.

    The declared type must be JPEG, PNG or WebP and the content must really be that image
    (magic bytes, then Pillow opens and verifies it). What is stored, in the database so that every
    server process can serve it, is the image re-encoded without the uploader's metadata; its size
    and SHA-256 are the stored bytes'.

    Raises:
        NotFound: not a participant. Conflict: the chat is closed for the caller.
        InvalidInput: ``unsupported_attachment_type``, ``empty_attachment``, ``attachment_too_large``,
            ``attachment_content_mismatch``.
        AttachmentTooLarge: the re-encoded image is over the limit.
    """
    access = await authorize_upload(ctx, principal, consultation_id)
    mime = rules.validate_attachment_facts(declared_type, len(data), head=data[:16])
    clean = await _clean_image(data)
    if clean.mime != mime:
        raise _not_an_image()
    if len(clean.data) > rules.MAX_ATTACHMENT_BYTES:
        # Possible for a PNG that Pillow compresses worse than the uploader's tool did.
        raise AttachmentTooLarge(
            f"the image is over {rules.MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB once re-encoded without metadata",
            details={"limit": rules.MAX_ATTACHMENT_BYTES, "size": len(clean.data)},
        )
    digest = hashlib.sha256(clean.data).hexdigest()
    async with ctx.uow() as uow:
        row = await repo.add_attachment_txn(
            uow.session,
            ChatAttachment(
                consultation_id=consultation_id,
                uploader_key=principal.key,
                mime=mime,
                size_bytes=len(clean.data),
                sha256=digest,
                content=clean.data,
                created_at=ctx.clock.now(),
            ),
        )
        await audit.record_txn(
            ctx,
            uow.session,
            principal,
            action="chat.attachment_upload",
            resource_type="chat_attachment",
            resource_id=row.id,
            patient_id=access.insured_person_id,
        )
        await uow.commit()
    return AttachmentInfo(row.id, consultation_id, mime, len(clean.data), digest, clean.width, clean.height)


async def load_attachment(
    ctx: ServiceContext, principal: Principal, consultation_id: int, attachment_id: int
) -> tuple[ChatAttachment, bytes]:
    """An attachment's record and bytes, for a participant; the read is audited.

    Raises:
        NotFound: not a participant, or no such attachment in this consultation.
    """
    access = await authorize_reader(ctx, principal, consultation_id, action="chat.attachment_read")
    async with ctx.uow() as uow:
        row = await repo.get_attachment(uow.session, consultation_id, attachment_id)
        if row is None:
            raise NotFound("no such attachment", code="not_found")
        await audit.record_txn(
            ctx,
            uow.session,
            principal,
            action="chat.attachment_read",
            resource_type="chat_attachment",
            resource_id=attachment_id,
            patient_id=access.insured_person_id,
        )
        await uow.commit()
    if row.content is not None:
        return row, row.content
    return row, await _legacy_file(ctx, row)


async def _legacy_file(ctx: ServiceContext, row: ChatAttachment) -> bytes:
    """An attachment uploaded before migration 0003: a file on the disk of the process that took it.

    Those files were kept as uploaded, so they are cleaned the same way before they are served.
    """
    if row.path is None:
        raise NotFound("the attachment has no content", code="not_found")
    try:
        data = await asyncio.to_thread((ctx.settings.uploads_dir / row.path).read_bytes)
    except FileNotFoundError as exc:
        raise NotFound("the attachment's file is missing", code="not_found") from exc
    try:
        clean = await images.reencode_bounded(data, max_pixels=MAX_ATTACHMENT_PIXELS, max_side=MAX_ATTACHMENT_SIDE)
    except images.ImagesBusy as exc:
        raise DecodersBusy("the server is busy decoding images; try again in a moment") from exc
    except images.UnreadableImage as exc:
        raise NotFound("the attachment's file is damaged", code="not_found") from exc
    return clean.data
