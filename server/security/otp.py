"""One-time codes for policy login (checklist A7, A8) and the pluggable senders that deliver them."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

OTP_DIGITS: Final = 6

log = logging.getLogger(__name__)


def new_code() -> str:
    """Six digits from the OS CSPRNG."""
    return f"{secrets.randbelow(10**OTP_DIGITS):0{OTP_DIGITS}d}"


def hash_code(challenge_id: str, code: str, pepper: str) -> str:
    """Keyed hash binding the code to its challenge, so a code from attempt A fails in attempt B."""
    return hmac.new(pepper.encode(), f"{challenge_id}:{code}".encode(), hashlib.sha256).hexdigest()


def codes_equal(expected_hash: str, candidate_hash: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(expected_hash, candidate_hash)


class CodeSender(Protocol):
    """Delivers a one-time code to a phone number (SMS gateway in production)."""

    async def send(self, phone: str, text: str, *, now: datetime) -> None:
        """Deliver ``text`` to ``phone``."""


class OutboxSender:
    """The default sender: appends each message as a JSON line to the outbox file and logs it.

    Demo users read their code with ``telemed outbox``; tests read the same file. The code
    itself is written to the log only in the dev demo (``log_codes``): production logs carry
    no secrets (checklist D3), just the masked phone.
    """

    def __init__(self, path: Path, *, log_codes: bool = False) -> None:
        self.path = path
        self.log_codes = log_codes

    async def send(self, phone: str, text: str, *, now: datetime) -> None:
        """Append to the outbox file and log the delivery."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"at": now.isoformat(), "to": phone, "text": text}, ensure_ascii=False)
        with self.path.open("a", encoding="utf-8") as outbox:
            outbox.write(line + "\n")
        if self.log_codes:
            log.info("one-time code sent to %s via outbox %s: %s", mask_phone(phone), self.path, text)
        else:
            log.info("one-time code sent to %s via outbox %s", mask_phone(phone), self.path)

    def read(self, limit: int = 20) -> list[dict[str, str]]:
        """The last ``limit`` messages, newest last."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in lines if line.strip()]


def mask_phone(phone: str) -> str:
    """``+7 *** *** 45 67``-style masking for logs and UI hints."""
    digits = [c for c in phone if c.isdigit()]
    if len(digits) < 4:
        return "***"
    return "+" + "*" * (len(digits) - 4) + "".join(digits[-4:])
