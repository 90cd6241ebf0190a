# ruff: noqa: E501
"""SDP and candidate samples shaped like Chromium's and aiortc's (no network needed)."""

from __future__ import annotations

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4611731400430051336 2 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0 1",
        "a=msid-semantic: WMS",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "c=IN IP4 0.0.0.0",
        "a=ice-ufrag:Ab12",
        "a=ice-pwd:abcdefghijklmnopqrstuvwx",
        "a=fingerprint:sha-256 01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F:20",
        "a=setup:actpass",
        "a=mid:0",
        "a=sendrecv",
        "a=rtpmap:111 opus/48000/2",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "c=IN IP4 0.0.0.0",
        "a=mid:1",
        "a=sendrecv",
        "a=rtpmap:96 VP8/90000",
        "",
    ]
)

HOST_CANDIDATE = {
    "candidate": "candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ host generation 0 ufrag Ab12 network-cost 999",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
    "usernameFragment": "Ab12",
}
RELAY_CANDIDATE = {
    "candidate": "candidate:3 1 udp 41885439 127.0.0.1 49152 typ relay raddr 127.0.0.1 rport 50000",
    "sdpMid": "0",
    "sdpMLineIndex": None,
}
