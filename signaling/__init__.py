"""WebRTC call signalling (offer/answer/ICE relay over the client WebSocket, TURN credentials, aiortc peers).

Built in the next stage. The client WebSocket (server/realtime/) already has a command registry
and a per-consultation bus channel, so `call.*` commands register here without a rewrite.
"""
