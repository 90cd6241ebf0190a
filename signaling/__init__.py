"""WebRTC call signalling for consultations: protocol, call state, relay over the bus, ICE/TURN, aiortc peers.

Importable without ``server.api`` and without the database: ``server`` mounts its commands on the
client WebSocket's command registry and gives it ports (publish/listen on the bus, a call store).
The wire contract is ``signaling/PROTOCOL.md``.
"""
