"""Who answers the insured person right now, and which number is on their card (R9.1-R9.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from server.domain.calendar import is_business_day
from server.domain.decisions import Reason
from server.domain.errors import InvalidInput

FEDERAL_NUMBER: Final = "8-800-100-63-65"
WEEKDAY_NAMES: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class PointKind(StrEnum):
    """What kind of desk answers (R9)."""

    CONSOLE = "console"
    BRANCH_CURATOR = "branch_curator"
    FEDERAL_LINE = "federal_line"


@dataclass(frozen=True, slots=True)
class DayHours:
    """Opening hours of one day, local time: open from ``opens`` until before ``closes``.

    A ``closes`` earlier than ``opens`` is a shift across midnight (Fri 20:00-02:00 closes at 02:00
    on Saturday): the part after midnight belongs to the shift that began the day before (R9.5).

    Attributes:
        opens: Opening time.
        closes: Closing time; ``None`` means midnight at the end of the day (open until 24:00).
    """

    opens: time
    closes: time | None

    def __post_init__(self) -> None:
        if self.opens.tzinfo is not None or (self.closes is not None and self.closes.tzinfo is not None):
            raise InvalidInput("opening hours are local wall-clock times, without a time zone")
        if self.closes is not None and self.closes == self.opens:
            raise InvalidInput(
                "a day's hours must close at another time than they open (all day is 00:00-24:00)",
                details={"opens": self.opens.isoformat(), "closes": self.closes.isoformat()},
            )

    @property
    def overnight(self) -> bool:
        """The shift runs past midnight into the next day (R9.5)."""
        return self.closes is not None and self.closes < self.opens

    def contains(self, moment: time) -> bool:
        """Whether the local wall-clock ``moment`` is within the part of the hours on their own day."""
        if self.closes is None or self.overnight:
            return self.opens <= moment
        return self.opens <= moment < self.closes

    def contains_after_midnight(self, moment: time) -> bool:
        """Whether ``moment`` on the next day is within the shift's part after midnight (R9.5)."""
        return self.closes is not None and self.overnight and moment < self.closes

    def __str__(self) -> str:
        closes = "24:00" if self.closes is None else self.closes.strftime("%H:%M")
        return f"{self.opens.strftime('%H:%M')}-{closes}"


ALL_DAY: Final = DayHours(time(0, 0), None)

WeekHours = tuple[DayHours | None, ...]
"""Seven entries, Monday (0) to Sunday (6); ``None`` is a closed day."""

ALWAYS: Final[WeekHours] = (ALL_DAY,) * 7


def weekly_hours(days: Iterable[int], opens: time, closes: time | None) -> WeekHours:
    """The same hours on the given weekdays, closed on the others.

    Args:
        days: Weekday numbers, Monday = 0.
        opens: Opening time, local.
        closes: Closing time, local; ``None`` for midnight.

    Returns:
        A seven-day ``WeekHours``.
    """
    chosen = set(days)
    if not chosen <= set(range(7)):
        raise InvalidInput("weekdays are numbered 0 (Monday) to 6 (Sunday)", details={"days": sorted(chosen)})
    hours = DayHours(opens, closes)
    return tuple(hours if day in chosen else None for day in range(7))


def _parse_clock(text: str) -> time | None:
    if text in {"24:00", "24:00:00"}:
        return None
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise InvalidInput("a time of day is written HH:MM", details={"time": text}) from None


def hours_from_json(data: Mapping[str, Any]) -> WeekHours:
    """Read hours as stored in ``dispatch_points.hours``.

    Args:
        data: ``{"always": true}`` for 24/7, or ``{"0": ["08:00", "20:00"], ..., "6": null}`` (a
            missing day is closed; ``"24:00"`` closes at midnight).

    Returns:
        The seven-day ``WeekHours``.
    """
    if data.get("always"):
        return ALWAYS
    days: list[DayHours | None] = []
    for day in range(7):
        entry = data.get(str(day))
        if entry is None:
            days.append(None)
            continue
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise InvalidInput("a day's hours are [opens, closes]", details={"day": day})
        opens = _parse_clock(str(entry[0]))
        if opens is None:
            raise InvalidInput("a day cannot open at 24:00", details={"day": day})
        days.append(DayHours(opens, _parse_clock(str(entry[1]))))
    return tuple(days)


