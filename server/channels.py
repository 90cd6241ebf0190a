"""Bus channel names and event types, beside the bus: services publish on them, sockets listen.

The bus only says "something new happened"; the database is the source of truth. A socket
that receives ``chat.message`` with ``seq`` N reads the consultation's messages after the last
sequence it delivered, so a lost or duplicated bus message can never lose or duplicate chat.
"""

from __future__ import annotations

from typing import Final

# Event types published on the bus (and forwarded to clients as {"type": "event", "event": {...}}).
EVENT_CHAT_MESSAGE: Final = "chat.message"  # {"consultation_id", "seq"}
EVENT_CHAT_TYPING: Final = "chat.typing"  # {"consultation_id", "sender", "typing": bool}
EVENT_CHAT_READ: Final = "chat.read"  # {"consultation_id", "reader", "seq"}
EVENT_CONSULTATION_UPDATED: Final = "consultation.updated"  # {"consultation_id", "status", ...}
EVENT_CONSULTATION_OFFERED: Final = "consultation.offered"  # to a doctor: {"consultation_id", "expires_at"}
EVENT_QUEUE_CHANGED: Final = "queue.changed"  # to doctors and waiting patients: {"specialty"}
EVENT_PRESENCE: Final = "presence"  # {"consultation_id", "who", "online": bool}
EVENT_CALL_SIGNAL: Final = "call.signal"  # WebRTC signalling relayed through signaling/ (later stage)
EVENT_SESSION_REVOKED: Final = "session.revoked"  # closes the session's sockets
EVENT_DISPATCH_QUEUE_CHANGED: Final = "dispatch.queue_changed"  # dispatchers' queue
EVENT_ASSIGNMENT_NUDGE: Final = "assignment.nudge"  # on assignment_channel(): run the queue cycle now
EVENT_DUTY_ALERT: Final = "duty.alert"  # to dispatchers and admins: {"alert": {...}} (R11.2, R11.6-R11.8)
EVENT_QUEUE_POSITION: Final = "queue.position"  # to a waiting patient: {"consultation_id", "position", ...}
# One per committed chat batch on chat_commits_channel(): {"seqs": [[consultation_id, last_seq], ...]}.
# A batch touches up to hundreds of consultations; one bus message per batch instead of one per
# consultation keeps Redis pub/sub cost (about 56 us of CPU per message and process) off the hot path.
EVENT_CHAT_COMMITTED: Final = "chat.committed"


def consultation_channel(consultation_id: int) -> str:
    """Everything about one consultation: chat, typing, reads, status, presence, call signals."""
    return f"consultation:{consultation_id}"


def user_channel(subject_key: str) -> str:
    """Notifications for one person (``insured:12`` or ``staff:5``): offers, assignments, summaries."""
    return f"user:{subject_key}"


def doctors_queue_channel() -> str:
    """Doctors' live queue: anything that changes who waits for which specialty."""
    return "doctors:queue"


def dispatch_queue_channel() -> str:
    """The dispatchers' live queue of open requests."""
    return "dispatch:queue"


def duty_alerts_channel() -> str:
    """Alerts for the dispatchers and admins on duty: red flags, emergencies, escalations."""
    return "duty:alerts"


def session_channel(session_id: str) -> str:
    """A login session's revocation (logout, refresh reuse, account disabled)."""
    return f"session:{session_id}"


def chat_commits_channel() -> str:
    """Wake-up hints for new chat messages: which consultations reached which sequence (DB is the truth)."""
    return "chat:commits"


def assignment_channel() -> str:
    """Nudges for every process's background assignment loop: the queue changed, run a cycle now."""
    return "assignment:nudge"
