"""aiortc peers: the device-check echo peer (server side) and a call client (tests and benchmarks)."""
