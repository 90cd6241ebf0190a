"""Prometheus metrics, one registry per application (so tests can run several apps at once)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True, slots=True)
class Metrics:
    """The counters the app updates; exposed at ``/metrics``."""

    requests: Counter
    request_seconds: Histogram
    logins: Counter
    websocket_connections: Gauge
    chat_messages: Counter
    roster_gap_hours: Gauge
    consultations: Counter
    duty_alerts: Counter


def make_metrics(registry: CollectorRegistry) -> Metrics:
    """Register the application's metrics in ``registry``."""
    return Metrics(
        requests=Counter(
            "telemed_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
        ),
        request_seconds=Histogram(
            "telemed_http_request_seconds", "HTTP request latency", ["method", "route"], registry=registry
        ),
        logins=Counter("telemed_logins_total", "Login attempts", ["kind", "result"], registry=registry),
        websocket_connections=Gauge("telemed_websocket_connections", "Open client WebSockets", registry=registry),
        chat_messages=Counter("telemed_chat_messages_total", "Chat messages stored", registry=registry),
        roster_gap_hours=Gauge(
            "telemed_roster_gap_hours",
            "Hours in the coming weeks with nobody on duty, per specialty (R11.2)",
            ["specialty"],
            registry=registry,
        ),
        consultations=Counter(
            "telemed_consultations_total", "Consultation state changes", ["status"], registry=registry
        ),
        duty_alerts=Counter(
            "telemed_duty_alerts_total",
            "Alerts raised to the dispatchers and admins on duty (R11.2, R11.6-R11.8)",
            ["kind"],
            registry=registry,
        ),
    )
