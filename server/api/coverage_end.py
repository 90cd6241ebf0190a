"""The background loop that ends cover on the removal date an employer's list set (issue 16).

No routes: a removal dated in the future used to wait for someone to run ``telemed coverage-end``;
every process now applies due removals every ``coverage_end_interval_seconds`` (the claim in the
service makes several processes safe), and the command stays for running it by hand.
"""

from __future__ import annotations

from aiohttp import web

from server.background import periodic_job_ctx
from server.services.records import coverage_end as service


def setup(app: web.Application) -> None:
    """Schedule the coverage-end loop on the app's lifetime."""
    app.cleanup_ctx.append(
        periodic_job_ctx(
            "coverage-end", service.end_coverage_job, lambda ctx: ctx.settings.coverage_end_interval_seconds
        )
    )
