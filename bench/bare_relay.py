"""The ceiling for the chat benchmark: a bare aiohttp WebSocket relay (no auth, no storage, no bus).

It speaks just enough of the client protocol for the same load generator: each socket joins a
pair with ``consultation.subscribe``; each ``chat.send`` is acknowledged to the sender at once and
forwarded to the other side of the pair as a ``chat.message`` event with a per-pair counter.

    python -m bench.bare_relay --port 8765
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from aiohttp import WSMsgType, web

PAIRS_KEY: web.AppKey[dict[int, list[tuple[web.WebSocketResponse, int]]]] = web.AppKey("pairs")
SEQS_KEY: web.AppKey[dict[int, int]] = web.AppKey("seqs")


async def relay(request: web.Request) -> web.WebSocketResponse:
    """One socket: auth is waved through, subscribe joins a pair, send is acked and forwarded."""
    ws = web.WebSocketResponse(max_msg_size=64 * 1024, compress=False)
    await ws.prepare(request)
    pairs = request.app[PAIRS_KEY]
    seqs = request.app[SEQS_KEY]
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
            elif kind == "consultation.subscribe":
                joined = int(frame["consultation_id"])
                pairs.setdefault(joined, []).append((ws, int(frame["id"])))
                await ws.send_str(json.dumps({"id": frame["id"], "type": "result", "success": True, "result": {}}))
            elif kind == "chat.send":
                pair = int(frame["consultation_id"])
                seq = seqs[pair] = seqs.get(pair, 0) + 1
                await ws.send_str(
                    f'{{"id":{frame["id"]},"type":"result","success":true,"result":{{"seq":{seq},"duplicate":false}}}}'
                )
                event = json.dumps(
                    {"type": "chat.message", "consultation_id": pair, "seq": seq, "text": frame["text"]},
                    separators=(",", ":"),
                )
                for peer, subscription in pairs.get(pair, ()):
                    if peer is not ws:
                        await peer.send_str(f'{{"id":{subscription},"type":"event","event":{event}}}')
    finally:
        if joined is not None:
            pairs[joined] = [entry for entry in pairs.get(joined, []) if entry[0] is not ws]
    return ws


def make_app() -> web.Application:
    """The relay application."""
    app = web.Application()
    app[PAIRS_KEY] = {}
    app[SEQS_KEY] = {}
    app.router.add_get("/api/ws", relay)

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    """Serve on 127.0.0.1."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
