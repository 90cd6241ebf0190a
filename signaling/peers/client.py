"""An aiortc call client that speaks PROTOCOL.md over the real client WebSocket (tests and benchmarks).

It plays a patient or a doctor: joins the consultation's call, follows "the joiner offers",
answers, renegotiates (audio to video), rebuilds its connection after its transport is cut, and
counts the frames it receives. aiortc cannot roll back, so as the polite peer in glare it
recreates its connection with a new generation and answers from that (PROTOCOL.md, "Perfect
negotiation"); an offer of a newer generation from the other side means that side replaced its
connection, so this one is replaced too before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from signaling import protocol
from signaling.peers.media import FrameCounter, PatternVideoTrack, silence
from signaling.peers.stats import quality

log = logging.getLogger(__name__)


class CallError(Exception):
    """The server refused a request; ``code`` is the protocol's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class SocketClient:
    """The client WebSocket: ticket auth, requests with increasing ids, events routed by subscription."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._handlers: dict[int, Callable[[dict[str, Any]], None]] = {}
        self._reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, base_url: str, access_token: str, *, origin: str
    ) -> SocketClient:
        """Get a ticket over HTTP, open ``/api/ws`` and authenticate."""
        async with session.post(
            base_url + "/api/auth/ws-ticket", headers={"Authorization": f"Bearer {access_token}"}
        ) as response:
            response.raise_for_status()
            ticket = (await response.json())["ticket"]
        return await cls.open(session, base_url, ticket, origin=origin)

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, base_url: str, ticket: str, *, origin: str) -> SocketClient:
        """Open ``/api/ws`` and authenticate with a ticket already obtained."""
        ws = await session.ws_connect(base_url + "/api/ws", headers={"Origin": origin})
        first = json.loads((await ws.receive(timeout=30)).data)
        if first.get("type") != "auth_required":
            raise CallError("auth", f"unexpected first frame {first}")
        await ws.send_str(json.dumps({"type": "auth", "ticket": ticket}))
        reply = json.loads((await ws.receive(timeout=30)).data)
        if reply.get("type") != "auth_ok":
            raise CallError("auth", str(reply))
        return cls(ws)

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                frame_id = frame.get("id")
                if frame.get("type") in ("result", "pong"):
                    future = self._pending.pop(frame_id, None)
                    if future is not None and not future.done():
                        future.set_result(frame)
                elif frame.get("type") == "event":
                    handler = self._handlers.get(frame_id)
                    if handler is not None:
                        handler(frame["event"])
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("socket closed"))

    def next_id(self) -> int:
        """The next request id."""
        return next(self._ids)

    async def request(
        self, type_: str, *, on_event: Callable[[dict[str, Any]], None] | None = None, **fields: Any
    ) -> Any:
        """Send a request and return its result (events of this request go to ``on_event``).

        Raises:
            CallError: the server refused it.
        """
        msg_id = self.next_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        if on_event is not None:
            self._handlers[msg_id] = on_event
        await self.ws.send_str(json.dumps({"id": msg_id, "type": type_, **fields}))
        frame = await asyncio.wait_for(future, 60)
        if not frame.get("success", True):
            raise CallError(frame["error"]["code"], frame["error"]["message"])
        return frame.get("result")

    async def close(self) -> None:
        """Close the socket."""
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


def rtc_configuration(servers: list[dict[str, Any]], policy: str) -> RTCConfiguration:
    """The server's ``ice_servers`` as aiortc's configuration (never aiortc's default public STUN)."""
    ice_servers = [
        RTCIceServer(urls=server["urls"], username=server.get("username"), credential=server.get("credential"))
        for server in servers
    ]
    return RTCConfiguration(iceServers=ice_servers, iceTransportPolicy=RTCIceTransportPolicy(policy))


class CallPeer:
    """One participant's side of a call: an aiortc peer connection driven by the call protocol."""

    def __init__(
        self,
        socket: SocketClient,
        consultation_id: int,
        *,
        audio: bool = True,
        video: bool = True,
        relay_only: bool = False,
    ) -> None:
        self.socket = socket
        self.relay_only = relay_only  # iceTransportPolicy "relay" whatever the server says
        self.consultation_id = consultation_id
        self.want_audio = audio
        self.want_video = video
        self.call_id = 0
        self.polite = False
        self.generation = 0
        self.remote_generation = 0
        self.pc: RTCPeerConnection | None = None
        self.counter = FrameCounter()
        self.connected = asyncio.Event()
        self.ended = asyncio.Event()
        self.events: list[dict[str, Any]] = []
        self.ice_servers: list[dict[str, Any]] = []
        self.ice_policy = "all"
        self.making_offer = False
        self.join_started = 0.0
        self.connected_at = 0.0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._closing: list[RTCPeerConnection] = []

    # -- joining ---------------------------------------------------------------------------------

    async def join(self) -> dict[str, Any]:
        """``call.join``; if the other side is already there, make the first offer."""
        self.join_started = time.perf_counter()
        self._worker = asyncio.ensure_future(self._work())
        result: dict[str, Any] = await self.socket.request(
            protocol.CMD_JOIN,
            on_event=self._queue.put_nowait,
            consultation_id=self.consultation_id,
            v=protocol.PROTOCOL_VERSION,
            media={"audio": self.want_audio, "video": self.want_video},
        )
        self.call_id = int(result["call_id"])
        self.polite = bool(result["polite"])
        self.ice_servers = result["ice_servers"]
        self.ice_policy = result["ice_transport_policy"]
        if result["peer"]["present"]:
            self._queue.put_nowait({"type": "_offer"})
        return result

    async def _work(self) -> None:
        """Handle events one at a time, in the order the server sent them."""
        while True:
            event = await self._queue.get()
            try:
                await self._handle(event)
            except Exception:
                log.exception("call client failed on %s", event.get("type"))

    async def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind != "_offer":
            self.events.append(event)
        if kind == "_offer":
            await self._new_connection()
            await self._offer()
        elif kind == "_rebuild":
            await self._new_connection()
            await self._offer(restart=True)
        elif kind == "_add_video":
            assert self.pc is not None
            if self._attach_tracks():
                self.pc.addTrack(PatternVideoTrack())
            await self._offer()
        elif kind == protocol.EV_PEER_JOINED:
            self.remote_generation = 0
            if self.pc is not None:
                await self.pc.close()
            self.pc = None  # the joiner offers; a fresh connection answers it
        elif kind == protocol.EV_DESCRIPTION:
            await self._on_description(event)
        elif kind == protocol.EV_CANDIDATE and self.pc is not None:
            if int(event.get("generation", 1)) == self.remote_generation:
                wire = event["candidate"]
                candidate = candidate_from_sdp(wire["candidate"].removeprefix("candidate:"))
                candidate.sdpMid = wire.get("sdpMid")
                candidate.sdpMLineIndex = wire.get("sdpMLineIndex")
                with contextlib.suppress(Exception):
                    await self.pc.addIceCandidate(candidate)
        elif kind == protocol.EV_ENDED:
            self.ended.set()

    async def _on_description(self, event: dict[str, Any]) -> None:
        description = event["description"]
        generation = int(event.get("generation", 1))
        if description["type"] == "offer":
            newer = bool(self.remote_generation) and generation > self.remote_generation
            collision = self.pc is not None and (self.making_offer or self.pc.signalingState != "stable")
            if collision and not self.polite and not newer:
                return  # impolite: our offer wins, theirs is ignored
            if self.pc is None or newer or collision:
                await self._new_connection(with_tracks=False)  # cannot roll back: a fresh connection answers
            assert self.pc is not None
            self.remote_generation = generation
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description["sdp"], type="offer"))
            missing = self._attach_tracks()
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.socket.request(
                protocol.CMD_ANSWER, call_id=self.call_id, sdp=self.pc.localDescription.sdp, generation=self.generation
            )
            if missing:
                for kind in missing:
                    self.pc.addTrack(self._track(kind))
                await self._offer()  # what the offer had no section for: renegotiate to add it
        elif self.pc is not None and self.pc.signalingState == "have-local-offer":
            self.remote_generation = generation
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=description["sdp"], type="answer"))

    def _wanted(self) -> list[str]:
        return [kind for kind, wanted in (("audio", self.want_audio), ("video", self.want_video)) if wanted]

    def _track(self, kind: str) -> Any:
        return silence() if kind == "audio" else PatternVideoTrack()

    def _attach_tracks(self) -> list[str]:
        """Send our tracks on the sections the remote offer made; returns the kinds it had no section for."""
        assert self.pc is not None
        missing = []
        for kind in self._wanted():
            transceivers = [t for t in self.pc.getTransceivers() if t.kind == kind]
            if any(t.sender.track is not None for t in transceivers):
                continue
            free = [t for t in transceivers if t.sender.track is None]
            if free:
                free[0].sender.replaceTrack(self._track(kind))
                free[0].direction = "sendrecv"
            else:
                missing.append(kind)
        return missing

    async def _new_connection(self, *, with_tracks: bool = True) -> None:
        old = self.pc
        self.generation += 1
        self.connected.clear()
        policy = "relay" if self.relay_only else self.ice_policy
        pc = RTCPeerConnection(rtc_configuration(self.ice_servers, policy))
        self.pc = pc

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.counter.consume(track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc is self.pc and pc.connectionState == "connected":
                self.connected_at = time.perf_counter()
                self.connected.set()

        if with_tracks:
            for kind in self._wanted():
                pc.addTrack(self._track(kind))
        if old is not None:
            await old.close()

    async def _offer(self, *, restart: bool = False) -> None:
        assert self.pc is not None
        self.making_offer = True
        try:
            offer = await self.pc.createOffer()
            await self.pc.setLocalDescription(offer)  # aiortc gathers every candidate into the SDP
            await self.socket.request(
                protocol.CMD_OFFER,
                call_id=self.call_id,
                sdp=self.pc.localDescription.sdp,
                generation=self.generation,
                restart=restart,
            )
        finally:
            self.making_offer = False

    # -- during the call -----------------------------------------------------------------------

    def add_video(self) -> None:
        """Renegotiate: add a camera track (audio to video)."""
        self.want_video = True
        self._queue.put_nowait({"type": "_add_video"})

    async def recover(self, step: str = protocol.STEP_ICE_RESTART, reason: str = "transport lost") -> dict[str, Any]:
        """Step down and rebuild: record the step, fetch fresh ICE servers, new connection, offer."""
        record: dict[str, Any] = await self.socket.request(
            protocol.CMD_STEP_DOWN, call_id=self.call_id, step=step, reason=reason
        )
        servers = await self.socket.request(protocol.CMD_ICE_SERVERS, call_id=self.call_id)
        self.ice_servers = servers["ice_servers"]
        self.ice_policy = servers["ice_transport_policy"]
        self._queue.put_nowait({"type": "_rebuild"})
        return record

    async def cut_transport(self) -> None:
        """Simulate a network loss on this side only: the media transport dies, signalling stays."""
        if self.pc is not None:
            self.connected.clear()
            for transceiver in self.pc.getTransceivers():
                transport = transceiver.receiver.transport
                if transport is not None:
                    await transport.transport.stop()

    async def quality(self) -> dict[str, Any]:
        """Round trip, loss and jitter of the current connection."""
        assert self.pc is not None
        return quality(await self.pc.getStats())

    async def hang_up(self) -> Any:
        """End the call."""
        return await self.socket.request(protocol.CMD_HANGUP, call_id=self.call_id)

    async def close(self) -> None:
        """Close the connection and stop reading frames."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.counter.close()
        if self.pc is not None:
            await self.pc.close()