def hours_to_json(hours: WeekHours) -> dict[str, Any]:
    """Write hours in the ``dispatch_points.hours`` format (the inverse of ``hours_from_json``).

    Args:
        hours: Seven-day hours.

    Returns:
        ``{"always": True}`` for 24/7, else one ``[opens, closes]`` or ``None`` per weekday.
    """
    if tuple(hours) == ALWAYS:
        return {"always": True}
    out: dict[str, Any] = {}
    for day, entry in enumerate(hours):
        if entry is None:
            out[str(day)] = None
        else:
            closes = "24:00" if entry.closes is None else entry.closes.strftime("%H:%M")
            out[str(day)] = [entry.opens.strftime("%H:%M"), closes]
    return out


def describe_hours(hours: WeekHours) -> str:
    """Hours as a short text, e.g. ``"24/7"`` or ``"Mon-Sat 08:00-20:00"``.

    Args:
        hours: Seven-day hours.

    Returns:
        Runs of consecutive days with equal hours, joined by commas.
    """
    if tuple(hours) == ALWAYS:
        return "24/7"
    parts: list[str] = []
    day = 0
    while day < 7:
        entry = hours[day]
        end = day
        while end + 1 < 7 and hours[end + 1] == entry:
            end += 1
        if entry is not None:
            span = WEEKDAY_NAMES[day] if end == day else f"{WEEKDAY_NAMES[day]}-{WEEKDAY_NAMES[end]}"
            parts.append(f"{span} {entry}")
        day = end + 1
    return ", ".join(parts) or "closed"


_CITY_ALIASES: Final[Mapping[str, str]] = {
    "москва": "moscow",
    "msk": "moscow",
    "saint petersburg": "st petersburg",
    "sankt petersburg": "st petersburg",
    "санкт петербург": "st petersburg",
    "спб": "st petersburg",
    "spb": "st petersburg",
    "petersburg": "st petersburg",
    "yekaterinburg": "ekaterinburg",
    "екатеринбург": "ekaterinburg",
    "казань": "kazan",
    "новосибирск": "novosibirsk",
}


def city_key(city: str) -> str:
    """How two city names compare: case, dots, hyphens and common spellings do not matter.

    Args:
        city: A city name as typed (``"St. Petersburg"``, ``"Saint-Petersburg"``, ``"Yekaterinburg"``).

    Returns:
        A comparison key (``"st petersburg"``, ``"ekaterinburg"``).
    """
    key = " ".join(city.replace(".", " ").replace("-", " ").split()).casefold()
    return _CITY_ALIASES.get(key, key)


