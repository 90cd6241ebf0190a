"""Consultation chat rules: message ids for de-duplication, text and attachment limits, sequence numbers."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from enum import StrEnum
from typing import Final, Protocol, TypeVar

from server.domain.errors import InvalidInput

MAX_TEXT_CHARS: Final = 4000
MAX_CLIENT_MESSAGE_ID_CHARS: Final = 64
MAX_ATTACHMENT_BYTES: Final = 5 * 1024 * 1024
ALLOWED_ATTACHMENT_TYPES: Final[frozenset[str]] = frozenset({"image/jpeg", "image/png", "image/webp"})
MESSAGES_PAGE_LIMIT: Final = 200

ERR_INVALID_CLIENT_MESSAGE_ID: Final = "invalid_client_message_id"
ERR_EMPTY_MESSAGE: Final = "empty_message"
ERR_MESSAGE_TOO_LONG: Final = "message_too_long"
ERR_CONTROL_CHARACTERS: Final = "control_characters"
ERR_UNSUPPORTED_ATTACHMENT: Final = "unsupported_attachment_type"
ERR_ATTACHMENT_TOO_LARGE: Final = "attachment_too_large"
ERR_EMPTY_ATTACHMENT: Final = "empty_attachment"
ERR_ATTACHMENT_CONTENT_MISMATCH: Final = "attachment_content_mismatch"

_CLIENT_MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MessageKind(StrEnum):
    """What a chat message carries."""

    TEXT = "text"
    ATTACHMENT = "attachment"
    SYSTEM = "system"


class SenderRole(StrEnum):
    """Who wrote a message."""

    INSURED = "insured"
    DOCTOR = "doctor"
    SYSTEM = "system"


class _Sequenced(Protocol):
    @property
    def seq(self) -> int: ...


M = TypeVar("M", bound=_Sequenced)


def validate_client_message_id(value: str) -> str:
    """Check the id a client gives each message, so a resent message is recognised and not stored twice.

    Raises:
        InvalidInput: ``invalid_client_message_id`` unless 1-64 characters of ``[A-Za-z0-9_-]``.
    """
    if _CLIENT_MESSAGE_ID.fullmatch(value) is None:
        raise InvalidInput(
            "client_message_id must be 1-64 characters of letters, digits, '_' and '-'",
            code=ERR_INVALID_CLIENT_MESSAGE_ID,
        )
    return value


def validate_text(value: str) -> str:
    """Check a text message before it is stored, so every stored message can be shown and sent as JSON.

    Line breaks are normalised to ``\\n`` and surrounding whitespace stripped; tabs and line breaks
    are kept, other control characters (NUL included) and lone surrogates are refused.

    Returns:
        The text as stored.

    Raises:
        InvalidInput: ``empty_message``, ``message_too_long`` (over ``MAX_TEXT_CHARS``), ``control_characters``.
    """
    text = value.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise InvalidInput("a message must not be empty", code=ERR_EMPTY_MESSAGE)
    if len(text) > MAX_TEXT_CHARS:
        raise InvalidInput(
            f"a message may be at most {MAX_TEXT_CHARS} characters",
            code=ERR_MESSAGE_TOO_LONG,
            details={"limit": MAX_TEXT_CHARS, "length": len(text)},
        )
    if any(unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t" for ch in text):
        raise InvalidInput("a message must not contain control characters", code=ERR_CONTROL_CHARACTERS)
    return text


def sniff_image_type(head: bytes) -> str | None:
    """The image type the first bytes of a file show (JPEG, PNG, WebP), or ``None``: never trust the declared type."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def validate_attachment_facts(mime: str, size: int, *, head: bytes | None = None) -> str:
    """Check an upload's type and size before it is written to disk.

    Args:
        mime: The declared content type (parameters such as ``; charset=`` are ignored).
        size: Its size in bytes.
        head: The file's first bytes (12 suffice); when given, they must show the declared type.

    Returns:
        The normalised content type.

    Raises:
        InvalidInput: ``unsupported_attachment_type``, ``empty_attachment``, ``attachment_too_large``
            (over ``MAX_ATTACHMENT_BYTES``), ``attachment_content_mismatch``.
    """
    normal = mime.split(";", 1)[0].strip().lower()
    if normal not in ALLOWED_ATTACHMENT_TYPES:
        raise InvalidInput(
            "only JPEG, PNG and WebP images can be attached",
            code=ERR_UNSUPPORTED_ATTACHMENT,
            details={"allowed": sorted(ALLOWED_ATTACHMENT_TYPES)},
        )
    if size <= 0:
        raise InvalidInput("the attachment is empty", code=ERR_EMPTY_ATTACHMENT)
    if size > MAX_ATTACHMENT_BYTES:
        raise InvalidInput(
            f"an attachment may be at most {MAX_ATTACHMENT_BYTES // (1024 * 1024)} MiB",
            code=ERR_ATTACHMENT_TOO_LARGE,
            details={"limit": MAX_ATTACHMENT_BYTES, "size": size},
        )
    if head is not None and sniff_image_type(head) != normal:
        raise InvalidInput("the file is not the image type it claims to be", code=ERR_ATTACHMENT_CONTENT_MISMATCH)
    return normal


def next_sequence(last_seq: int) -> int:
    """The number of a consultation's next message: messages are numbered 1, 2, 3... without gaps.

    Raises:
        ValueError: a negative ``last_seq`` (0 means no message yet).
    """
    if last_seq < 0:
        raise ValueError("sequence numbers start at 1; last_seq is 0 before the first message")
    return last_seq + 1


def validate_after_seq(value: int) -> int:
    """Check the ``after`` cursor a client resumes from (0 for the whole history).

    Raises:
        InvalidInput: ``invalid_cursor`` for a negative value.
    """
    if value < 0:
        raise InvalidInput("after must be 0 or a message number", code="invalid_cursor")
    return value


def messages_after(messages: Iterable[M], after_seq: int, *, limit: int = MESSAGES_PAGE_LIMIT) -> list[M]:
    """The messages a client missed: sequence strictly greater than ``after_seq``, ascending, at most ``limit``.

    This is the resume contract of the chat: a client remembers the highest ``seq`` it has shown
    and asks for what follows (0 for everything); when it receives a full page it asks again from
    the last ``seq``. Because numbers have no gaps, ``after_seq + 1`` is always the next message.

    Raises:
        InvalidInput: ``invalid_cursor`` for a negative ``after_seq``.
        ValueError: a non-positive ``limit``.
    """
    validate_after_seq(after_seq)
    if limit <= 0:
        raise ValueError("limit is positive")
    return sorted((m for m in messages if m.seq > after_seq), key=lambda m: m.seq)[:limit]


def advance_read_mark(current: int, requested: int, last_seq: int) -> int:
    """A reader's new read mark: it only moves forward and never past the last message (read receipts)."""
    return max(current, min(requested, last_seq))
