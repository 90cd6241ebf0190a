"""Pieces for the per-module realtime tests: a real :class:`Connection` over a recording transport.

The transport stands in for the kernel socket only (it records what would be written); the
connection, the hub, the bus and the database are the application's own.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from server.realtime.connection import Connection
from server.realtime.hub import RealtimeHub
from server.services.identity import Principal


class RecordingTransport(asyncio.Transport):
    """A transport that keeps each ``write`` call (one call per flush is the point of the design)."""

    def __init__(self, buffered: int = 0) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = buffered
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def frames(self) -> list[dict[str, Any]]:
        """Every text frame written so far, decoded (RFC 6455 unmasked text frames)."""
        out: list[dict[str, Any]] = []
        data = b"".join(self.writes)
        while data:
            assert data[0] == 0x81, "a final text frame"
            length, start = data[1], 2
            if length == 126:
                length, start = int.from_bytes(data[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(data[2:10], "big"), 10
            out.append(json.loads(data[start : start + length]))
            data = data[start + length :]
        return out


def principal(role: str = "doctor", subject_id: int = 7) -> Principal:
    """A principal as authentication makes it."""
    subject_type = "insured" if role == "insured" else "staff"
    return Principal(subject_type, subject_id, role, "session-1", datetime.now(UTC) + timedelta(minutes=15))


def connection(
    hub: RealtimeHub | None = None,
    *,
    who: Principal | None = None,
    queue_limit: int = 100,
    messages_per_minute: float = 600,
    message_burst: int = 10,
    buffered: int = 0,
) -> tuple[Connection, RecordingTransport]:
    """A connection (running loop required) and the transport it writes to."""
    transport = RecordingTransport(buffered)
    conn = Connection(
        web.WebSocketResponse(),
        who or principal(),
        hub,  # type: ignore[arg-type]  # the transport-level tests need no hub
        transport=transport,
        queue_limit=queue_limit,
        check_interval=60.0,
        messages_per_minute=messages_per_minute,
        message_burst=message_burst,
    )
    return conn, transport


async def turn() -> None:
    """Let the loop run the connection's once-per-turn flush."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)
