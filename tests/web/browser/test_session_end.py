"""A socket the server closes as idle (4002, checklist A10) ends the session in the browser app.

Its own demo server (``idle_demo``) closes sockets idle for 3 s; the tab must sign out, say why in
both languages, and not reconnect in a loop (web/app/ws.js).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.web.browser.conftest import DemoServer
from tests.web.browser.test_app import _context, _watch, login_staff


@pytest.mark.timeout(120)
def test_an_idle_socket_signs_the_tab_out_with_a_notice_and_no_reconnect_loop(
    browser: Any, idle_demo: DemoServer
) -> None:
    errors: list[str] = []
    context = _context(browser)
    page = _watch(context.new_page(), errors)
    login_staff(page, idle_demo, "doctor", idle_demo.doctors[0])
    page.wait_for_selector(".conn-open")
    notice = page.locator("[data-testid=session-notice]")
    notice.wait_for(timeout=20_000)  # A10: idle past the limit, the server closes with 4002
    assert "Сеанс завершён из-за бездействия" in notice.inner_text()
    page.wait_for_selector("#login-username")  # signed out: the login form, not the doctor's page
    time.sleep(4)  # longer than the first reconnect delays: nothing comes back by itself
    assert page.locator(".conn").count() == 0, "no socket is reopened after the idle close"
    assert page.locator("#login-username").count() == 1
    page.locator("header button", has_text="Eng").click()
    assert "Your session ended because of inactivity" in notice.inner_text()
    login_staff(page, idle_demo, "doctor", idle_demo.doctors[0])  # a new login clears the notice
    page.wait_for_selector(".conn-open")
    assert notice.count() == 0
    context.close()
    assert not [e for e in errors if "pageerror" in e], errors
