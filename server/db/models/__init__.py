"""All models, imported together so that ``Base.metadata`` is complete for Alembic and tests."""

from server.db.base import Base
from server.db.models.accounts import (
    AuthSession,
    LoginChallenge,
    LoginFailure,
    RefreshToken,
    StaffAccount,
    WebSocketTicket,
)
from server.db.models.audit import AuditEvent
from server.db.models.consultations import (
    ChatAttachment,
    Consultation,
    ConsultationMessage,
    DutyShift,
    ReadMark,
    RosterAlert,
)
from server.db.models.coverage import (
    Clinic,
    DispatchPoint,
    InsuredPerson,
    Policy,
    Policyholder,
    Program,
    ProgramClinic,
    ScheduledPayment,
)
from server.db.models.dispatch import (
    AdditionalAgreement,
    AttachmentLetter,
    CoverageDecisionRecord,
    DispatchRequest,
    InsuredEvent,
    LetterOfGuarantee,
    PassRequest,
    Payment,
    ProgramChangeApplication,
    ServiceUsed,
    Visit,
)

__all__ = [
    "AdditionalAgreement",
    "AttachmentLetter",
    "AuditEvent",
    "AuthSession",
    "Base",
    "ChatAttachment",
    "Clinic",
    "Consultation",
    "ConsultationMessage",
    "CoverageDecisionRecord",
    "DispatchPoint",
    "DispatchRequest",
    "DutyShift",
    "InsuredEvent",
    "InsuredPerson",
    "LetterOfGuarantee",
    "LoginChallenge",
    "LoginFailure",
    "PassRequest",
    "Payment",
    "Policy",
    "Policyholder",
    "Program",
    "ProgramChangeApplication",
    "ProgramClinic",
    "ReadMark",
    "RefreshToken",
    "RosterAlert",
    "ScheduledPayment",
    "ServiceUsed",
    "StaffAccount",
    "Visit",
    "WebSocketTicket",
]
