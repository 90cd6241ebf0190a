"""``telemed audit-verify``: check the audit trail against itself and its checkpoints (checklist D2)."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from server.config import Settings


async def _verify(settings: Settings, pin: bool) -> int:
    from prometheus_client import CollectorRegistry

    from server.bus import InProcessBus
    from server.clock import SystemClock
    from server.db.engine import make_engine, make_session_factory
    from server.metrics import make_metrics
    from server.security.otp import OutboxSender
    from server.security.tokens import TokenService
    from server.services import audit_chain
    from server.services.context import ServiceContext

    engine = make_engine(settings.effective_database_url)
    ctx = ServiceContext(
        settings=settings,
        session_factory=make_session_factory(engine),
        bus=InProcessBus(),
        clock=SystemClock(),
        tokens=TokenService(
            settings.jwt_secret.get_secret_value(),
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.access_token_ttl,
        ),
        code_sender=OutboxSender(settings.outbox_path),
        metrics=make_metrics(CollectorRegistry()),
    )
    try:
        report = await audit_chain.verify(ctx)
        if report.ok and pin:
            await audit_chain.checkpoint(ctx)
        print(json.dumps(asdict(report), indent=2))
        return 0 if report.ok else 1
    finally:
        await engine.dispose()


def cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when the trail is intact, 1 when it was edited, cut short or truncated."""
    return asyncio.run(_verify(settings, bool(args.pin)))
