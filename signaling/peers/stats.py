"""Connection-quality figures from aiortc's ``getStats()`` (round trip, loss, jitter) and their grade."""

from __future__ import annotations

from typing import Any

from signaling.calls import grade

CLOCK_RATES = {"audio": 48_000, "video": 90_000}  # Opus and VP8 RTP clocks: jitter comes in their ticks


def quality(report: Any) -> dict[str, Any]:
    """Round trip (ms), loss (% of packets) and jitter (ms) of a peer connection, worst over its streams.

    The round trip is from RTCP receiver reports on what we send; loss and jitter from what we
    receive. ``rtt_ms`` is None until the first receiver report (about a second into the call).
    """
    rtt: float | None = None
    received = lost = 0
    jitter_ms = 0.0
    for stats in report.values():
        kind = getattr(stats, "kind", "audio")
        if stats.type == "remote-inbound-rtp" and stats.roundTripTime is not None:
            rtt = max(rtt or 0.0, float(stats.roundTripTime) * 1000)
        elif stats.type == "inbound-rtp":
            received += int(stats.packetsReceived or 0)
            lost += max(0, int(stats.packetsLost or 0))
            jitter_ms = max(jitter_ms, float(stats.jitter or 0) * 1000 / CLOCK_RATES.get(kind, 90_000))
    loss_pct = 100.0 * lost / (received + lost) if received + lost else 0.0
    return {
        "rtt_ms": round(rtt, 2) if rtt is not None else None,
        "loss_pct": round(loss_pct, 2),
        "jitter_ms": round(jitter_ms, 2),
        "packets_received": received,
        "grade": grade(rtt or 0.0, loss_pct, jitter_ms) if rtt is not None else None,
    }
