"""Delivering one-time codes in production: an HTTP SMS gateway with retries, and the sender factory.

The gateway contract is deliberately small, so a provider adapter (or the provider itself) can
meet it: ``POST <TELEMED_SMS_URL>`` with ``Authorization: Bearer <TELEMED_SMS_TOKEN>`` and the JSON
body ``{"to": "+7...", "text": "...", "idempotency_key": "..."}``; any 2xx is delivered. A 5xx,
a 429 or a network error is retried (exponential backoff with jitter, tenacity) with the same
idempotency key, so a gateway that received the first try does not send twice; any other 4xx is a
configuration error and is not retried.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from server.config import Settings
from server.domain.errors import Unavailable
from server.security.otp import CodeSender, OutboxSender, mask_phone

log = logging.getLogger(__name__)


class SmsDeliveryError(Unavailable):
    """The gateway refused the message, or every attempt failed (HTTP 503: nothing was sent)."""

    code = "code_not_sent"


class _Retryable(SmsDeliveryError):
    """A failure worth another attempt (network, timeout, 5xx, 429)."""


class HttpSmsSender:
    """A ``CodeSender`` that posts each message to an HTTP SMS gateway."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout_seconds: float = 5.0,
        attempts: int = 4,
        backoff_seconds: float = 0.2,
    ) -> None:
        self.url = url
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def send(self, phone: str, text: str, *, now: datetime) -> None:
        """Deliver ``text`` to ``phone``; raises ``SmsDeliveryError`` when the gateway never accepts it."""
        body = {"to": phone, "text": text, "idempotency_key": secrets.token_hex(16)}
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential_jitter(multiplier=self._backoff, max=self._backoff * 16),
            retry=retry_if_exception_type(_Retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self._post(body, headers)
        except _Retryable as exc:
            log.error("one-time code to %s not delivered after %d attempts: %s", mask_phone(phone), self._attempts, exc)
            raise SmsDeliveryError("the one-time code could not be sent; try again shortly") from exc
        log.info("one-time code sent to %s via the SMS gateway", mask_phone(phone))

    async def _post(self, body: dict[str, str], headers: dict[str, str]) -> None:
        try:
            async with self._client().post(self.url, json=body, headers=headers) as response:
                if 200 <= response.status < 300:
                    return
                if response.status >= 500 or response.status == 429:
                    raise _Retryable(f"gateway answered {response.status}")
                log.error("the SMS gateway refused a message with %d: check TELEMED_SMS_URL/TOKEN", response.status)
                raise SmsDeliveryError("the one-time code could not be sent; try again shortly")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the connection pool (app shutdown)."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def make_code_sender(settings: Settings) -> CodeSender:
    """The sender the settings ask for (``TELEMED_CODE_SENDER``): file outbox or HTTP gateway."""
    if settings.code_sender == "http":
        return HttpSmsSender(
            settings.sms_url,
            settings.sms_token.get_secret_value(),
            timeout_seconds=settings.sms_timeout_seconds,
            attempts=settings.sms_attempts,
        )
    return OutboxSender(settings.outbox_path, log_codes=settings.environment == "dev")
