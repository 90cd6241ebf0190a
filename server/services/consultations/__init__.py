"""Telemedicine consultations (R11), one module per use case.

- ``requests``: an insured person asks for a consultation; the yearly allowance (R11.3).
- ``views``: what the patient, the doctor or an admin sees; the doctor's live queue.
- ``lifecycle``: accept or decline an offer, cancel.
- ``completion``: the doctor completes it and it is written back to the coverage records.
- ``assignment``: the queue cycle (offers, lapsed offers, shift-end handover).
- ``common``: the state as the domain sees it and the announcement of a change.

The names below are the package's public use cases and views (handlers and tests import them
from here).
"""

from server.services.consultations.assignment import run_assignment_cycle
from server.services.consultations.completion import (
    EventChoicesView,
    OpenEventChoice,
    complete_consultation,
    event_choices,
)
from server.services.consultations.lifecycle import accept_offer, cancel_consultation, decline_offer
from server.services.consultations.requests import request_consultation, telemedicine_allowance
from server.services.consultations.views import (
    AllowanceView,
    ClinicRef,
    ConsultationView,
    DoctorQueueView,
    SummaryView,
    doctor_queue,
    get_consultation,
    list_consultations,
)

__all__ = [
    "AllowanceView",
    "ClinicRef",
    "ConsultationView",
    "DoctorQueueView",
    "EventChoicesView",
    "OpenEventChoice",
    "SummaryView",
    "accept_offer",
    "cancel_consultation",
    "complete_consultation",
    "decline_offer",
    "doctor_queue",
    "event_choices",
    "get_consultation",
    "list_consultations",
    "request_consultation",
    "run_assignment_cycle",
    "telemedicine_allowance",
]
