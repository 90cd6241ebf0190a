"""The baseline for the call benchmark: a bare aiohttp WebSocket relay of call signalling.

No authentication, no validation, no database, no bus: ``call.join`` pairs two sockets by
consultation id, ``call.offer`` / ``call.answer`` / ``call.candidate`` are acknowledged and
forwarded to the other socket as the events PROTOCOL.md names. Enough for the same load
generator and the same aiortc client.

    python -m bench.bare_call_relay --port 8766
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from aiohttp import WSMsgType, web

PAIRS_KEY: web.AppKey[dict[int, list[tuple[web.WebSocketResponse, int]]]] = web.AppKey("pairs")
EVENTS = {"call.offer": "call.description", "call.answer": "call.description", "call.candidate": "call.candidate"}


async def relay(request: web.Request) -> web.WebSocketResponse:
    """One socket: auth waved through, join pairs, signals acknowledged and forwarded."""
    ws = web.WebSocketResponse(max_msg_size=64 * 1024, compress=False)
    await ws.prepare(request)
    pairs = request.app[PAIRS_KEY]
    await ws.send_str('{"type":"auth_required"}')
    joined: int | None = None
    try:
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            frame: dict[str, Any] = json.loads(msg.data)
            kind = frame.get("type")
            if kind == "auth":
                await ws.send_str('{"type":"auth_ok","user":{"key":"bare","role":"bare"}}')
            elif kind == "call.join":
                joined = int(frame["consultation_id"])
                others = pairs.setdefault(joined, [])
                present = bool(others)
                others.append((ws, int(frame["id"])))
                result = {
                    "call_id": joined,
                    "polite": present,
                    "peer": {"present": present},
                    "ice_servers": [],
                    "ice_transport_policy": "all",
                }
                await ws.send_str(json.dumps({"id": frame["id"], "type": "result", "success": True, "result": result}))
                for peer, subscription in others:
                    if peer is not ws:
                        event = {"type": "call.peer_joined", "call_id": joined, "who": "peer", "rejoin": False}
                        await peer.send_str(json.dumps({"id": subscription, "type": "event", "event": event}))
            elif kind in EVENTS:
                call_id = int(frame["call_id"])
                await ws.send_str(f'{{"id":{frame["id"]},"type":"result","success":true,"result":null}}')
                if kind == "call.candidate":
                    event = {
                        "type": EVENTS[kind],
                        "candidate": frame["candidate"],
                        "generation": frame.get("generation", 1),
                    }
                else:
                    description = {"type": kind.split(".")[1], "sdp": frame["sdp"]}
                    event = {"type": EVENTS[kind], "description": description, "generation": frame.get("generation", 1)}
                event.update({"call_id": call_id, "from": "peer"})
                for peer, subscription in pairs.get(call_id, ()):
                    if peer is not ws:
                        await peer.send_str(json.dumps({"id": subscription, "type": "event", "event": event}))
            else:
                await ws.send_str(f'{{"id":{frame.get("id")},"type":"result","success":true,"result":null}}')
    finally:
        if joined is not None:
            pairs[joined] = [entry for entry in pairs.get(joined, []) if entry[0] is not ws]
            if not pairs[joined]:
                del pairs[joined]
    return ws


def make_app() -> web.Application:
    """The relay application."""
    app = web.Application()
    app[PAIRS_KEY] = {}
    app.router.add_get("/api/ws", relay)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    """Serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
