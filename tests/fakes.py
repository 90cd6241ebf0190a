"""Fakes that implement the real ports (no unittest.mock)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path


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


async def outbox_code(path: Path, *, after_lines: int = 0, timeout: float = 10.0) -> str:
    """The newest code in a server's outbox file, waiting for it to be written.

    ``policy/start`` answers first and its background sender writes the code a moment later
    (issue 11 item 10), so a test reading the file right after the answer polls briefly.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        if len(lines) > after_lines:
            found = re.search(r"\b(\d{6})\b", json.loads(lines[-1])["text"])
            if found:
                return found.group(1)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no code in {path} after {timeout} s")
        await asyncio.sleep(0.02)
