"""A feed that meets a gap does not echo the sender's own messages back when it refetches them (case d).

A process's own messages reach its feed without a query, each with the socket that sent it; if
some other process's messages are missing before them (their hint was lost on a silent bus
link), the feed refetches from the database, where the socket is not recorded. The sender has
its acknowledgements already; the message must not come back to it as an event.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from server.realtime.hub import ConsultationFeed, Listener
from server.services.chat import ChatMessage


class _Hub:
    def __init__(self) -> None:
        self.fetches: list[int] = []

    def listen(self, channel: str, handler: Callable[[Any], None]) -> Callable[[], None]:
        return lambda: None

    def request_fetch(self, consultation_id: int) -> None:
        self.fetches.append(consultation_id)


class _Connection:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, frame: str) -> None:
        self.sent.append(frame)


def _message(seq: int, sender: str, origin: object = None) -> ChatMessage:
    message = ChatMessage(
        id=seq,
        consultation_id=7,
        seq=seq,
        sender_key=sender,
        sender_role="doctor",
        client_message_id=f"c{seq}",
        kind="text",
        body=f"text {seq}",
        attachment_id=None,
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    message.origin = origin
    return message


def test_own_messages_past_a_gap_are_not_echoed_when_refetched() -> None:
    hub = _Hub()
    feed = ConsultationFeed(hub, 7)  # type: ignore[arg-type]
    feed.delivered_seq = 1
    doctor = _Connection()
    listener = Listener(doctor, 1, 1)  # type: ignore[arg-type]
    listener.replaying = False
    feed.listeners.append(listener)
    # Seq 2 and 3 are the patient's on another process (hint lost); 4 and 5 the doctor's, sent here.
    feed.add_messages([_message(4, "staff:1", doctor), _message(5, "staff:1", doctor)])
    assert hub.fetches == [7] and feed.delivered_seq == 1
    # The refetch from the database: no origins on its messages.
    feed.add_messages([_message(seq, "insured:1" if seq < 4 else "staff:1") for seq in (2, 3, 4, 5)])
    assert feed.delivered_seq == 5 and listener.last_seq == 5
    assert len(doctor.sent) == 2, doctor.sent  # the patient's two messages only
    assert all('"seq":2' in doctor.sent[0] or '"seq":3' in frame for frame in doctor.sent)
