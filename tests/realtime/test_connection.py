"""``server/realtime/connection.py`` on its own: batching, framing, bounds (checklist B8) and error replies."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ValidationError

from server.domain.errors import Conflict, Unavailable
from server.realtime import messages
from server.realtime.connection import _frame
from tests.realtime.modules import connection, turn


def test_frames_carry_the_three_length_forms_of_rfc_6455() -> None:
    assert _frame(b"x" * 125)[:2] == bytes((0x81, 125))
    assert _frame(b"x" * 126)[:4] == bytes((0x81, 126, 0, 126))
    assert _frame(b"x" * 65_536)[:2] == bytes((0x81, 127)) and len(_frame(b"x" * 65_536)) == 65_536 + 10


async def test_frames_queued_in_one_loop_turn_are_written_in_one_call_in_order() -> None:
    conn, transport = connection()
    for number in range(5):
        conn.send_result(number, {"n": number})
    assert transport.writes == []  # nothing is written synchronously
    await turn()
    assert len(transport.writes) == 1
    assert [frame["id"] for frame in transport.frames()] == [0, 1, 2, 3, 4]
    conn.send_event(9, {"type": "chat.typing"})
    await turn()
    assert len(transport.writes) == 2 and transport.frames()[-1]["event"] == {"type": "chat.typing"}


async def test_a_client_past_the_queue_limit_is_closed_as_too_slow_not_buffered() -> None:
    conn, transport = connection(queue_limit=3)
    for number in range(4):
        conn.send_result(number)
    assert conn.closing
    await turn()
    assert transport.writes == []  # the queue was dropped: it resumes from its last seq
    conn.send_result(99)
    assert conn._queue == []
    await conn.cleanup()


async def test_a_client_with_megabytes_unread_is_closed_at_the_flush() -> None:
    conn, transport = connection(buffered=5 * 1024 * 1024)
    conn.send_result(1)
    await turn()
    assert conn.closing and transport.writes == []
    await conn.cleanup()


async def test_the_rate_limit_answers_rate_limited_with_a_wait_then_closes_a_flooder() -> None:
    conn, transport = connection(messages_per_minute=60, message_burst=2)
    assert conn.take_token() == 0.0 and conn.take_token() == 0.0
    wait = conn.take_token()
    assert 0 < wait <= 1.0
    conn.refuse_over_rate(5, wait)
    await turn()
    [refusal] = transport.frames()
    assert refusal["id"] == 5 and refusal["error"]["code"] == messages.ERR_RATE_LIMITED
    assert refusal["error"]["retry_after_ms"] >= 1
    for _ in range(60):
        conn.refuse_over_rate(None, wait)
    assert conn.closing
    await conn.cleanup()


async def test_errors_get_their_wire_codes_in_one_place() -> None:
    conn, transport = connection()

    class Probe(BaseModel):
        n: int

    try:
        Probe.model_validate({"n": "x"})
    except ValidationError as exc:
        invalid = exc
    conn.handle_exception(1, Conflict("taken", code="offer_taken"))
    conn.handle_exception(2, Unavailable("down", code="database_down"))
    conn.handle_exception(3, invalid)
    conn.handle_exception(4, RuntimeError("boom"))
    await turn()
    codes = {frame["id"]: frame["error"]["code"] for frame in transport.frames()}
    assert codes == {
        1: "offer_taken",
        2: messages.ERR_UNAVAILABLE,
        3: messages.ERR_INVALID_FORMAT,
        4: messages.ERR_UNKNOWN_ERROR,
    }
    assert "boom" not in str(transport.frames())  # an unexpected error's text stays in the log


async def test_cleanup_runs_every_unsubscribe_once_and_cancels_owned_tasks() -> None:
    conn, _transport = connection()
    calls: list[str] = []
    conn.subscriptions[1] = lambda: calls.append("subscription")
    conn.on_close(lambda: calls.append("session"))
    conn.on_close(lambda: 1 / 0)  # a failing callback does not stop the others  # type: ignore[func-returns-value]
    conn.on_close(lambda: calls.append("presence"))
    task = asyncio.create_task(asyncio.sleep(60))
    conn.own(task)
    await conn.cleanup()
    assert calls == ["subscription", "session", "presence"]
    assert task.cancelled() and conn.subscriptions == {}
    await conn.cleanup()
    assert calls == ["subscription", "session", "presence"]
