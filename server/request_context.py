"""The current request's id, readable anywhere below the HTTP layer without importing aiohttp.

The logging middleware sets it per request; the audit trail and log records read it. It lives
on its own so that services depend on a context variable, not on the web framework.
"""

from __future__ import annotations

import contextvars

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
