"""The web app's refresh token lives in an HttpOnly cookie; non-browser clients keep the body."""

from __future__ import annotations

from datetime import timedelta

from aiohttp.test_utils import TestClient

from tests.factories import STAFF_PASSWORD, Factories

WEB = {"X-Telemed-Client": "web"}


def _set_cookies(response) -> list[str]:  # type: ignore[no-untyped-def]
    return response.headers.getall("Set-Cookie", [])


def _cookie_header(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """What the browser sends back to /api/auth/refresh (the test client's jar ignores IP hosts)."""
    refresh = next(c for c in _set_cookies(response) if "Path=/api/auth/refresh" in c)
    return {"Cookie": refresh.split(";")[0]}


async def test_browser_login_gets_the_refresh_token_only_as_strict_httponly_cookies(
    client: TestClient, factories: Factories
) -> None:
    doctor = await factories.staff("doctor")
    response = await client.post(
        "/api/auth/login", json={"username": doctor.username, "password": STAFF_PASSWORD}, headers=WEB
    )
    body = await response.json()
    assert response.status == 200 and body["refresh_token"] is None and body["access_token"]
    cookies = _set_cookies(response)
    assert sorted(c.split("; ")[1] for c in cookies) == ["Path=/api/auth/logout", "Path=/api/auth/refresh"]
    for cookie in cookies:
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert "Secure" not in cookie  # the test client talks to 127.0.0.1 over plain HTTP: the loopback demo


async def test_cookie_refresh_needs_the_custom_header_and_rotates(client: TestClient, factories: Factories) -> None:
    """A cross-site form cannot add a header, so the cookie alone never refreshes."""
    doctor = await factories.staff("doctor")
    login = await client.post(
        "/api/auth/login", json={"username": doctor.username, "password": STAFF_PASSWORD}, headers=WEB
    )
    assert login.status == 200
    refused = await client.post("/api/auth/refresh", json={}, headers=_cookie_header(login))
    assert refused.status == 401 and (await refused.json())["error"]["code"] == "invalid_refresh_token"
    first = await client.post(
        "/api/auth/refresh", json={}, headers={**WEB, "X-Telemed-Refresh": "1", **_cookie_header(login)}
    )
    assert first.status == 200 and (await first.json())["refresh_token"] is None
    second = await client.post(
        "/api/auth/refresh", json={}, headers={**WEB, "X-Telemed-Refresh": "1", **_cookie_header(first)}
    )
    assert second.status == 200  # the rotated cookie came back with the first refresh
    factories.clock.advance(timedelta(seconds=60))  # past the two-tabs grace window
    reused = await client.post(
        "/api/auth/refresh", json={}, headers={**WEB, "X-Telemed-Refresh": "1", **_cookie_header(first)}
    )
    assert reused.status == 401  # single use: the spent cookie ends the session (A5)


async def test_non_browser_clients_still_refresh_with_the_body(client: TestClient, factories: Factories) -> None:
    doctor = await factories.staff("doctor")
    tokens = await factories.login_staff(client, doctor)
    assert tokens["refresh_token"] and not _set_cookies(
        await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    )


async def test_logout_expires_both_cookies(client: TestClient, factories: Factories) -> None:
    doctor = await factories.staff("doctor")
    login = await client.post(
        "/api/auth/login", json={"username": doctor.username, "password": STAFF_PASSWORD}, headers=WEB
    )
    token = (await login.json())["access_token"]
    response = await client.post("/api/auth/logout", headers={**WEB, "Authorization": f"Bearer {token}"})
    assert response.status == 200
    assert all("Max-Age=0" in c for c in _set_cookies(response)) and len(_set_cookies(response)) == 2
    after = await client.post(
        "/api/auth/refresh", json={}, headers={**WEB, "X-Telemed-Refresh": "1", **_cookie_header(login)}
    )
    assert after.status == 401
