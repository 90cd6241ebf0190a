"""What a production process shows on its public listener: no metrics, no backend names, no versions.

Metrics and the detailed readiness are on the operations listener (``TELEMED_METRICS_PORT``,
loopback by default), or on the public one behind ``TELEMED_METRICS_TOKEN``.
"""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from server.keys import ops_port_key

PRODUCTION = {
    "environment": "production",
    "public_url": "https://telemed.example",
    "otp_pepper": "p" * 40,
    "code_sender": "http",
    "sms_url": "http://127.0.0.1:9/unused",
    "metrics_port": 0,
}


@pytest.mark.settings(**PRODUCTION)
async def test_production_public_listener_hides_metrics_backends_and_versions(client: TestClient) -> None:
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert await ready.json() == {"status": "ready"}
    assert (await client.get("/metrics")).status == 404
    assert ready.headers["Server"] == "telemed"


@pytest.mark.settings(**PRODUCTION)
async def test_production_metrics_and_detailed_readiness_are_on_the_operations_listener(client: TestClient) -> None:
    await client.get("/healthz")
    port = client.app[ops_port_key]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert response.status == 200
            assert 'route="/healthz"' in await response.text()
        async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
            body = await response.json()
            assert body["checks"] == {"database": "ok", "bus": "ok"}


@pytest.mark.settings(metrics_token="metrics-token-0123456789")
async def test_metrics_on_the_public_listener_need_the_bearer_token(client: TestClient) -> None:
    assert (await client.get("/metrics")).status == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401
    right = await client.get("/metrics", headers={"Authorization": "Bearer metrics-token-0123456789"})
    assert right.status == 200


async def test_no_server_version_on_any_response(client: TestClient) -> None:
    for path in ("/healthz", "/api/nope", "/"):
        response = await client.get(path)
        assert response.headers.get("Server") == "telemed", path
