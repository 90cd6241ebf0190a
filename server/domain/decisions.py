"""Explained decisions: every rule outcome carries the rule ids and facts that produced it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason for a decision: the rule that applied and what it found.

    Attributes:
        rule: The rule id from domain-rules.md, e.g. ``"R3.3"``.
        message: A sentence a dispatcher or an insured person can read.
        facts: The facts the rule used (ids, dates), for the audit trail.
    """

    rule: str
    message: str
    facts: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API and the audit log."""
        return {"rule": self.rule, "message": self.message, "facts": dict(self.facts)}


@dataclass(frozen=True, slots=True)
class Decision:
    """A yes/no outcome with its reasons; ``allowed`` means the action may proceed."""

    allowed: bool
    reasons: tuple[Reason, ...] = ()

    @classmethod
    def allow(cls, *reasons: Reason) -> Decision:
        """An allowing decision, still explained."""
        return cls(True, tuple(reasons))

    @classmethod
    def deny(cls, *reasons: Reason) -> Decision:
        """A refusing decision; at least one reason says why."""
        if not reasons:
            raise ValueError("a refusal must say why")
        return cls(False, tuple(reasons))

    @property
    def rules(self) -> tuple[str, ...]:
        """The rule ids cited, in order."""
        return tuple(reason.rule for reason in self.reasons)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API and the audit log."""
        return {"allowed": self.allowed, "reasons": [r.as_dict() for r in self.reasons]}
