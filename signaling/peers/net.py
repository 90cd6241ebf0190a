"""Keep aiortc's ICE on chosen addresses (tests pin it to loopback: no traffic leaves the machine).

aioice gathers host candidates from every network card and never offers 127.0.0.1; a setting
(``TELEMED_RTC_HOST_ADDRESSES=127.0.0.1``) replaces ``aioice.ice.get_host_addresses`` with a
function returning exactly those addresses, for every peer connection in the process.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import aioice.ice

_original = aioice.ice.get_host_addresses


def pin_host_addresses(addresses: Sequence[str]) -> None:
    """Offer only ``addresses`` as host candidates (an empty list restores aioice's own choice)."""
    chosen = [str(ipaddress.ip_address(address)) for address in addresses]
    if not chosen:
        aioice.ice.get_host_addresses = _original
        return

    def get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (use_ipv4 and ":" not in a) or (use_ipv6 and ":" in a)]

    aioice.ice.get_host_addresses = get_host_addresses
