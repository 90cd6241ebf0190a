"""``server/realtime/commands.py`` on its own: the registry, strict field checks (checklist B7) and the
commands that need no database (ping, notifications by role, R11.7 duty alerts), on the app's real hub and bus."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from server.channels import dispatch_queue_channel, doctors_queue_channel, duty_alerts_channel, user_channel
from server.domain.errors import InvalidInput
from server.keys import realtime_hub_key
from server.realtime import commands
from server.realtime.commands import CommandRegistry, default_registry, optional_int, require_bool, require_int
from server.services.context import ServiceContext
from tests.realtime.modules import connection, principal, turn


def test_the_registry_refuses_a_type_twice_and_always_allows_id_and_type() -> None:
    registry = CommandRegistry()
    registry.register("call.offer", commands.handle_ping, fields={"sdp"})
    command = registry.get("call.offer")
    assert command is not None and command.fields == {"id", "type", "sdp"}
    with pytest.raises(ValueError, match="already registered"):
        registry.register("call.offer", commands.handle_ping)
    assert registry.get("nope") is None


def test_the_default_registry_has_the_built_in_commands() -> None:
    assert default_registry().types == [
        "chat.history",
        "chat.read",
        "chat.send",
        "chat.typing",
        "consultation.subscribe",
        "consultation.unsubscribe",
        "notifications.subscribe",
        "ping",
        "unsubscribe",
    ]


@pytest.mark.parametrize("value", [True, 1.0, "1", None, -1, 2**53 + 1])
def test_integers_are_integers_within_bounds(value: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        require_int({"n": value}, "n")
    assert refused.value.code == "invalid_format"


def test_optional_integers_and_booleans() -> None:
    assert require_int({"n": 0}, "n") == 0 and require_int({"n": 2**53}, "n") == 2**53
    assert optional_int({}, "n", 100) == 100 and optional_int({"n": None}, "n", 5) == 5
    assert optional_int({"n": 7}, "n", 100, maximum=10) == 7
    with pytest.raises(InvalidInput):
        optional_int({"n": 11}, "n", 100, maximum=10)
    assert require_bool({"b": False}, "b") is False
    with pytest.raises(InvalidInput):
        require_bool({"b": 0}, "b")


async def test_ping_answers_pong_with_the_request_id() -> None:
    conn, transport = connection()
    commands.handle_ping(conn, {"id": 41, "type": "ping"})
    await turn()
    assert transport.frames() == [{"id": 41, "type": "pong"}]


def _listened(hub: Any) -> set[str]:
    return set(hub._handlers)


@pytest.mark.parametrize(
    ("role", "extra"),
    [
        ("insured", set()),
        ("doctor", {doctors_queue_channel()}),
        ("dispatcher", {dispatch_queue_channel(), duty_alerts_channel()}),
        ("admin", {duty_alerts_channel()}),
    ],
)
async def test_notifications_listen_to_the_channels_of_the_role(
    client: TestClient[Any, Any], role: str, extra: set[str]
) -> None:
    hub = client.app[realtime_hub_key]
    before = _listened(hub)
    who = principal(role, 50)
    conn, transport = connection(hub, who=who)
    commands.handle_notifications_subscribe(conn, {"id": 3, "type": "notifications.subscribe"})
    await turn()
    assert transport.frames() == [{"id": 3, "type": "result", "success": True, "result": None}]
    assert _listened(hub) - before == {user_channel(who.key)} | extra - before
    conn.subscriptions.pop(3)()
    assert _listened(hub) == before


async def test_a_duty_alert_on_the_bus_reaches_a_dispatchers_notifications(
    client: TestClient[Any, Any], ctx: ServiceContext
) -> None:
    """R11.7: alerts are pushed live to the duty team; a resync tells the client to reload."""
    hub = client.app[realtime_hub_key]
    conn, transport = connection(hub, who=principal("dispatcher", 51))
    commands.handle_notifications_subscribe(conn, {"id": 8, "type": "notifications.subscribe"})
    await asyncio.sleep(0.05)  # let a Redis subscription settle
    await ctx.bus.publish(duty_alerts_channel(), {"type": "duty.alert", "alert": {"id": 1}})
    for _ in range(200):
        if len(transport.frames()) > 1:
            break
        await asyncio.sleep(0.01)
    assert transport.frames()[1] == {"id": 8, "type": "event", "event": {"type": "duty.alert", "alert": {"id": 1}}}
    hub._resync()
    await turn()
    assert transport.frames()[-1]["event"] == {"type": "resync"}
    conn.subscriptions.pop(8)()
