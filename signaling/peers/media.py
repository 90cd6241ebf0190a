"""Synthetic media for aiortc peers (no camera, no numpy) and frame counting on what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, VideoStreamTrack
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import VideoFrame


class PatternVideoTrack(VideoStreamTrack):
    """A small moving grey pattern at 30 fps: enough for VP8 to encode and the far side to decode."""

    def __init__(self, width: int = 160, height: int = 120) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self._count = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame(width=self.width, height=self.height, format="yuv420p")
        shade = (self._count * 4) % 256
        for index, plane in enumerate(frame.planes):
            plane.update(bytes([shade if index == 0 else 128]) * plane.buffer_size)
        self._count += 1
        frame.pts = pts
        frame.time_base = time_base
        return frame


def silence() -> MediaStreamTrack:
    """An audio track of silence (aiortc's own)."""
    return AudioStreamTrack()


@dataclass
class FrameCounter:
    """Frames received per kind, and when the first of each arrived (``time.perf_counter``)."""

    frames: dict[str, int] = field(default_factory=dict)
    first_at: dict[str, float] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def consume(self, track: Any) -> None:
        """Read ``track`` until it ends, counting frames."""
        task = asyncio.ensure_future(self._read(track))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read(self, track: Any) -> None:
        kind = str(track.kind)
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                self.frames[kind] = self.frames.get(kind, 0) + 1
                self.first_at.setdefault(kind, time.perf_counter())
                self.changed.set()

    async def wait_for(self, kind: str, count: int, within: float = 10.0) -> int:
        """Wait until at least ``count`` more frames of ``kind`` than now have arrived."""
        target = self.frames.get(kind, 0) + count
        async with asyncio.timeout(within):
            while self.frames.get(kind, 0) < target:
                self.changed.clear()
                await self.changed.wait()
        return self.frames[kind]

    async def close(self) -> None:
        """Stop reading."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
