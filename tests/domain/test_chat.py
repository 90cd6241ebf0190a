"""Chat rules: client message ids for de-duplication, text and attachment limits, sequence numbers."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.domain.chat import (
    ALLOWED_ATTACHMENT_TYPES,
    MAX_ATTACHMENT_BYTES,
    MAX_TEXT_CHARS,
    advance_read_mark,
    messages_after,
    next_sequence,
    sniff_image_type,
    validate_after_seq,
    validate_attachment_facts,
    validate_client_message_id,
    validate_text,
)
from server.domain.errors import InvalidInput

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 "


@pytest.mark.parametrize("value", ["a", "msg-1_A", "x" * 64, "0f3c2a9e-7b1d-4c55-9d7e-8f0a1b2c3d4e"])
def test_client_message_ids_of_safe_characters_are_accepted(value: str) -> None:
    assert validate_client_message_id(value) == value


@pytest.mark.parametrize("value", ["", "x" * 65, "a b", "a/b", "ид", "abc\n", "a.b"])
def test_other_client_message_ids_are_refused(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_client_message_id(value)
    assert caught.value.code == "invalid_client_message_id"


def test_text_is_stripped_and_line_breaks_normalised() -> None:
    assert validate_text("  hello\r\n\tdoctor\r ") == "hello\n\tdoctor"


def test_text_at_the_limit_is_accepted_and_one_more_is_refused() -> None:
    assert len(validate_text("я" * MAX_TEXT_CHARS)) == MAX_TEXT_CHARS
    with pytest.raises(InvalidInput) as caught:
        validate_text("я" * (MAX_TEXT_CHARS + 1))
    assert caught.value.code == "message_too_long"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("", "empty_message"),
        (" \n\t ", "empty_message"),
        ("a\x00b", "control_characters"),
        ("a\x1bb", "control_characters"),
        ("a\x7fb", "control_characters"),
        ("a\ud800b", "control_characters"),
    ],
)
def test_empty_text_and_control_characters_are_refused(value: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_text(value)
    assert caught.value.code == code


def test_emoji_and_joiners_are_kept() -> None:
    assert validate_text("спасибо \U0001f469\u200d\u2695\ufe0f") == "спасибо \U0001f469\u200d\u2695\ufe0f"


def test_allowed_attachments_are_three_image_types_up_to_5_mib() -> None:
    assert {"image/jpeg", "image/png", "image/webp"} == ALLOWED_ATTACHMENT_TYPES
    assert MAX_ATTACHMENT_BYTES == 5 * 1024 * 1024
    assert validate_attachment_facts("Image/JPEG; charset=binary", MAX_ATTACHMENT_BYTES) == "image/jpeg"


@pytest.mark.parametrize(
    ("mime", "size", "code"),
    [
        ("application/pdf", 100, "unsupported_attachment_type"),
        ("image/gif", 100, "unsupported_attachment_type"),
        ("image/svg+xml", 100, "unsupported_attachment_type"),
        ("image/png", 0, "empty_attachment"),
        ("image/png", MAX_ATTACHMENT_BYTES + 1, "attachment_too_large"),
    ],
)
def test_other_attachments_are_refused(mime: str, size: int, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_attachment_facts(mime, size)
    assert caught.value.code == code


def test_the_content_must_show_the_declared_type() -> None:
    assert sniff_image_type(JPEG) == "image/jpeg"
    assert sniff_image_type(PNG) == "image/png"
    assert sniff_image_type(WEBP) == "image/webp"
    assert sniff_image_type(b"<svg") is None
    assert validate_attachment_facts("image/webp", 1000, head=WEBP) == "image/webp"
    with pytest.raises(InvalidInput) as caught:
        validate_attachment_facts("image/png", 1000, head=JPEG)
    assert caught.value.code == "attachment_content_mismatch"


def test_sequence_numbers_start_at_one_without_gaps() -> None:
    assert next_sequence(0) == 1
    assert next_sequence(41) == 42
    with pytest.raises(ValueError):
        next_sequence(-1)


@dataclass(frozen=True)
class Msg:
    seq: int


def test_messages_after_returns_what_follows_the_cursor_in_order() -> None:
    stored = [Msg(3), Msg(1), Msg(2), Msg(5), Msg(4)]
    assert messages_after(stored, 0) == [Msg(1), Msg(2), Msg(3), Msg(4), Msg(5)]
    assert messages_after(stored, 3) == [Msg(4), Msg(5)]
    assert messages_after(stored, 5) == []
    assert messages_after(stored, 1, limit=2) == [Msg(2), Msg(3)]
    with pytest.raises(InvalidInput):
        messages_after(stored, -1)
    with pytest.raises(InvalidInput):
        validate_after_seq(-5)


@settings(deadline=None, max_examples=100)
@given(total=st.integers(min_value=0, max_value=60), limit=st.integers(min_value=1, max_value=25))
def test_paging_from_the_last_seq_seen_yields_every_message_once(total: int, limit: int) -> None:
    stored = [Msg(seq) for seq in range(1, total + 1)]
    seen: list[Msg] = []
    cursor = 0
    while page := messages_after(stored, cursor, limit=limit):
        seen.extend(page)
        cursor = page[-1].seq
    assert seen == stored


def test_read_marks_only_move_forward_and_never_past_the_last_message() -> None:
    assert advance_read_mark(3, 5, 10) == 5
    assert advance_read_mark(5, 3, 10) == 5
    assert advance_read_mark(5, 99, 10) == 10
