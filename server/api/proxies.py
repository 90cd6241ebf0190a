"""The client's address behind trusted proxies (balancer, TLS terminator), via aiohttp-remotes.

``X-Forwarded-For`` is read only when the TCP peer itself is in ``TELEMED_TRUSTED_PROXIES``; then
the right-most address that is not a trusted proxy is the client (aiohttp-remotes'
``XForwardedFiltered``), and ``X-Forwarded-Proto`` gives the scheme. A client talking to an
app port directly gets its own address whatever it sends, so it can neither dodge the
per-address limits nor frame someone else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware
from aiohttp_remotes import XForwardedFiltered
from aiohttp_remotes.exceptions import UntrustedIP
from aiohttp_remotes.utils import check_ip, parse_trusted_element

from server.api.errors import error_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TrustedProxies(XForwardedFiltered):
    """``XForwardedFiltered`` that first requires the connection to come from a trusted proxy.

    aiohttp-remotes' filtered variant reads the header from any peer; here a peer outside the
    trusted networks is answered as itself and its forwarding headers are ignored.
    """

    def __init__(self, networks: Sequence[str]) -> None:
        super().__init__(list(networks))
        self._peers = parse_trusted_element(list(networks))

    def peer_is_trusted(self, request: web.Request) -> bool:
        """Whether the TCP peer (not any header) is one of the trusted proxies."""
        transport = request.transport
        peername = transport.get_extra_info("peername") if transport is not None else None
        if not peername:
            return False
        try:
            check_ip(self._peers, ipaddress.ip_address(peername[0]))
        except (UntrustedIP, ValueError):
            return False
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Rewrite ``request.remote``/``scheme`` only for requests relayed by a trusted proxy."""
        if not self.peer_is_trusted(request):
            return await handler(request)
        try:
            return await super().middleware(request, handler)
        except web.HTTPBadRequest:
            # Only the header parsing raises here: the handler's own errors are already responses.
            return error_response(400, "bad_forwarded_header", "X-Forwarded-For or X-Forwarded-Proto is malformed")


def proxy_middlewares(networks: Sequence[str]) -> list[Middleware]:
    """The middleware to install, or none when no proxy is trusted."""
    if not networks:
        return []
    return [TrustedProxies(networks).middleware]


def client_address(request: web.Request) -> str:
    """The caller's address for rate limits and logs (already resolved by ``TrustedProxies``)."""
    return (request.remote or "unknown")[:64]
