"""The client WebSocket: one socket per client carrying chat, presence, notifications and call signalling."""
