"""Fields per role (checklist C2): the written list of what each role may see, and the one projection
that enforces it for every response.

Every route's answer passes through :func:`project` (the API's ``@endpoint`` calls it with the
caller's role before serialising), so a view returned by any route loses what the role may not
see, whichever route returns it. The OpenAPI document marks the fields below as not always sent.

The list, role by role (anything not listed is visible to the roles a route admits):

* **insured** and **doctor**: everything their routes return (their own consultations, and the
  doctor's patients; object-level access is C1, decided by the services).
* **admin** (no clinical content): a consultation (``ConsultationView``) without ``complaints``,
  ``summary`` (the doctor's notes, the ICD-10 code and description, the referral) and ``addenda``
  (notes added later); in every fact, subject or details object (decision reasons, duty alerts)
  no ``complaints``, doctor's notes, ICD-10 code, description or diagnosis.
* **dispatcher**: complaints of requests, insured events and escalated requests (approvals and
  triage are decided on them, R2.1-R3.3, R11.7), but no consultation notes and no ICD-10 code or
  diagnosis in any fact, subject or details object (a completed consultation's decision, an
  emergency duty alert). One exception, on purpose: an emergency duty alert keeps the doctor's
  one-line ``doctor_note`` (what the dispatcher tells the ambulance, R10.1, R11.7).
* **hr**: aggregates only; the HR views are refused if they would carry a clinical field
  (``server/domain/privacy.py``, R12.5).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, Final

from server.services.consultations.views import ConsultationView
from server.services.identity import ROLE_ADMIN, ROLE_DISPATCHER

# Clinical keys of free-form objects (reason facts, decision subjects, alert details).
CLINICAL_FACTS: Final[frozenset[str]] = frozenset({"notes", "icd10_code", "icd10_description", "diagnosis"})

# role -> view type -> fields the role never gets.
HIDDEN_FIELDS: Final[Mapping[str, Mapping[type, frozenset[str]]]] = {
    ROLE_ADMIN: {ConsultationView: frozenset({"complaints", "summary", "addenda"})},
    ROLE_DISPATCHER: {},
}

# role -> keys removed from every free-form object (dict) inside a response.
HIDDEN_FACTS: Final[Mapping[str, frozenset[str]]] = {
    ROLE_ADMIN: CLINICAL_FACTS | {"complaints", "doctor_note"},
    ROLE_DISPATCHER: CLINICAL_FACTS,
}


def hidden_from_some_role(view_type: type) -> frozenset[str]:
    """The fields of ``view_type`` that some role does not get (not always sent, says OpenAPI)."""
    hidden: set[str] = set()
    for by_type in HIDDEN_FIELDS.values():
        hidden |= by_type.get(view_type, frozenset())
    return frozenset(hidden)


def project_for_all(roles: Iterable[str], value: Any) -> Any:
    """``value`` as every one of ``roles`` may see it (a bus message several roles receive, e.g. a
    live duty alert for dispatchers and admins: the full alert is on each role's route)."""
    chosen = [role for role in roles if role in HIDDEN_FIELDS]
    fields: dict[type, frozenset[str]] = {}
    for role in chosen:
        for view_type, hidden in HIDDEN_FIELDS[role].items():
            fields[view_type] = fields.get(view_type, frozenset()) | hidden
    facts = frozenset().union(*(HIDDEN_FACTS[role] for role in chosen))
    return _project(value, fields, facts)


def project(role: str, value: Any) -> Any:
    """``value`` as ``role`` may see it: views become dicts without the hidden fields, and free-form
    objects lose the hidden keys; anything else is returned as it is (serialised later)."""
    fields = HIDDEN_FIELDS.get(role)
    facts = HIDDEN_FACTS.get(role)
    if fields is None or facts is None:
        return value
    return _project(value, fields, facts)


def _project(value: Any, fields: Mapping[type, frozenset[str]], facts: frozenset[str]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        hidden = fields.get(type(value), frozenset())
        return {
            field.name: _project(getattr(value, field.name), fields, facts)
            for field in dataclasses.fields(value)
            if field.name not in hidden
        }
    if isinstance(value, dict):
        return {key: _project(item, fields, facts) for key, item in value.items() if key not in facts}
    if isinstance(value, list | tuple):
        return [_project(item, fields, facts) for item in value]
    return value