@dataclass(frozen=True, slots=True)
class DispatchPoint:
    """A desk that answers insured persons: a console, a branch curator, or the federal line.

    Attributes:
        kind: Console (R9.1), branch curator (R9.2) or federal line (R9.3).
        city: The city it serves.
        name: Display name.
        phone: The number to call (printed on the card, R9.4).
        timezone: IANA zone of its local hours, e.g. ``"Asia/Yekaterinburg"``.
        hours: Local opening hours per weekday. A branch curator also closes on days that are not
            business days in the Russian production calendar ("business hours", R9.2); consoles and
            the federal line follow their hours only.
    """

    kind: PointKind
    city: str
    name: str
    phone: str
    timezone: str
    hours: WeekHours

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PointKind(self.kind))
        object.__setattr__(self, "hours", tuple(self.hours))
        if len(self.hours) != 7:
            raise InvalidInput("hours have one entry per weekday", details={"point": self.name})
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput("unknown time zone", details={"timezone": self.timezone}) from None

    @property
    def always_open(self) -> bool:
        """Open every hour of every day (24/7 consoles, the federal line)."""
        return self.hours == ALWAYS and self.kind is not PointKind.BRANCH_CURATOR

    def local_time(self, now: datetime) -> datetime:
        """``now`` in the point's time zone."""
        return _aware(now).astimezone(ZoneInfo(self.timezone))

    def is_open(self, now: datetime) -> bool:
        """Whether the point answers at the aware moment ``now``.

        Args:
            now: Any timezone-aware moment.

        Returns:
            True within its local hours (and, for a branch curator, on a business day).
        """
        return self.shift_day(now) is not None

    def shift_day(self, now: datetime) -> date | None:
        """The local day whose hours cover ``now``, or ``None`` when closed (R9.2, R9.5).

        After midnight, a shift that began the day before (Fri 20:00-02:00 at Sat 01:00) is that
        day's: its weekday's hours and, for a branch curator, whether that day is a business day.
        """
        local = self.local_time(now)
        moment = local.time()
        today = local.date()
        yesterday = today - timedelta(days=1)
        candidates = (
            (today, self.hours[today.weekday()], False),
            (yesterday, self.hours[yesterday.weekday()], True),
        )
        for day, hours, after_midnight in candidates:
            if hours is None:
                continue
            inside = hours.contains_after_midnight(moment) if after_midnight else hours.contains(moment)
            if inside and (self.kind is not PointKind.BRANCH_CURATOR or is_business_day(day)):
                return day
        return None

    def describe(self) -> str:
        """The point's hours for messages, e.g. ``"Mon-Sat 08:00-20:00 Asia/Yekaterinburg"``."""
        text = f"{describe_hours(self.hours)} {self.timezone}"
        return text + (" on business days" if self.kind is PointKind.BRANCH_CURATOR else "")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (hours in the ``dispatch_points.hours`` format)."""
        return {
            "kind": self.kind.value,
            "city": self.city,
            "name": self.name,
            "phone": self.phone,
            "timezone": self.timezone,
            "hours": hours_to_json(self.hours),
        }


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput("routing needs a timezone-aware moment", details={"now": now.isoformat()})
    return now


FEDERAL_LINE: Final = DispatchPoint(
    kind=PointKind.FEDERAL_LINE,
    city="Moscow",
    name="Moscow 24-hour medical dispatch center (federal line)",
    phone=FEDERAL_NUMBER,
    timezone="Europe/Moscow",
    hours=ALWAYS,
)

# The seed gives only the federal number. The Moscow console is the same 24-hour center; the
# St Petersburg and Ekaterinburg numbers are DEMO placeholders until the insurer's card data is loaded.
DEFAULT_DISPATCH_POINTS: Final[tuple[DispatchPoint, ...]] = (
    DispatchPoint(PointKind.CONSOLE, "Moscow", "Moscow dispatch console", FEDERAL_NUMBER, "Europe/Moscow", ALWAYS),
    DispatchPoint(
        PointKind.CONSOLE,
        "St Petersburg",
        "St Petersburg dispatch console",
        "+7 812 000-00-00",
        "Europe/Moscow",
        ALWAYS,
    ),
    DispatchPoint(
        PointKind.CONSOLE,
        "Ekaterinburg",
        "Ekaterinburg dispatch console",
        "+7 343 000-00-00",
        "Asia/Yekaterinburg",
        weekly_hours(range(6), time(8, 0), time(20, 0)),
    ),
    FEDERAL_LINE,
)

# Branch curators the demo data adds (R9.2); not part of the insurer's fixed console network.
DEMO_BRANCH_CURATORS: Final[tuple[DispatchPoint, ...]] = (
    DispatchPoint(
        PointKind.BRANCH_CURATOR,
        "Kazan",
        "VHI curator, Kazan branch",
        "+7 843 000-00-00",
        "Europe/Moscow",
        weekly_hours(range(5), time(9, 0), time(18, 0)),
    ),
    DispatchPoint(
        PointKind.BRANCH_CURATOR,
        "Novosibirsk",
        "VHI curator, Novosibirsk branch",
        "+7 383 000-00-00",
        "Asia/Novosibirsk",
        weekly_hours(range(5), time(9, 0), time(18, 0)),
    ),
)


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Who answers (or whose number is printed), and why.

    Attributes:
        point: The dispatch point.
        reasons: Which of R9.1-R9.4 decided, including why nearer desks did not.
        local_time: The moment in the point's time zone, for ``who_answers``; ``None`` for ``card_phone``.
    """

    point: DispatchPoint
    reasons: tuple[Reason, ...]
    local_time: datetime | None = None

    @property
    def phone(self) -> str:
        """The number to call."""
        return self.point.phone

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule ids cited, in order."""
        return tuple(r.rule for r in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API."""
        return {
            "point": self.point.as_dict(),
            "local_time": self.local_time.isoformat() if self.local_time else None,
            "reasons": [r.as_dict() for r in self.reasons],
        }


