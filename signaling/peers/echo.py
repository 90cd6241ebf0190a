"""The device-check echo peer: before a consultation the patient sees and hears themselves returned.

The server answers the patient's offer with an aiortc peer that sends every received track back
(through ``MediaRelay``), and reports the link's round trip, packet loss and jitter graded good /
fair / poor. It only ever answers (aiortc cannot roll back or restart ICE), so there is no glare.
Sessions are bounded in number and in time; nothing is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRelay
from aiortc.mediastreams import MediaStreamError

from signaling import protocol
from signaling.peers.stats import quality
from signaling.protocol import ProtocolError

log = logging.getLogger(__name__)

SESSION_SECONDS: Final = 120.0  # a device check is short; a forgotten tab must not hold a peer forever


class CountingTrack(MediaStreamTrack):
    """Returns the frames of a received track and counts them."""

    def __init__(self, source: MediaStreamTrack, counts: dict[str, int]) -> None:
        super().__init__()
        self.kind = source.kind
        self._source = source
        self._counts = counts

    async def recv(self) -> Any:
        frame = await self._source.recv()
        self._counts[self.kind] = self._counts.get(self.kind, 0) + 1
        return frame


@dataclass
class EchoSession:
    """One device check."""

    id: int
    owner: object
    pc: RTCPeerConnection
    returned: dict[str, int] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class EchoService:
    """Every echo session of this process."""

    def __init__(self, max_sessions: int) -> None:
        self.max_sessions = max_sessions
        self.sessions: dict[int, EchoSession] = {}
        self._ids = itertools.count(1)
        self._relay = MediaRelay()

    async def answer(self, owner: object, sdp: str) -> dict[str, Any]:
        """Answer a complete offer with an echoing peer.

        Raises:
            ProtocolError: ``echo_busy`` (limit reached, or this socket has a session), ``echo_failed``.
        """
        if len(self.sessions) >= self.max_sessions or any(s.owner is owner for s in self.sessions.values()):
            raise ProtocolError(protocol.ERR_ECHO_BUSY, "the device check is busy; try again in a minute")
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        session = EchoSession(next(self._ids), owner, pc)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            pc.addTrack(CountingTrack(self._relay.subscribe(track), session.returned))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self.stop(owner, session.id)

        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, MediaStreamError, Exception) as exc:  # aiortc raises many kinds on a bad offer
            await pc.close()
            raise ProtocolError(protocol.ERR_ECHO_FAILED, f"the echo peer could not use this offer: {exc}") from exc
        self.sessions[session.id] = session
        session.timer = asyncio.get_running_loop().call_later(
            SESSION_SECONDS, lambda: asyncio.ensure_future(self.stop(owner, session.id))
        )
        return {"session": session.id, "sdp": pc.localDescription.sdp}

    def _session(self, owner: object, session_id: int) -> EchoSession:
        session = self.sessions.get(session_id)
        if session is None or session.owner is not owner:
            raise ProtocolError(protocol.ERR_NOT_FOUND, "no such echo session")
        return session

    async def stats(self, owner: object, session_id: int) -> dict[str, Any]:
        """The link's figures and grade, and how many frames went back."""
        session = self._session(owner, session_id)
        figures = quality(await session.pc.getStats())
        return {**figures, "frames_returned": dict(session.returned), "state": session.pc.connectionState}

    async def stop(self, owner: object, session_id: int) -> None:
        """End a session (idempotent)."""
        session = self.sessions.get(session_id)
        if session is None or session.owner is not owner:
            return
        del self.sessions[session_id]
        if session.timer is not None:
            session.timer.cancel()
        with contextlib.suppress(Exception):
            await session.pc.close()

    async def stop_all_of(self, owner: object) -> None:
        """The socket closed."""
        for session in [s for s in self.sessions.values() if s.owner is owner]:
            await self.stop(owner, session.id)

    async def close(self) -> None:
        """Shutdown."""
        for session in list(self.sessions.values()):
            await self.stop(session.owner, session.id)
