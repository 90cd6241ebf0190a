"""Fakes that implement the real ports (no unittest.mock)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class SentMessage:
    """One message the fake sender delivered."""

    phone: str
    text: str
    at: datetime


@dataclass
class RecordingSender:
    """A ``CodeSender`` that keeps messages in memory so tests can read the code."""

    messages: list[SentMessage] = field(default_factory=list)

    async def send(self, phone: str, text: str, *, now: datetime) -> None:
        """Record the message."""
        self.messages.append(SentMessage(phone, text, now))

    def last_code(self, phone: str | None = None) -> str:
        """The six-digit code in the newest message (to ``phone`` if given)."""
        for message in reversed(self.messages):
            if phone is None or message.phone == phone:
                found = re.search(r"\b(\d{6})\b", message.text)
                if found:
                    return found.group(1)
        raise AssertionError("no code was sent")