def _city_points(city: str, points: Iterable[DispatchPoint], kind: PointKind) -> list[DispatchPoint]:
    key = city_key(city)
    return sorted((p for p in points if p.kind is kind and city_key(p.city) == key), key=lambda p: p.name)


def _point_facts(point: DispatchPoint, local: datetime | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "kind": point.kind.value,
        "name": point.name,
        "phone": point.phone,
        "hours": point.describe(),
    }
    if local is not None:
        facts["local_time"] = local.isoformat()
    return facts


def who_answers(city: str, points: Iterable[DispatchPoint], now: datetime) -> RoutingDecision:
    """The desk that answers a person from ``city`` at ``now`` (R9.1-R9.3).

    The city's console if it is open (R9.1); else the city's branch curator in business hours
    (R9.2); else the Moscow 24-hour center on the federal line (R9.3). The answer is always a desk
    that is open at ``now``: if the data has no open federal line, the built-in ``FEDERAL_LINE``
    (24/7) answers.

    Args:
        city: The person's city.
        points: Known dispatch points (e.g. ``DEFAULT_DISPATCH_POINTS`` plus branches).
        now: A timezone-aware moment (UTC or any offset).

    Returns:
        A ``RoutingDecision`` with the point, its local time and the reasons.
    """
    now = _aware(now)
    candidates = tuple(points)
    reasons: list[Reason] = []
    consoles = _city_points(city, candidates, PointKind.CONSOLE)
    for console in consoles:
        local = console.local_time(now)
        if console.is_open(now):
            reasons.append(
                Reason(
                    "R9.1",
                    f"the {console.city} dispatch console is open ({console.describe()})",
                    _point_facts(console, local),
                )
            )
            return RoutingDecision(console, tuple(reasons), local)
        reasons.append(
            Reason(
                "R9.1",
                f"the {console.city} dispatch console is closed at {local.strftime('%a %H:%M')} local time "
                f"({console.describe()})",
                _point_facts(console, local),
            )
        )
    branches = _city_points(city, candidates, PointKind.BRANCH_CURATOR)
    for branch in branches:
        local = branch.local_time(now)
        shift_day = branch.shift_day(now)
        if shift_day is not None:
            reasons.append(
                Reason(
                    "R9.2",
                    f"no console in {city}: the VHI curator of the {branch.city} branch answers in business hours "
                    f"({branch.describe()})",
                    _point_facts(branch, local),
                )
            )
            if shift_day != local.date():
                reasons.append(
                    Reason(
                        "R9.5",
                        f"after midnight: the branch's shift that began on {shift_day.strftime('%a')} "
                        f"{shift_day.isoformat()} is still on",
                        {"shift_day": shift_day.isoformat(), "local_time": local.isoformat()},
                    )
                )
            return RoutingDecision(branch, tuple(reasons), local)
        reasons.append(
            Reason(
                "R9.2",
                f"the {branch.city} branch curator is closed at {local.strftime('%a %d.%m %H:%M')} local time "
                f"({branch.describe()})",
                _point_facts(branch, local),
            )
        )
    if not consoles and not branches:
        reasons.append(
            Reason("R9.2", f"no dispatch console or branch curator serves {city or 'this city'}", {"city": city})
        )
    federal = next(
        (p for p in sorted(candidates, key=lambda p: p.name) if p.kind is PointKind.FEDERAL_LINE and p.is_open(now)),
        FEDERAL_LINE,
    )
    local = federal.local_time(now)
    reasons.append(
        Reason(
            "R9.3",
            f"the Moscow 24-hour dispatch center answers on the federal number {federal.phone}, "
            "free from other regions",
            _point_facts(federal, local),
        )
    )
    return RoutingDecision(federal, tuple(reasons), local)


def card_phone(city: str, points: Iterable[DispatchPoint]) -> RoutingDecision:
    """The number printed on the back of the person's plastic card (R9.4).

    Args:
        city: The person's city.
        points: Known dispatch points.

    Returns:
        The city's console, else its branch curator, else the federal line; ``.phone`` is the number.
    """
    candidates = tuple(points)
    for kind, what in ((PointKind.CONSOLE, "dispatch console"), (PointKind.BRANCH_CURATOR, "branch curator")):
        found = _city_points(city, candidates, kind)
        if found:
            point = found[0]
            return RoutingDecision(
                point,
                (
                    Reason(
                        "R9.4", f"the card shows the {point.city} {what}'s number {point.phone}", _point_facts(point)
                    ),
                ),
            )
    federal = next(
        (p for p in sorted(candidates, key=lambda p: p.name) if p.kind is PointKind.FEDERAL_LINE), FEDERAL_LINE
    )
    return RoutingDecision(
        federal,
        (
            Reason(
                "R9.4",
                f"no console or branch curator in {city or 'this city'}: "
                f"the card shows the federal number {federal.phone}",
                _point_facts(federal),
            ),
        ),
    )


# Time zones of the cities insured persons live in, for "that day" (R10.3) where no desk of the city
# has a zone on record. Keys are ``city_key`` forms; a city not listed falls back to Moscow time,
# the time of the federal line that answers it (R9.3).
CITY_TIMEZONES: Final[Mapping[str, str]] = {
    "moscow": "Europe/Moscow",
    "st petersburg": "Europe/Moscow",
    "kazan": "Europe/Moscow",
    "nizhny novgorod": "Europe/Moscow",
    "kaliningrad": "Europe/Kaliningrad",
    "samara": "Europe/Samara",
    "ekaterinburg": "Asia/Yekaterinburg",
    "chelyabinsk": "Asia/Yekaterinburg",
    "perm": "Asia/Yekaterinburg",
    "ufa": "Asia/Yekaterinburg",
    "omsk": "Asia/Omsk",
    "novosibirsk": "Asia/Novosibirsk",
    "krasnoyarsk": "Asia/Krasnoyarsk",
    "irkutsk": "Asia/Irkutsk",
    "yakutsk": "Asia/Yakutsk",
    "khabarovsk": "Asia/Vladivostok",
    "vladivostok": "Asia/Vladivostok",
    "magadan": "Asia/Magadan",
    "petropavlovsk kamchatsky": "Asia/Kamchatka",
    "kamchatka": "Asia/Kamchatka",
    "петропавловск камчатский": "Asia/Kamchatka",
    "владивосток": "Asia/Vladivostok",
}
DEFAULT_TIMEZONE: Final = "Europe/Moscow"


def person_timezone(city: str, points: Iterable[DispatchPoint] = ()) -> str:
    """The insured person's time zone: their city's, the same local time routing uses (R9, R10.3).

    Args:
        city: The person's city.
        points: Known dispatch points; the zone of the city's console or branch comes first.

    Returns:
        An IANA zone name; Moscow time when the city is unknown.
    """
    key = city_key(city)
    for kind in (PointKind.CONSOLE, PointKind.BRANCH_CURATOR):
        for point in _city_points(city, points, kind):
            return point.timezone
    return CITY_TIMEZONES.get(key, DEFAULT_TIMEZONE)


def local_date(now: datetime, timezone: str) -> date:
    """ "That day" for a person: the calendar date at ``now`` in their zone (R10.3).

    A person in Kamchatka asking at 2027-01-01 08:00 local time (2026-12-31 23:00 in Moscow) is
    served on 2027-01-01: the policy valid that day and that day's allowance.

    Args:
        now: A timezone-aware moment.
        timezone: The person's IANA zone (``person_timezone``).

    Returns:
        The local calendar date.
    """
    return _aware(now).astimezone(ZoneInfo(timezone)).date()
